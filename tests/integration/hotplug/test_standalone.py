"""Hot-plug in standalone mode (issue #12): no API server; the pod's selection is the pod file
``<podDir>/<ns>/<name>.yaml``, which the daemon polls. Driven through the demo's lab (the
standalone daemon in a throw-away node namespace, pods in their own namespaces)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymultus.cli import demo_lab
from pymultus.cli.demo_lab import HOTPLUG_NAD, PODS, Lab
from pymultus.netns import manage

POD = PODS[0]


@pytest.fixture
def lab() -> Iterator[Lab]:
    with demo_lab.lab() as world:
        world.write_files()
        world.make_namespaces()
        yield world


def links(lab: Lab) -> set[str]:
    return {link["ifname"] for link in manage.ip_json(lab.pod_netns(POD), "link", "show")}


def seconds_until(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "not in time"
        time.sleep(0.02)
    return time.monotonic() - started


def test_pod_file_change_is_picked_up_within_2_s(lab: Lab) -> None:
    config = Path(lab.start_daemon()).read_bytes()
    assert lab.shim("ADD", POD, config).returncode == 0
    time.sleep(1.0)  # the daemon has seen the pod as it was
    lab.select(POD, f"macvlan-a, {HOTPLUG_NAD}")
    assert seconds_until(lambda: links(lab) == {"lo", "eth0", "net1", "net3"}, 10.0) < 2.0
    status = lab.path("status", "demo", f"{POD}.json")
    seconds_until(lambda: "demo/bridge-c" in status.read_text(), 5.0)  # written after the ADD
    assert "demo/bridge-b" not in status.read_text()
    lab.select(POD, "macvlan-a")
    assert seconds_until(lambda: links(lab) == {"lo", "eth0", "net1"}, 10.0) < 2.0
    assert lab.shim("DEL", POD, config).returncode == 0
    lab.stop_daemon()
    assert [left for left in lab.leftovers() if not left.startswith("netns")] == []
