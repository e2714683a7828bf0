"""Regression tests for bugs found by the acceptance audit of the ``pymultus`` CLI (issue #5):
bad input must give a clear one-line error and exit 1, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


def _primary(tmp_path: Path) -> Path:
    net_d = tmp_path / "net.d"
    net_d.mkdir()
    conf = {"cniVersion": "1.0.0", "name": "pm-audit", "type": "bridge", "bridge": "pmaudit0"}
    (net_d / "10-audit.conf").write_text(json.dumps(conf))
    return net_d


@pytest.mark.parametrize("case", ["missing-daemon-config", "thin-conf-dir-is-a-file"])
def test_generate_config_reports_unreadable_paths_without_a_traceback(
    tmp_path: Path, case: str
) -> None:
    net_d = _primary(tmp_path)
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")
    if case == "missing-daemon-config":
        bad = str(tmp_path / "no-such-daemon-config.json")
        argv = ["generate-config", "--daemon-config", bad]
    else:
        bad = str(not_a_dir / "net.d")
        argv = ["generate-config", "-t", "thin", "--multus-autoconfig-dir", str(net_d)]
        argv += ["--cni-conf-dir", bad]
    done = subprocess.run(
        [PYMULTUS, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    assert bad in done.stderr.replace("\n", ""), done.stderr
    assert not (tmp_path / "plain-file").is_dir()


def test_status_refuses_an_unknown_output_format(tmp_path: Path) -> None:
    """``-o yaml`` used to print the table as if nothing were wrong."""
    argv = [PYMULTUS, "status", "--cni-dir", str(tmp_path), "-o", "yaml"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0, done
    assert "yaml" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
