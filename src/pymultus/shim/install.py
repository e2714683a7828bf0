"""Install ``multus-shim`` into a CNI bin dir, as Go Multus's ``install_multus -t thick`` does.

The shim is one file (``multus_shim.py`` beside this module) that works on its own. What is
installed is a faster form of it, because the runtime runs it for every CNI call and CPython
compiles a script from source on every run (``__main__`` never gets a ``.pyc``): compiling the
shim was 8 of its ~24 ms. So ``multus-shim`` is a small launcher (``LAUNCHER``) that holds the
compact program (no docstrings, annotations or ``__future__`` import) in one string literal,
which tokenizes in a fraction of a millisecond, and runs it from a compiled cache beside it,
``.multus-shim.<cache tag>.bin`` (``marshal`` of the code, behind a header of the interpreter's
magic number and a stamp of the program). A missing, foreign or stale cache is rebuilt by the
call that finds it, like CPython's ``__pycache__``; installing runs the shim once so the cache
is there before the first real call. The launcher is still one self-sufficient file: copied
alone it works, compiling until it can write its cache. ``passthru`` is installed the same way.
Removing a script removes ``cache_files(script)`` too (``pymultus uninstall`` does).

Installing writes atomically: a temporary file in the destination directory, mode 0755, fsync,
then a rename over ``multus-shim``. A runtime that runs the shim during an upgrade therefore
sees the old file or the new one, never half of one, and never the old program's cache with the
new file (the stamps differ; installing removes old caches before it warms the new one).

The ``#!`` line is rewritten to an absolute interpreter path followed by ``-IS``. Why not
``#!/usr/bin/env python3``: ``python3`` on the PATH of a kubelet or containerd may be a pyenv or
virtualenv wrapper that costs tens of milliseconds per call, or nothing at all. The default is
``/usr/bin/python3`` when it is there and at least 3.8 (an upgrade of the OS's Python keeps that
path working), else the real interpreter running this code (``realpath(sys.executable)``, which
leaves any venv or pyenv wrapper behind).

A bad interpreter or destination is a ``ShimInstallError``, an ``OSError`` naming the path at
fault; a failed write is ``cni.atomic``'s ``IOFailure``. (Only ``multus_shim.py`` itself must
import nothing of the package; this module writes with ``cni.atomic.write_atomic``.)
"""

from __future__ import annotations

import ast
import contextlib
import errno
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from pymultus.cni.atomic import write_atomic

SHIM_NAME = "multus-shim"
SHIM_SOURCE = Path(__file__).with_name("multus_shim.py")
#: Multus's no-op head of the auxiliary chain: stdlib-only like the shim, installed the same way.
PASSTHRU_NAME = "passthru"
PASSTHRU_SOURCE = Path(__file__).parents[1] / "plugin" / "passthru.py"
SYSTEM_PYTHON = "/usr/bin/python3"
MIN_PYTHON = (3, 8)
INTERPRETER_FLAGS = "-IS"  # isolated, no site; ONE word: Linux passes a single #! argument
PROBE_TIMEOUT = 10.0  # seconds for `python -c` to report its version; it takes milliseconds
WARM_TIMEOUT = 5.0  # seconds for the first run that writes the compiled cache (~30 ms)
CACHE_SUFFIX = ".bin"  # .<name>.<sys.implementation.cache_tag>.bin beside the script
TEMP_SUFFIX = ".tmp"  # a file being written; renamed over its target when complete

#: The installed file after its ``#!`` line; ``{stamp}`` and ``{body}`` are filled in. Python
#: 3.8 syntax and nothing imported that ``python -I -S`` has not loaded already. The header of
#: the cache is the interpreter's bytecode magic number and the stamp of this body: a cache of
#: another Python or another install is never run, it is rewritten. Only a cache owned by this
#: user or root and writable by no one else is trusted (the bin dir is root's; this is for a
#: copy in a shared directory).
LAUNCHER = """\
# Installed by pymultus.shim.install. The program is _BODY; it runs from the compiled cache
# .<this file's name>.<Python cache tag>.bin beside this file when that was made from this
# _BODY by this Python, else _BODY is compiled and the cache written for the next call.
_STAMP = b"{stamp}"
_BODY = {body}


def _code(body, stamp):
    import marshal
    import posix
    import sys

    script = globals().get("__file__") or "<string>"
    cache = head = None
    try:
        if not script.startswith("<"):  # run from a file (not <stdin>): its cache is beside it
            head = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER + stamp
            where, slash, name = script.rpartition("/")
            cache = where + slash + "." + name + "." + sys.implementation.cache_tag + ".bin"
            with open(cache, "rb") as f:
                info = posix.fstat(f.fileno())
                data = f.read()
            trusted = info.st_uid in (0, posix.geteuid()) and not info.st_mode & 0o22
            if trusted and data[: len(head)] == head:
                return marshal.loads(memoryview(data)[len(head) :])
    except Exception:
        pass
    code = compile(body, script, "exec", dont_inherit=True)
    if cache is not None and head is not None:
        temp = cache + "." + str(posix.getpid()) + ".tmp"
        flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC
        try:
            with open(posix.open(temp, flags, 0o644), "wb") as f:
                f.write(head + marshal.dumps(code))
            posix.rename(temp, cache)
        except Exception:
            try:
                posix.unlink(temp)
            except Exception:
                pass
    return code


exec(_code(_BODY, _STAMP))
"""


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

    Raises ``ShimInstallError`` for a bad interpreter or destination, and ``IOFailure`` when
    writing fails.
    """
    return install_script(SHIM_SOURCE, dest_dir, SHIM_NAME, interpreter=interpreter)


def install_passthru(dest_dir: str, *, interpreter: str | None = None) -> str:
    """Copy ``passthru`` (the auxiliary chain's head) into ``dest_dir``, like the shim."""
    return install_script(PASSTHRU_SOURCE, dest_dir, PASSTHRU_NAME, interpreter=interpreter)


def install_script(
    source: Path, dest_dir: str, name: str, *, interpreter: str | None = None
) -> str:
    """Install a stdlib-only script into ``dest_dir`` as ``name`` (atomic, 0755): the launcher
    of its compact form, ``#!<interpreter> -IS`` (default: see the module docstring), then
    warm its compiled cache. Returns the script's path."""
    chosen = _checked_path(interpreter) if interpreter is not None else default_interpreter()
    program = compact_source(source.read_bytes())
    return install_program(program, dest_dir, name, interpreter=chosen, origin=str(source))


def install_program(
    program: bytes, dest_dir: str, name: str, *, interpreter: str, origin: str = "the script"
) -> str:
    """Install ``program`` (a script with a ``#!`` line, which is replaced) into ``dest_dir``
    as ``name``: the launcher run by ``#!<interpreter> -IS`` from its compiled cache, written
    atomically, old caches removed and the new one warmed. Returns the installed path."""
    chosen = _checked_path(interpreter)
    if not os.path.isdir(dest_dir):
        raise ShimInstallError("CNI bin directory does not exist", dest_dir)
    content = launcher_source(program, chosen, origin)
    target = os.path.join(dest_dir, name)
    write_atomic(target, content, mode=0o755, durable=True)
    for stale in cache_files(target):  # an older program's, or another Python's
        with contextlib.suppress(OSError):
            os.unlink(stale)
    warm_cache(target)
    return target


def compact_source(source: bytes) -> bytes:
    """The same program without docstrings, annotations and ``from __future__`` imports (the
    ``#!`` line kept).

    Less to compile when the cache is cold, and less to load from it: no docstrings in the
    code objects, and no ``__future__`` module to import (0.2 ms) once no annotation is left
    (every other ``__future__`` feature is always on in Python >= 3.7).
    Annotated assignments become plain ones (a module-level annotation would be evaluated
    without ``from __future__ import annotations``). ``ast.unparse`` keeps the 3.8-compatible
    syntax of the source; tests run both forms.
    """
    first, newline, rest = source.partition(b"\n")
    tree = ast.parse(rest.decode())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _drop_annotations(node)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            node.body = _without_docstring(node.body)
        for field, value in ast.iter_fields(node):
            if isinstance(value, list) and any(isinstance(x, _PLAIN_ONLY) for x in value):
                setattr(node, field, _plain_statements(value))
    return first + newline + ast.unparse(tree).encode() + b"\n"


_PLAIN_ONLY = (ast.AnnAssign, ast.ImportFrom)


def _plain_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """``body`` with ``x: T = v`` as ``x = v``, and ``x: T`` and ``__future__`` imports gone."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
            continue
        if not isinstance(stmt, ast.AnnAssign):
            out.append(stmt)
        elif stmt.value is not None:
            out.append(ast.Assign(targets=[stmt.target], value=stmt.value, lineno=stmt.lineno))
    return out or [ast.Pass()]


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


def launcher_source(program: bytes, interpreter: str, origin: str = "the script") -> bytes:
    """The installed file: ``#!<interpreter> -IS``, then ``LAUNCHER`` holding ``program`` (a
    script with its own ``#!`` line, which is dropped) as one string literal and a stamp of it.
    ``origin`` names the source in the error for a program without a ``#!`` line."""
    first, newline, body = program.partition(b"\n")
    if not first.startswith(b"#!") or not newline:
        raise ShimInstallError("the script has no #! line", origin)
    stamp = hashlib.sha256(body).hexdigest()[:32]
    code = LAUNCHER.format(stamp=stamp, body=repr(body.decode()))
    return f"#!{interpreter} {INTERPRETER_FLAGS}\n".encode() + code.encode()


def cache_files(script: str) -> list[str]:
    """The compiled caches beside an installed ``script`` (one per Python that ran it) and
    temporary files an interrupted install or cache write left: what removing it removes."""
    directory, name = os.path.split(script)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    prefix = f".{name}."
    return sorted(
        os.path.join(directory, n)
        for n in names
        if n.startswith(prefix) and n.endswith((CACHE_SUFFIX, TEMP_SUFFIX))
    )


def warm_cache(script: str) -> None:
    """Run the installed ``script`` once (``CNI_COMMAND=VERSION``) so its compiled cache is
    there before the runtime's first call. Failure is ignored: the interpreter may be a host
    path absent here, and the first real call writes the cache then."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [script],
            env={"CNI_COMMAND": "VERSION"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=WARM_TIMEOUT,
            check=False,
        )


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
    return run_python(interpreter, code, PROBE_TIMEOUT) is not None


def run_python(interpreter: str, code: str, timeout: float) -> bytes | None:
    """``code`` run by ``interpreter -IS -c``: its stdout, or None when it could not run,
    timed out or exited with a non-zero status."""
    try:
        done = subprocess.run(
            [interpreter, INTERPRETER_FLAGS, "-c", code],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _checked_path(interpreter: str) -> str:
    if not os.path.isabs(interpreter) or any(c.isspace() for c in interpreter):
        raise ShimInstallError(
            "the shim interpreter must be an absolute path without whitespace", interpreter
        )
    return interpreter
