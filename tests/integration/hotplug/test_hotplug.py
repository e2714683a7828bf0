"""Hot-plug in the daemon (issue #12), end to end: the real shim and daemon, real bridge and
host-local plugins, real namespaces, pods and NADs in the stand-in API server. A test edits
the pod's ``k8s.v1.cni.cncf.io/networks`` in the API and waits for the pod namespace, the
stored network-status, host-local's allocations and the events to follow.

Here: the edits (add, remove, both, reorder, unnamed and named elements, the same NAD twice,
a bad annotation), foreign status entries, latency, and hot-plug being off by default. The
failure cases are in ``test_hotplug_failures.py``."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from tests.integration.hotplug.helpers import (
    NS,
    calls,
    converge,
    links,
    nads,
    set_networks,
    started,
    status,
    teardown_leaves_nothing,
    wait_event,
)
from tests.support.multus import NETWORKS, STATUS, PodId
from tests.support.thick import ThickCluster, wait_for


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
    wait_for(lambda: len(hot.allocations()) == 2, 5.0)
    wait_event(hot, "RemovedInterface", "removed interface net2 from network: net-b")
    teardown_leaves_nothing(hot, pod)


def test_add_and_remove_in_one_edit(hot: ThickCluster) -> None:
    """#157: the new entry and the removal both land in one status write."""
    nads(hot, "net-a", "net-b")
    pod = started(hot, "net-a")
    set_networks(hot, pod, "net-b")
    converge(hot, {"lo", "eth0", "net2"})
    wait_for(lambda: status(hot, pod) == [("pm-cluster", "eth0"), ("default/net-b", "net2")], 5.0)
    wait_for(lambda: len(hot.allocations()) == 2, 5.0)
    teardown_leaves_nothing(hot, pod)


def test_reorder_changes_nothing(hot: ThickCluster) -> None:
    for name in ("rec-a", "rec-b", "rec-c"):
        hot.put_nad(NS, name, hot.recorder_nad(name))
    pod = started(hot, "rec-a,rec-b")
    assert calls(hot, "rec-a") == [("ADD", "net1")]
    assert calls(hot, "rec-b") == [("ADD", "net2")]
    set_networks(hot, pod, "rec-b,rec-a")
    set_networks(hot, pod, "rec-b,rec-a,rec-c")  # passes run in order: this one ends last
    wait_for(lambda: calls(hot, "rec-c") == [("ADD", "net3")], 10.0, hot.tail)
    wait_for(lambda: len(status(hot, pod)) == 4, 5.0)
    assert calls(hot, "rec-a") == [("ADD", "net1")]
    assert calls(hot, "rec-b") == [("ADD", "net2")]
    assert [s[0] for s in status(hot, pod)] == [
        "pm-cluster",
        "default/rec-a",
        "default/rec-b",
        "default/rec-c",
    ]


def test_unnamed_elements_keep_their_names(hot: ThickCluster) -> None:
    """#63: a cold unnamed ``net2`` stays ``net2`` when ``net1`` goes; a new unnamed element
    takes the lowest free name."""
    nads(hot, "net-a", "net-b", "net-c")
    pod = started(hot, "net-a,net-b")
    assert links(hot) == {"lo", "eth0", "net1", "net2"}
    address = hot.addrs("net2")
    set_networks(hot, pod, "net-b")
    converge(hot, {"lo", "eth0", "net2"})
    assert hot.addrs("net2") == address
    set_networks(hot, pod, "net-c,net-b")
    converge(hot, {"lo", "eth0", "net1", "net2"})
    wait_for(lambda: len(status(hot, pod)) == 3, 5.0)
    assert status(hot, pod) == [
        ("pm-cluster", "eth0"),
        ("default/net-b", "net2"),
        ("default/net-c", "net1"),
    ]
    assert hot.addrs("net2") == address
    teardown_leaves_nothing(hot, pod)


def test_named_element_next_to_unnamed(hot: ThickCluster) -> None:
    nads(hot, "net-a", "net-b")
    pod = started(hot, "net-a")
    set_networks(hot, pod, json.dumps([{"name": "net-a"}, {"name": "net-b", "interface": "blue"}]))
    converge(hot, {"lo", "eth0", "net1", "blue"})
    set_networks(hot, pod, json.dumps([{"name": "net-b", "interface": "blue"}]))
    converge(hot, {"lo", "eth0", "blue"})
    teardown_leaves_nothing(hot, pod)


def test_same_nad_twice(hot: ThickCluster) -> None:
    nads(hot, "net-a")
    pod = started(hot, "net-a")
    set_networks(hot, pod, "net-a,net-a")
    converge(hot, {"lo", "eth0", "net1", "net2"})
    wait_for(lambda: len(status(hot, pod)) == 3, 5.0)
    assert [s[0] for s in status(hot, pod)] == ["pm-cluster", "default/net-a", "default/net-a"]
    first = hot.addrs("net1")
    set_networks(hot, pod, "net-a")
    converge(hot, {"lo", "eth0", "net1"})
    assert hot.addrs("net1") == first
    wait_for(lambda: len(hot.allocations()) == 2, 5.0)
    teardown_leaves_nothing(hot, pod)


def test_bad_annotation_changes_nothing(hot: ThickCluster) -> None:
    nads(hot, "net-a", "net-b")
    pod = started(hot, "net-a")
    set_networks(hot, pod, "net-b@eth0")  # the cluster network's interface
    wait_event(hot, "FailedAddingInterface", "eth0")
    assert links(hot) == {"lo", "eth0", "net1"}
    assert [s[0] for s in status(hot, pod)] == ["pm-cluster", "default/net-a"]
    teardown_leaves_nothing(hot, pod)


def test_off_by_default(thick: ThickCluster) -> None:
    nads(thick, "net-a", "net-b")
    pod = started(thick, "net-a")
    set_networks(thick, pod, "net-a,net-b")
    nads(thick, "net-c")  # one more watch event after the edit, as a marker
    time.sleep(2)
    assert links(thick) == {"lo", "eth0", "net1"}
    assert not any(f.startswith("pymultus-records") for f in thick.cache_files())
    teardown_leaves_nothing(thick, pod)


def test_status_entries_written_by_others_are_kept(hot: ThickCluster) -> None:
    nads(hot, "net-a", "net-b")
    pod = started(hot, "net-a")
    obj = hot.api.get_object("pods", NS, pod.name)
    assert obj is not None
    entries = json.loads(obj["metadata"]["annotations"][STATUS])
    foreign = {"name": "other/sidecar-net", "interface": "sc0", "dns": {}}
    obj["metadata"]["annotations"][STATUS] = json.dumps([*entries, foreign])
    hot.api.put_object(obj)
    set_networks(hot, pod, "net-a,net-b")
    wait_for(lambda: len(status(hot, pod)) == 4, 10.0, hot.tail)
    assert status(hot, pod) == [
        ("pm-cluster", "eth0"),
        ("default/net-a", "net1"),
        ("default/net-b", "net2"),
        ("other/sidecar-net", "sc0"),
    ]
    set_networks(hot, pod, "net-b")
    wait_for(lambda: len(status(hot, pod)) == 3, 10.0, hot.tail)
    assert status(hot, pod)[-1] == ("other/sidecar-net", "sc0")
    teardown_leaves_nothing(hot, pod)


def test_a_pass_follows_the_edit_at_once(hot: ThickCluster) -> None:
    nads(hot, "net-a")
    pod = started(hot, "")
    edited = time.monotonic()
    set_networks(hot, pod, "net-a")
    converge(hot, {"lo", "eth0", "net1"})
    assert time.monotonic() - edited < 3.0  # watch event + pass + one bridge ADD
    teardown_leaves_nothing(hot, pod)


def test_an_edit_during_the_runtimes_add_is_applied_after_it(hot: ThickCluster) -> None:
    slow = hot.recorder_nad("rec-slow", behaviour={"ADD": {"action": "ok", "delay": 2}})
    hot.put_nad(NS, "rec-slow", slow)
    nads(hot, "net-b")
    pod = hot.put_pod(NS, "web", {NETWORKS: "rec-slow"})
    hot.start_daemon()
    with ThreadPoolExecutor(1) as pool:
        adding = pool.submit(hot.shim, "ADD", pod)
        wait_for(lambda: calls(hot, "rec-slow") == [("ADD", "net1")], 10.0, hot.tail)
        set_networks(hot, pod, "rec-slow,net-b")  # the ADD read the pod before this
        adding.result().check_ok()
    converge(hot, {"lo", "eth0", "net2"})  # the recorder makes no link
    wait_for(lambda: len(status(hot, pod)) == 3, 5.0)
    teardown_leaves_nothing(hot, pod)


def test_host_network_pod_edit_is_rejected_with_an_event(hot: ThickCluster) -> None:
    meta = {"namespace": NS, "name": "hostnet", "annotations": {NETWORKS: ""}}
    spec = {"nodeName": hot.node, "hostNetwork": True, "containers": [{"name": "c"}]}
    hot.api.put_object({"kind": "Pod", "metadata": meta, "spec": spec})
    nads(hot, "net-a")
    hot.start_daemon()
    pod = PodId(NS, "hostnet", "", container_id="")
    time.sleep(0.5)  # the daemon has seen the pod as it was
    set_networks(hot, pod, "net-a")
    wait_event(hot, "InterfaceAddRejected", "will not add interface to host networked pod")
