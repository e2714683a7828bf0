"""Helpers to use the recording test plugin (``recorder_plugin.py``) from pytest.

Typical use::

    rec = install_recorder(tmp_path / "bin", "rec-a")
    conf = recorder_conf("rec-a", tmp_path / "calls.jsonl", behaviour={"ADD": "error"})
    ...  # run it through pymultus
    assert read_records(tmp_path / "calls.jsonl")[0]["command"] == "ADD"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RECORDER_SOURCE = Path(__file__).with_name("recorder_plugin.py")


def install_recorder(
    bin_dir: Path,
    type_name: str,
    *,
    sidecar: dict[str, Any] | None = None,
    interpreter: str | None = sys.executable,
) -> Path:
    """Copy the recorder into ``bin_dir`` as an executable named ``type_name``.

    ``sidecar`` holds config defaults read on every call (the only config VERSION gets, as its
    stdin carries none), e.g. ``{"recordFile": ..., "behaviour": {"VERSION": "error"}}``.
    ``interpreter`` replaces the ``#!/usr/bin/env python3`` line (default: this Python, which
    starts in ~20 ms where a pyenv shim on PATH takes ~200 ms); ``None`` keeps it.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / type_name
    source = RECORDER_SOURCE.read_bytes()
    if interpreter:
        source = b"#!" + interpreter.encode() + source[source.index(b"\n") :]
    tmp = bin_dir / f".{type_name}.tmp"
    tmp.write_bytes(source)
    tmp.chmod(0o755)
    tmp.replace(target)  # atomic: a concurrent exec never sees a half-written file
    sidecar_path = bin_dir / f"{type_name}.json"
    if sidecar is not None:
        sidecar_path.write_text(json.dumps(sidecar), encoding="utf-8")
    else:
        sidecar_path.unlink(missing_ok=True)
    return target


def recorder_conf(
    type_name: str,
    record_file: Path,
    *,
    cni_version: str = "1.0.0",
    name: str = "recnet",
    behaviour: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A network config for the recorder installed as ``type_name``."""
    conf: dict[str, Any] = {
        "cniVersion": cni_version,
        "name": name,
        "type": type_name,
        "recordFile": str(record_file),
    }
    if behaviour is not None:
        conf["behaviour"] = behaviour
    conf.update(extra)
    return conf


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every call the recorder logged to ``path``, oldest first ([] when it never ran)."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
