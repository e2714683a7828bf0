"""Installing the thin ``multus`` plugin into a CNI bin dir, the way the shim is installed.

The runtime starts the plugin for every CNI call, so how it starts counts. What lands in the
bin dir is not a console-script wrapper (which runs ``site``, reads ``.pth`` files and entry
point metadata: ~20 ms before the plugin's first line) but ``shim.install``'s launcher: the
real interpreter (``realpath`` of the one running this, which leaves any venv or pyenv wrapper
behind) with ``-IS``, a fixed ``sys.path`` (the directory pymultus is imported from first, the
standard library, then the environment's ``site-packages`` — last, as ``site`` puts them: the
lean path imports only the standard library's C modules, and each directory before the
standard library is searched for every one of them) and its lines run from a compiled cache
beside it.
Written atomically, so a runtime never executes a half-written file ("text file busy" on
upgrade, Go Multus issue #1221); installing runs it once to warm the cache.
"""

from __future__ import annotations

import os
import sys

import pymultus
from pymultus.shim.install import install_program

PROGRAM = (
    "#!python\nimport sys\nsys.path[:0] = {first!r}\nsys.path += {rest!r}\n"
    "from pymultus.plugin.main import main\nmain()\n"
)


def import_paths() -> list[str]:
    """Where the plugin's code comes from: pymultus's parent directory, then every
    ``site-packages`` of this interpreter's path (its dependencies), without repeats."""
    found = [os.path.dirname(os.path.dirname(os.path.abspath(pymultus.__file__)))]
    found += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return list(dict.fromkeys(os.path.abspath(p) for p in found))


def install_thin(dest_dir: str, *, interpreter: str | None = None, name: str = "multus") -> str:
    """Install the thin plugin's launcher into ``dest_dir`` as ``name``; returns its path.

    ``interpreter`` (absolute) must be the same Python version as the one running this: the
    launcher imports its packages from this environment's ``site-packages``.
    """
    python = interpreter or os.path.realpath(sys.executable)
    paths = import_paths()
    program = PROGRAM.format(first=paths[:1], rest=paths[1:]).encode()
    return install_program(program, dest_dir, name, interpreter=python, origin="pymultus.plugin")
