"""Creating, deleting and inspecting named network namespaces (``ip netns``)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from pymultus.cni.errors import IOFailure

NETNS_DIR = "/var/run/netns"


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise IOFailure(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def create(name: str) -> str:
    """Create ``name`` with its loopback up; returns its path."""
    _ip("netns", "add", name)
    _ip("-n", name, "link", "set", "lo", "up")
    return os.path.join(NETNS_DIR, name)


def delete(name: str) -> None:
    """Delete ``name``; already gone is fine."""
    if exists(name):
        _ip("netns", "delete", name)


def ip_json(name: str, *args: str) -> Any:
    """``ip -j -n NAME ARGS`` parsed."""
    out = _ip("-j", "-n", name, *args)
    return json.loads(out) if out.strip() else []


def run_in(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command inside ``name`` (``ip netns exec``)."""
    return subprocess.run(
        ["ip", "netns", "exec", name, *argv], capture_output=True, text=True, check=False
    )
