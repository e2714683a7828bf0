"""``pymultus status`` shows what a node has attached; ``pymultus cache gc`` releases sandboxes
whose namespace vanished without a DEL (a runtime that lost track of them)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymultus.cli.demo_lab import NAMESPACE, Lab
from pymultus.netns import manage

PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


@pytest.fixture
def lab() -> Iterator[Lab]:
    world = Lab()
    try:
        world.write_files()
        world.make_namespaces()
        yield world
    finally:
        world.destroy()


def _pymultus(*argv: str, netns: str = "") -> subprocess.CompletedProcess[str]:
    """``pymultus`` on the node: inside the lab's "host" namespace when ``netns`` is given."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, PYMULTUS, *argv], capture_output=True, text=True, check=False)


def _allocations(lab: Lab) -> list[str]:
    return [p.name for p in lab.path("ipam").rglob("*") if p.name[:1].isdigit()]


def test_status_then_gc_of_a_vanished_sandbox(lab: Lab) -> None:
    config = Path(lab.start_daemon()).read_bytes()
    added = lab.shim("ADD", "pod-a", config)
    assert added.returncode == 0, added.stdout
    cni = str(lab.path("cni"))

    shown = _pymultus("status", f"{NAMESPACE}/pod-a", "--cni-dir", cni, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert sorted(r["interface"] for r in rows) == ["eth0", "net1", "net2"]
    assert all(r["pod"] == f"{NAMESPACE}/pod-a" and r["ips"] for r in rows)
    assert _pymultus("status", "nobody", "--cni-dir", cni).returncode == 1

    manage.delete(lab.pod_netns("pod-a"))  # the sandbox is gone, no DEL ever came
    gc = _gc_argv(lab)
    dry = _pymultus(*gc, "--dry-run", netns=lab.host)
    assert dry.returncode == 0 and "would remove" in dry.stdout, dry.stdout
    assert len(_allocations(lab)) == 3

    done = _pymultus(*gc, netns=lab.host)
    assert done.returncode == 0, done.stdout
    assert lab.container_id("pod-a") in done.stdout.replace("\n", "")
    assert _allocations(lab) == []
    assert not [p for p in lab.path("cni").rglob("*") if p.is_file()]
    assert not lab.path("status", NAMESPACE).exists()  # its last record: the directory too
    assert "no stale sandbox" in _pymultus(*gc, netns=lab.host).stdout


def _gc_argv(lab: Lab) -> list[str]:
    cni, status = str(lab.path("cni")), str(lab.path("status"))
    return ["cache", "gc", "--cni-dir", cni, "--bin-dir", "/usr/lib/cni", "--status-dir", status]


def test_gc_releases_a_sandbox_whose_delegate_cache_was_lost(lab: Lab) -> None:
    """Only libcni's results are left (the delegate cache file is gone): gc still finds the
    sandbox and its DEL runs what the results recorded, releasing every address."""
    config = Path(lab.start_daemon()).read_bytes()
    assert lab.shim("ADD", "pod-a", config).returncode == 0
    lab.path("cni", lab.container_id("pod-a")).unlink()
    manage.delete(lab.pod_netns("pod-a"))
    assert len(_allocations(lab)) == 3

    done = _pymultus(*_gc_argv(lab), netns=lab.host)
    assert done.returncode == 0, done.stdout
    assert lab.container_id("pod-a") in done.stdout.replace("\n", "")
    assert _allocations(lab) == []
    assert not [p for p in lab.path("cni").rglob("*") if p.is_file()]
