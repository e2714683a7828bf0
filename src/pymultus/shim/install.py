"""Install ``multus-shim`` into a CNI bin dir, as Go Multus's ``install_multus -t thick`` does.

The shim is one file (``multus_shim.py`` beside this module). Installing copies it atomically:
a temporary file in the destination directory, mode 0755, fsync, then a rename over
``multus-shim``. A runtime that runs the shim during an upgrade therefore sees the old file or
the new one, never half of one.

The ``#!`` line is rewritten to an absolute interpreter path followed by ``-IS``. Why not
``#!/usr/bin/env python3``: ``python3`` on the PATH of a kubelet or containerd may be a pyenv or
virtualenv wrapper that costs tens of milliseconds per call, or nothing at all. The default is
``/usr/bin/python3`` when it is there and at least 3.8 (an upgrade of the OS's Python keeps that
path working), else the real interpreter running this code (``realpath(sys.executable)``, which
leaves any venv or pyenv wrapper behind).

This module imports nothing else from pymultus (an import-linter contract keeps the shim package
apart from the rest), so it reports failures as ``ShimInstallError``, an ``OSError`` naming the
path at fault; callers map it along with every other I/O error.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SHIM_NAME = "multus-shim"
SHIM_SOURCE = Path(__file__).with_name("multus_shim.py")
#: Multus's no-op head of the auxiliary chain: stdlib-only like the shim, installed the same way.
PASSTHRU_NAME = "passthru"
PASSTHRU_SOURCE = Path(__file__).parents[1] / "plugin" / "passthru.py"
SYSTEM_PYTHON = "/usr/bin/python3"
MIN_PYTHON = (3, 8)
INTERPRETER_FLAGS = "-IS"  # isolated, no site; ONE word: Linux passes a single #! argument
PROBE_TIMEOUT = 10.0  # seconds for `python -c` to report its version; it takes milliseconds


class ShimInstallError(OSError):
    """Installing the shim failed. ``filename`` names the path at fault."""

    def __init__(self, msg: str, path: str) -> None:
        super().__init__(errno.EINVAL, msg, path)
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.msg}: {self.filename}"


def install_shim(dest_dir: str, *, interpreter: str | None = None) -> str:
    """Copy the shim into ``dest_dir`` as ``multus-shim`` (atomic, 0755); returns its path.

    ``interpreter`` is the absolute path written into the ``#!`` line. It is checked for form
    only, not run: when a daemon container installs into the host's ``/opt/cni/bin``, the
    interpreter is a host path that may not exist inside the container. Without it, a Python
    >= 3.8 of this machine is chosen and checked (see the module docstring).

    Raises ``ShimInstallError`` for a bad interpreter or destination, and ``OSError`` when
    writing fails.
    """
    return install_script(SHIM_SOURCE, dest_dir, SHIM_NAME, interpreter=interpreter)


def install_passthru(dest_dir: str, *, interpreter: str | None = None) -> str:
    """Copy ``passthru`` (the auxiliary chain's head) into ``dest_dir``, like the shim."""
    return install_script(PASSTHRU_SOURCE, dest_dir, PASSTHRU_NAME, interpreter=interpreter)


def install_script(
    source: Path, dest_dir: str, name: str, *, interpreter: str | None = None
) -> str:
    """Copy a stdlib-only script into ``dest_dir`` as ``name`` (atomic, 0755) with its ``#!``
    line naming ``interpreter`` (default: see the module docstring); returns its path."""
    chosen = _checked_path(interpreter) if interpreter is not None else default_interpreter()
    if not os.path.isdir(dest_dir):
        raise ShimInstallError("CNI bin directory does not exist", dest_dir)
    content = shim_with_interpreter(compact_source(source.read_bytes()), chosen)
    target = os.path.join(dest_dir, name)
    _atomic_write(target, content)
    return target


def compact_source(source: bytes) -> bytes:
    """The same program without docstrings and function annotations (the ``#!`` line kept).

    The runtime executes the installed file for every CNI call, and CPython compiles a script
    from source each time (``__main__`` never gets a cached ``.pyc``): for the shim that was
    13 of its ~25 ms. The compact form compiles in about 8 ms and behaves identically (tests
    run both). ``ast.unparse`` keeps the 3.8-compatible syntax of the source.
    """
    first, newline, rest = source.partition(b"\n")
    tree = ast.parse(rest.decode())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _drop_annotations(node)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = _without_docstring(node.body)
    return first + newline + ast.unparse(tree).encode() + b"\n"


def _drop_annotations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    node.returns = None
    args = node.args
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if arg is not None:
            arg.annotation = None


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    is_doc = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    return (body[1:] or [ast.Pass()]) if is_doc else body


def shim_with_interpreter(source: bytes, interpreter: str) -> bytes:
    """``source`` with its ``#!`` line replaced by ``#!<interpreter> -IS``."""
    first, newline, rest = source.partition(b"\n")
    if not first.startswith(b"#!") or not newline:
        raise ShimInstallError("the shim source has no #! line", str(SHIM_SOURCE))
    return f"#!{interpreter} {INTERPRETER_FLAGS}\n".encode() + rest


def default_interpreter() -> str:
    """``/usr/bin/python3`` if it runs and is >= 3.8, else this process's real interpreter."""
    if os.access(SYSTEM_PYTHON, os.X_OK) and python_at_least(SYSTEM_PYTHON, MIN_PYTHON):
        return SYSTEM_PYTHON
    real = os.path.realpath(sys.executable)
    if not real or not os.access(real, os.X_OK):
        raise ShimInstallError("no Python interpreter >= 3.8 found for the shim", real or "?")
    return real


def python_at_least(interpreter: str, version: tuple[int, int]) -> bool:
    """True when ``interpreter`` runs (with ``-IS``) and is at least ``version``."""
    code = f"import sys; sys.exit(0 if sys.version_info >= {version!r} else 1)"
    try:
        done = subprocess.run(
            [interpreter, INTERPRETER_FLAGS, "-c", code],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _checked_path(interpreter: str) -> str:
    if not os.path.isabs(interpreter) or any(c.isspace() for c in interpreter):
        raise ShimInstallError(
            "the shim interpreter must be an absolute path without whitespace", interpreter
        )
    return interpreter


def _atomic_write(target: str, content: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fchmod(f.fileno(), 0o755)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
