"""Installing the thin ``multus`` plugin into a CNI bin dir, the way the shim is installed.

The runtime starts the plugin for every CNI call, so how it starts counts. What lands in the
bin dir is not a console-script wrapper (which runs ``site``, reads ``.pth`` files and entry
point metadata: ~20 ms before the plugin's first line) but ``shim.install``'s launcher: a
real interpreter (never a venv or pyenv wrapper; which one: below) with ``-IS``, a fixed
``sys.path`` (the directory pymultus is imported from first, the standard library, then the
environment's ``site-packages`` — last, as ``site`` puts them: the lean path imports only the
standard library's C modules, and each directory before the standard library is searched for
every one of them) and its lines run from a compiled cache beside it.
Written atomically, so a runtime never executes a half-written file ("text file busy" on
upgrade, Go Multus issue #1221); installing runs it once to warm the cache, then writes the lean
path's bundles beside it (``plugin.preload``), with the launcher's interpreter.

Which interpreter: the system's ``/usr/bin/python3`` when it is of the same CPython line as
this one (the same bytecode cache tag and extension-module ABI, so it runs this environment's
packages as they are, which the install checks by importing them with it), else the one
running this. A distribution's build (optimised, libpython linked in) starts faster than a
shared-library build such as pyenv's: here 1.2 ms less per start and ~3.5 ms less CPU per thin
ADD, a tenth of the call. On a host whose environment was made from ``/usr/bin/python3`` both
are the same file.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES

import pymultus
from pymultus.plugin.preload import ROOTS
from pymultus.shim.install import SYSTEM_PYTHON, install_program, run_python

#: The launcher's program, after ``with_paths``.
PROGRAM = "from pymultus.plugin.main import main\nmain(launcher=globals().get('__file__', ''))\n"
#: Run by the launcher's interpreter at install, after ``with_paths``: one verb's bundle.
BUILDER = "from pymultus.plugin.preload import build\nbuild({launcher!r}, {verb!r})\n"
BUILD_TIMEOUT = 30.0  # seconds per bundle; it takes well under one
#: What another interpreter must import to stand in for this one: the full path's modules and
#: every dependency with compiled parts.
PROBED = ("pymultus.plugin.call", "msgspec", "yaml", "lightkube", "pyroute2", "grpc")
PROBE_TIMEOUT = 30.0  # seconds; importing the full path takes well under one


def import_paths() -> list[str]:
    """Where the plugin's code comes from: pymultus's parent directory, then every
    ``site-packages`` of this interpreter's path (its dependencies), without repeats."""
    found = [os.path.dirname(os.path.dirname(os.path.abspath(pymultus.__file__)))]
    found += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return list(dict.fromkeys(os.path.abspath(p) for p in found))


def with_paths(paths: list[str], code: str) -> str:
    """``code`` after the lines that give the interpreter the launcher's fixed ``sys.path``:
    ``paths[0]`` first, the rest after the standard library."""
    return f"import sys\nsys.path[:0] = {paths[:1]!r}\nsys.path += {paths[1:]!r}\n{code}"


def install_thin(dest_dir: str, *, interpreter: str | None = None, name: str = "multus") -> str:
    """Install the thin plugin's launcher into ``dest_dir`` as ``name``; returns its path.

    ``interpreter`` (absolute) must be the same Python version as the one running this: the
    launcher imports its packages from this environment's ``site-packages``.
    """
    paths = import_paths()
    python = interpreter or default_interpreter(paths)
    program = ("#!python\n" + with_paths(paths, PROGRAM)).encode()
    target = install_program(program, dest_dir, name, interpreter=python, origin="pymultus.plugin")
    for verb in ROOTS:
        build_bundle(target, verb, python, paths)
    return target


def build_bundle(launcher: str, verb: str, interpreter: str, paths: list[str]) -> bool:
    """Write the lean path's bundle of ``verb`` beside ``launcher`` (``plugin.preload``) with
    the launcher's interpreter; False when it could not (the plugin then imports as usual:
    the interpreter may be a host path absent here)."""
    code = with_paths(paths, BUILDER.format(launcher=launcher, verb=verb))
    return run_python(interpreter, code, BUILD_TIMEOUT) is not None


def default_interpreter(paths: list[str]) -> str:
    """``/usr/bin/python3`` when it can stand in for this interpreter, else this one's real
    path (``realpath``, which leaves any venv or pyenv wrapper behind)."""
    real = os.path.realpath(sys.executable)
    if os.path.realpath(SYSTEM_PYTHON) == real or not stands_in(SYSTEM_PYTHON, paths):
        return real
    return SYSTEM_PYTHON


def stands_in(interpreter: str, paths: list[str]) -> bool:
    """True when ``interpreter`` has this one's cache tag and extension suffix and imports
    ``PROBED`` from ``paths`` as the launcher would."""
    code = with_paths(
        paths,
        "import importlib, importlib.machinery as m\n"
        f"for n in {PROBED!r}: importlib.import_module(n)\n"
        "print(sys.implementation.cache_tag, m.EXTENSION_SUFFIXES[0])\n",
    )
    out = run_python(interpreter, code, PROBE_TIMEOUT)
    ours = f"{sys.implementation.cache_tag} {EXTENSION_SUFFIXES[0]}"
    return out is not None and out.decode(errors="replace").strip() == ours
