"""Hot-plug in the daemon (issue #12), end to end: the real shim and daemon, real bridge and
host-local plugins, real namespaces, pods and NADs in the stand-in API server. A test edits
the pod's ``k8s.v1.cni.cncf.io/networks`` in the API and waits for the pod namespace, the
stored network-status, host-local's allocations and the events to follow."""

from __future__ import annotations

import json

from tests.support.multus import NETWORKS, PodId
from tests.support.thick import ThickCluster, wait_for

NS = "default"
#: The daemon's own state file, kept under cniDir across sandboxes.
STATE_FILE = "pymultus-records/.hotplug-state.json"


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


def left_over(world: ThickCluster) -> list[str]:
    return [f for f in world.cache_files() if f != STATE_FILE]


def teardown_leaves_nothing(world: ThickCluster, pod: PodId) -> None:
    world.shim("DEL", pod).check_ok()
    assert links(world) == {"lo"}
    assert world.allocations() == []
    assert left_over(world) == []


def test_add_one_then_remove_it(hot: ThickCluster) -> None:
    nads(hot, "net-a", "net-b")
    pod = started(hot, "net-a")
    assert links(hot) == {"lo", "eth0", "net1"}
    set_networks(hot, pod, "net-a,net-b")
    converge(hot, {"lo", "eth0", "net1", "net2"})
    wait_for(lambda: len(status(hot, pod)) == 3, 5.0)
    assert status(hot, pod) == [
        ("pm-cluster", "eth0"),
        ("default/net-a", "net1"),
        ("default/net-b", "net2"),
    ]
    wait_event(hot, "AddedInterface", "pod [default/web]: added interface net2 to network: net-b")
    assert len(hot.allocations()) == 3

    set_networks(hot, pod, "net-a")
    converge(hot, {"lo", "eth0", "net1"})
    wait_for(lambda: len(status(hot, pod)) == 2, 5.0)
    assert status(hot, pod) == [("pm-cluster", "eth0"), ("default/net-a", "net1")]
    assert len(hot.allocations()) == 2
    wait_event(hot, "RemovedInterface", "removed interface net2 from network: net-b")
    teardown_leaves_nothing(hot, pod)
