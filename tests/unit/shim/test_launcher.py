"""The installed form of the shim (``pymultus.shim.install``): the compact program, the launcher
that holds it, and the compiled cache beside it that saves compiling the program on every call.

The launcher is run as the runtime runs it (its ``#!`` line), with the interpreter running
these tests, so the cache's magic number is this interpreter's.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import marshal
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fake_daemon import short_socket_dir

from pymultus.shim import install
from pymultus.shim import multus_shim as shim

PYTHON = os.path.realpath(sys.executable)
CACHE = f".multus-shim.{sys.implementation.cache_tag}.bin"
SOURCES = [install.SHIM_SOURCE, install.PASSTHRU_SOURCE]


@pytest.fixture
def bin_dir() -> Iterator[Path]:
    with short_socket_dir() as path:
        yield Path(path)


@pytest.fixture
def installed(bin_dir: Path) -> Path:
    return Path(install.install_shim(str(bin_dir), interpreter=PYTHON))


def _version(script: Path, *argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(script), *argv],
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        timeout=30,
        check=False,
    )


def _answers_version(script: Path) -> bool:
    done = _version(script)
    return done.returncode == 0 and json.loads(done.stdout)["cniVersion"] == "1.1.0"


def _stamp(script: Path) -> bytes:
    for node in ast.parse(script.read_bytes()).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_STAMP":
            value = ast.literal_eval(node.value)
            assert isinstance(value, bytes)
            return value
    raise AssertionError("no _STAMP")


def _header(script: Path) -> bytes:
    return importlib.util.MAGIC_NUMBER + _stamp(script)


def _plant(path: Path, header: bytes, source: str, mode: int = 0o644) -> None:
    """A cache whose code prints ``source``'s output instead of the shim's."""
    path.write_bytes(header + marshal.dumps(compile(source, "planted", "exec")))
    path.chmod(mode)


PLANTED = "import sys; sys.stdout.write('from the cache')"


# --- the compact program ---------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_the_compact_program_is_plain_python_3_8(source: Path) -> None:
    """No docstrings, annotations or ``from __future__`` (an import of its own at start-up);
    module-level annotated assignments are kept as plain ones."""
    compact = install.compact_source(source.read_bytes())
    assert compact.startswith(source.read_bytes().partition(b"\n")[0] + b"\n")
    tree = ast.parse(compact, feature_version=(3, 8))
    for node in ast.walk(tree):
        assert not isinstance(node, ast.AnnAssign)
        assert not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        if isinstance(node, ast.FunctionDef):
            assert node.returns is None
            assert all(a.annotation is None for a in node.args.args)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body:
            first = node.body[0]
            assert not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant))
    if source == install.SHIM_SOURCE:  # was ``_scan: Callable[...] | None = None``
        assert "\n_scan = None\n" in compact.decode()


def test_the_launcher_is_python_3_8_and_names_the_interpreter(installed: Path) -> None:
    text = installed.read_bytes()
    assert text.startswith(f"#!{PYTHON} -IS\n".encode())
    ast.parse(text, feature_version=(3, 8))
    assert len(_stamp(installed)) == 32


def test_a_script_without_an_interpreter_line_is_refused() -> None:
    with pytest.raises(install.ShimInstallError, match="no #! line") as caught:
        install.launcher_source(b"print(1)\n", PYTHON, "/src/x.py")
    assert caught.value.filename == "/src/x.py"


# --- the compiled cache ----------------------------------------------------------------------


def test_installing_writes_the_cache_for_this_program(installed: Path) -> None:
    cache = installed.parent / CACHE
    data = cache.read_bytes()
    assert data.startswith(_header(installed))
    assert os.stat(cache).st_mode & 0o777 == 0o644
    code = marshal.loads(data[len(_header(installed)) :])
    assert code.co_filename == str(installed)


def test_the_cache_is_what_runs(installed: Path) -> None:
    """Proof that the cache, not the source, is executed: a planted cache with the right
    header runs instead of the shim."""
    _plant(installed.parent / CACHE, _header(installed), PLANTED)
    assert _version(installed).stdout == b"from the cache"


@pytest.mark.parametrize(
    "damage",
    ["missing", "another-install", "another-python", "truncated", "empty", "garbage"],
)
def test_a_missing_or_foreign_cache_is_rebuilt(installed: Path, damage: str) -> None:
    cache = installed.parent / CACHE
    good = cache.read_bytes()
    header = _header(installed)
    damaged = {
        "missing": None,
        "another-install": importlib.util.MAGIC_NUMBER + b"0" * 32 + good[len(header) :],
        "another-python": b"\x00\x00\r\n" + good[4:],
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "garbage": header + b"\xff" * 64,
    }[damage]
    if damaged is None:
        cache.unlink()
    else:
        cache.write_bytes(damaged)
    assert _answers_version(installed)
    assert cache.read_bytes() == good  # the same program compiles to the same bytes
    assert sorted(os.listdir(installed.parent)) == [CACHE, "multus-shim"]  # no temp file left


@pytest.mark.parametrize(("mode", "owner"), [(0o666, 0), (0o620, 0), (0o644, 65534)])
def test_a_cache_others_could_have_written_is_not_run(
    installed: Path, mode: int, owner: int
) -> None:
    cache = installed.parent / CACHE
    _plant(cache, _header(installed), PLANTED, mode)
    os.chown(cache, owner, 0)
    assert _answers_version(installed)
    assert cache.read_bytes().startswith(_header(installed))


def test_a_cache_that_cannot_be_written_costs_only_time(installed: Path) -> None:
    cache = installed.parent / CACHE
    cache.unlink()
    cache.mkdir()  # neither readable as a file nor replaceable by a rename
    try:
        assert _answers_version(installed)
        assert sorted(os.listdir(installed.parent)) == [CACHE, "multus-shim"]
    finally:
        cache.rmdir()


def test_each_name_has_its_own_cache(installed: Path) -> None:
    copy = installed.with_name("shim-copy")
    copy.write_bytes(installed.read_bytes())
    copy.chmod(0o755)
    assert _answers_version(copy)
    assert (installed.parent / f".shim-copy.{sys.implementation.cache_tag}.bin").exists()


def test_a_launcher_not_run_from_a_file_writes_no_cache(installed: Path) -> None:
    (installed.parent / CACHE).unlink()
    done = subprocess.run(
        [PYTHON, "-IS", "-"],
        input=installed.read_bytes(),
        cwd=installed.parent,
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout)["cniVersion"] == "1.1.0"
    assert os.listdir(installed.parent) == ["multus-shim"]


def test_a_new_install_replaces_the_old_caches(bin_dir: Path, installed: Path) -> None:
    (bin_dir / ".multus-shim.cpython-38.bin").write_bytes(b"another Python's")
    (bin_dir / f"{CACHE}.123.tmp").write_bytes(b"a write cut short")
    install.install_shim(str(bin_dir), interpreter=PYTHON)
    assert sorted(os.listdir(bin_dir)) == [CACHE, "multus-shim"]


# --- the program behaves the same under the launcher -----------------------------------------


def test_arguments_errors_and_exit_status_pass_through(installed: Path) -> None:
    done = _version(installed, "--version")
    assert (done.returncode, done.stdout) == (0, f"multus-shim: pymultus {shim.VERSION}\n".encode())
    bad = subprocess.run(
        [str(installed)],
        env={"CNI_COMMAND": "ADD"},
        input=b"{",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["code"] == 6
    assert bad.stderr == b""


def test_passthru_is_installed_the_same_way(bin_dir: Path) -> None:
    path = Path(install.install_passthru(str(bin_dir), interpreter=PYTHON))
    assert (bin_dir / f".passthru.{sys.implementation.cache_tag}.bin").exists()
    done = _version(path)
    assert done.returncode == 0
    assert "1.1.0" in json.loads(done.stdout)["supportedVersions"]


# --- what removing the shim removes -----------------------------------------------------------


def test_cache_files_are_the_scripts_own(bin_dir: Path) -> None:
    for name in (
        "multus-shim",
        CACHE,
        ".multus-shim.cpython-38.bin",
        f"{CACHE}.99.tmp",
        ".multus-shim.x1y2z3.tmp",  # an install's temporary file
        ".multus.cpython-311.bin",  # the thin plugin's, not ours
        ".multus-shim.notes",
        "multus-shim.bin",
    ):
        (bin_dir / name).write_bytes(b"")
    assert install.cache_files(str(bin_dir / "multus-shim")) == [
        str(bin_dir / n)
        for n in sorted(
            [CACHE, ".multus-shim.cpython-38.bin", f"{CACHE}.99.tmp", ".multus-shim.x1y2z3.tmp"]
        )
    ]
    assert install.cache_files(str(bin_dir / "nope" / "multus-shim")) == []


def test_warming_a_script_whose_interpreter_is_absent_is_harmless(bin_dir: Path) -> None:
    path = install.install_shim(str(bin_dir), interpreter="/nonexistent/python3")
    install.warm_cache(path)
    assert os.listdir(bin_dir) == ["multus-shim"]
