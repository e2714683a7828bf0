"""``pymultus install --type thin`` writes the shim's kind of launcher: the real interpreter with
``-IS``, a fixed ``sys.path``, a compiled cache beside it; not a console-script wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pymultus
from pymultus.plugin.install import import_paths, install_thin
from pymultus.plugin.main import version_info
from pymultus.shim.install import cache_files


def test_the_launcher_runs_the_real_interpreter_isolated_from_a_compiled_cache(
    tmp_path: Path,
) -> None:
    target = install_thin(str(tmp_path))

    first = Path(target).read_text().splitlines()[0]
    assert first == f"#!{os.path.realpath(sys.executable)} -IS"
    assert [Path(p).name for p in cache_files(target)] == [
        f".multus.{sys.implementation.cache_tag}.bin"
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
