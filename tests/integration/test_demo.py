"""``make demo``'s job runs to the end and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


def _netns() -> set[str]:
    """The demo's namespaces (other tests may create their own at the same time)."""
    try:
        return {n for n in os.listdir("/var/run/netns") if n.startswith("pmdemo-")}
    except FileNotFoundError:
        return set()


def _links() -> set[str]:
    return {n for n in os.listdir("/sys/class/net") if n.startswith(("pmbr", "pmmv", "pmmp"))}


def test_demo_runs_and_leaves_nothing() -> None:
    netns_before, links_before = _netns(), _links()
    out = subprocess.run(
        [PYMULTUS, "demo"], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "nothing" in out.stdout.lower() or "no namespace" in out.stdout.lower()
    for step in ("net3 appeared in pod-a", "over net3", "net3 left pod-a"):  # hot-plug
        assert step in out.stdout, out.stdout
    assert _netns() == netns_before
    assert _links() == links_before
