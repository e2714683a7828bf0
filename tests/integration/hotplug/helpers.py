"""What the hot-plug integration tests share: editing a pod's selection in the stand-in API
server, reading back links, network-status, events and ``pymultus status --hotplug``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.multus import NETWORKS, PodId
from tests.support.plugins import read_records
from tests.support.thick import ThickCluster, wait_for

NS = "default"


PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


def set_networks(world: ThickCluster, pod: PodId, value: str | None) -> None:
    """Edit the selection annotation of the stored pod, as ``kubectl annotate`` would."""
    obj = world.api.get_object("pods", pod.namespace, pod.name)
    assert obj is not None
    annotations = dict(obj["metadata"].get("annotations") or {})
    if value is None:
        annotations.pop(NETWORKS, None)
    else:
        annotations[NETWORKS] = value
    obj["metadata"]["annotations"] = annotations
    world.api.put_object(obj)


def status(world: ThickCluster, pod: PodId) -> list[tuple[str, str]]:
    """(network, interface) of each network-status entry, in order."""
    text = world.status_annotation(pod) or "[]"
    return [(e["name"], e.get("interface", "")) for e in json.loads(text)]


def links(world: ThickCluster) -> set[str]:
    return world.pod_links(world.pair.pod_path)


def event_reasons(world: ThickCluster) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in world.api.events]


def wait_event(world: ThickCluster, reason: str, text: str) -> None:
    """An event with ``reason`` whose message holds ``text`` (events go out in the
    background)."""
    wait_for(
        lambda: any(r[1] == reason and text in r[2] for r in event_reasons(world)),
        5.0,
        lambda: repr(event_reasons(world)),
    )


def hotplug_status(world: ThickCluster) -> dict[str, Any]:
    """``pymultus status --hotplug -o json``: the daemon's hot-plug state per pod."""
    argv = [PYMULTUS, "status", "--hotplug", "-o", "json", "--socket-dir", str(world.socket_dir)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    state: dict[str, Any] = json.loads(proc.stdout)
    return state


def nads(world: ThickCluster, *names: str) -> None:
    for i, name in enumerate(names, start=1):
        world.put_nad(NS, name, world.bridge_nad(name, f"pmb{name[-1]}{i}", 10 + i))


def started(world: ThickCluster, annotation: str | None) -> PodId:
    pod = world.put_pod(NS, "web", {NETWORKS: annotation} if annotation is not None else None)
    world.start_daemon()
    world.shim("ADD", pod).check_ok()
    return pod


def converge(world: ThickCluster, want_links: set[str], timeout: float = 10.0) -> None:
    wait_for(lambda: links(world) == want_links, timeout, lambda: f"{links(world)} {world.tail()}")


def teardown_leaves_nothing(world: ThickCluster, pod: PodId) -> None:
    world.shim("DEL", pod).check_ok()
    assert links(world) == {"lo"}
    assert world.allocations() == []
    assert world.cache_files() == []


def calls(world: ThickCluster, name: str) -> list[tuple[str, str]]:
    """(command, CNI_IFNAME) of every call the recorder NAD ``name`` got."""
    return [(r["command"], r["env"]["CNI_IFNAME"]) for r in read_records(world.record_file(name))]


def slow_add_running(world: ThickCluster, delay: float, cold: str, edit: str, ifname: str) -> PodId:
    """A pod ``cold``-attached, edited to ``edit``; returns once the slow recorder NAD
    ``rec-slow`` (each ADD takes ``delay`` s) is running its hot-plug ADD on ``ifname``."""
    slow = world.recorder_nad("rec-slow", behaviour={"ADD": {"action": "ok", "delay": delay}})
    world.put_nad(NS, "rec-slow", slow)
    nads(world, "net-b")
    pod = started(world, cold)
    set_networks(world, pod, edit)
    wait_for(lambda: calls(world, "rec-slow") == [("ADD", ifname)], 10.0, world.tail)
    return pod


def turn_hotplug_on(world: ThickCluster) -> None:
    conf = {**world.daemon_config(), "hotPlug": True}
    world.daemon_config_path.write_text(json.dumps(conf, indent=2))
    world.restart_daemon()


def pending_failures(world: ThickCluster) -> int:
    """How often the first pending attachment of default/web failed (0: none pending)."""
    pending = hotplug_status(world).get("default/web", {}).get("pending", [])
    return int(pending[0]["failures"]) if pending else 0
