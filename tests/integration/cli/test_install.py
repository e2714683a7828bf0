"""``pymultus install`` and ``uninstall`` put the plugins in place atomically and take them away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


def _pymultus(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYMULTUS, *argv], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.parametrize(("kind", "plugin"), [("thick", "multus-shim"), ("thin", "multus")])
def test_install_then_uninstall(tmp_path: Path, kind: str, plugin: str) -> None:
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    (conf_dir / "00-multus.conf").write_text("{}")
    assert _pymultus("install", "--type", kind, "--dest", str(bin_dir)).returncode == 0
    for name in (plugin, "passthru"):
        path = bin_dir / name
        assert os.access(path, os.X_OK)
        version = subprocess.run(
            [str(path)],
            env={"CNI_COMMAND": "VERSION"},
            input="",
            capture_output=True,
            text=True,
            check=False,
        )
        assert version.returncode == 0, version.stdout + version.stderr
        assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]
    assert not [p for p in bin_dir.iterdir() if p.name.endswith(".tmp")]  # no temp file left

    out = _pymultus("uninstall", "--cni-conf-dir", str(conf_dir), "--bin-dir", str(bin_dir))
    assert out.returncode == 0, out.stdout
    assert not list(bin_dir.iterdir())
    assert not (conf_dir / "00-multus.conf").exists()


def test_install_into_a_missing_dir_is_a_clear_error(tmp_path: Path) -> None:
    out = _pymultus("install", "--type", "thick", "--dest", str(tmp_path / "nope"))
    assert out.returncode == 1
    assert "does not exist" in out.stdout
    assert "Traceback" not in out.stderr
