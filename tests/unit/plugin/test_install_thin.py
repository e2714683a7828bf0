"""``pymultus install --type thin`` writes the shim's kind of launcher: the real interpreter with
``-IS``, a fixed ``sys.path``, a compiled cache beside it; not a console-script wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pymultus
from pymultus.plugin import install
from pymultus.plugin.install import default_interpreter, import_paths, install_thin, stands_in
from pymultus.plugin.main import version_info
from pymultus.shim.install import SYSTEM_PYTHON, cache_files


def test_the_launcher_runs_the_real_interpreter_isolated_from_a_compiled_cache(
    tmp_path: Path,
) -> None:
    target = install_thin(str(tmp_path))

    first = Path(target).read_text().splitlines()[0]
    assert first == f"#!{default_interpreter(import_paths())} -IS"
    tag = sys.implementation.cache_tag
    # the launcher's compiled cache and the lean path's bundles (plugin.preload), which
    # uninstalling removes with it
    assert [Path(p).name for p in cache_files(target)] == [
        f".multus.{tag}.add.bin",
        f".multus.{tag}.bin",
        f".multus.{tag}.del.bin",
    ]
    out = subprocess.run(
        [target], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=True, timeout=30
    )
    assert out.stdout == version_info()
    ver = subprocess.run([target, "-v"], env={}, capture_output=True, check=True, timeout=30)
    assert ver.stdout.decode().strip() == f"multus: pymultus {pymultus.__version__}"


def test_the_fixed_path_is_where_pymultus_and_its_dependencies_are() -> None:
    paths = import_paths()
    assert paths[0] == str(Path(pymultus.__file__).resolve().parents[1])
    assert any(p.endswith("site-packages") for p in paths)
    assert len(paths) == len(set(paths))


def test_this_interpreter_stands_in_for_itself_and_a_stranger_does_not(tmp_path: Path) -> None:
    paths = import_paths()
    assert stands_in(os.path.realpath(sys.executable), paths)
    stranger = tmp_path / "python3"
    stranger.write_text("#!/bin/sh\necho cpython-30 .so\n")
    stranger.chmod(0o755)
    assert not stands_in(str(stranger), paths)
    assert not stands_in(str(tmp_path / "missing"), paths)
    assert not stands_in(os.path.realpath(sys.executable), [str(tmp_path)])  # cannot import


@pytest.mark.parametrize("compatible", [True, False])
def test_the_system_python_is_chosen_only_when_it_stands_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, compatible: bool
) -> None:
    system = tmp_path / "python3"
    system.symlink_to("/bin/true")
    asked: list[str] = []

    def probe(interpreter: str, paths: list[str]) -> bool:
        asked.append(interpreter)
        return compatible

    monkeypatch.setattr(install, "SYSTEM_PYTHON", str(system))
    monkeypatch.setattr(install, "stands_in", probe)
    chosen = default_interpreter(import_paths())
    assert asked == [str(system)]
    assert chosen == (str(system) if compatible else os.path.realpath(sys.executable))


def test_the_system_python_is_not_probed_when_it_is_this_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(install, "SYSTEM_PYTHON", sys.executable)
    monkeypatch.setattr(install, "stands_in", lambda *_: pytest.fail("probed"))
    assert default_interpreter(import_paths()) == os.path.realpath(sys.executable)
    assert SYSTEM_PYTHON == "/usr/bin/python3"
