"""Installing the thin ``multus`` plugin into a CNI bin dir.

The thin plugin is this package; what lands in the bin dir is a two-line launcher run by the
interpreter that has pymultus installed, written atomically (temp file + rename) so a runtime
never executes a half-written file ("text file busy" on upgrade, Go Multus issue #1221).
"""

from __future__ import annotations

import os
import sys

from pymultus.cni.atomic import write_atomic

LAUNCHER = "#!{python} -I\nfrom pymultus.plugin.main import main\nmain()\n"


def install_thin(dest_dir: str, *, interpreter: str | None = None, name: str = "multus") -> str:
    python = interpreter or sys.executable  # a venv interpreter keeps its venv: no realpath
    target = os.path.join(dest_dir, name)
    os.makedirs(dest_dir, exist_ok=True)
    write_atomic(target, LAUNCHER.format(python=python).encode(), mode=0o755, durable=True)
    return target
