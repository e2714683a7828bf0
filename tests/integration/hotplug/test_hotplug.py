"""Hot-plug in the daemon (issue #12), end to end: the real shim and daemon, real bridge and
host-local plugins, real namespaces, pods and NADs in the stand-in API server. A test edits
the pod's ``k8s.v1.cni.cncf.io/networks`` in the API and waits for the pod namespace, the
stored network-status, host-local's allocations and the events to follow."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.support.multus import NETWORKS, STATUS, PodId
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


def calls(world: ThickCluster, name: str) -> list[tuple[str, str]]:
    """(command, CNI_IFNAME) of every call the recorder NAD ``name`` got."""
    return [(r["command"], r["env"]["CNI_IFNAME"]) for r in read_records(world.record_file(name))]


def names_in_status(world: ThickCluster, pod: PodId) -> list[tuple[str, str]]:
    return status(world, pod)


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


def test_failing_network_is_retried_with_backoff_while_others_proceed(hot: ThickCluster) -> None:
    nads(hot, "net-a", "net-b")
    failing = hot.recorder_nad("rec-x", behaviour={"ADD": {"action": "error", "msg": "no way"}})
    hot.put_nad(NS, "rec-x", failing)
    pod = started(hot, "net-a")
    set_networks(hot, pod, "net-a,rec-x,net-b")
    converge(hot, {"lo", "eth0", "net1", "net3"})
    wait_event(hot, "FailedAddingInterface", "failed adding interface net2 to network: rec-x")
    wait_for(lambda: len(status(hot, pod)) == 3, 5.0)
    assert [s[0] for s in status(hot, pod)] == ["pm-cluster", "default/net-a", "default/net-b"]
    # retried after 1 s, then 2 s: three ADDs within ~4 s, none at once
    wait_for(lambda: calls(hot, "rec-x").count(("ADD", "net2")) >= 3, 10.0, hot.tail)
    times = [r["time"] for r in read_records(hot.record_file("rec-x")) if r["command"] == "ADD"]
    assert times[1] - times[0] >= 0.9
    assert times[2] - times[1] >= 1.8

    def failures() -> int:
        pending = hotplug_status(hot).get("default/web", {}).get("pending", [])
        return int(pending[0]["failures"]) if pending else 0

    wait_for(lambda: failures() >= 3, 5.0)
    shown = hotplug_status(hot)["default/web"]
    assert shown["attached"] == ["default/net-a@net1", "default/net-b@net3"]
    [pending] = shown["pending"]
    assert (pending["network"], pending["interface"]) == ("default/rec-x", "net2")
    assert "no way" in pending["error"]
    assert pending["failures"] >= 3
    assert pending["nextRetry"] > time.time()
    hot.put_nad(NS, "rec-x", hot.recorder_nad("rec-x"))  # fixed: the next retry attaches it
    wait_for(lambda: len(status(hot, pod)) == 4, 15.0, hot.tail)
    assert [s[0] for s in status(hot, pod)][-1] == "default/rec-x"
    assert calls(hot, "rec-x")[-1] == ("ADD", "net2")
    teardown_leaves_nothing(hot, pod)


def test_status_write_failing_after_add_is_retried_without_a_second_add(hot: ThickCluster) -> None:
    """#235: the ADD is recorded first; only the status write is tried again."""
    hot.put_nad(NS, "rec-a", hot.recorder_nad("rec-a"))
    pod = started(hot, "")
    failed: list[str] = []

    def fail_status_writes(entry: Any) -> None:
        if entry.method in ("PATCH", "PUT") and entry.path.endswith("/status") and len(failed) < 2:
            failed.append(entry.path)
            hot.api.fail_next(1, 500)

    hot.api.on_request = fail_status_writes
    set_networks(hot, pod, "rec-a")
    wait_for(lambda: len(status(hot, pod)) == 2, 15.0, hot.tail)
    assert len(failed) == 2
    assert calls(hot, "rec-a") == [("ADD", "net1")]
    assert status(hot, pod)[1][0] == "default/rec-a"


def test_nad_deleted_before_removal_is_deleted_with_the_recorded_config(
    hot: ThickCluster,
) -> None:
    nads(hot, "net-a", "net-b")
    pod = started(hot, "net-a,net-b")
    hot.api.delete_object("network-attachment-definitions", NS, "net-b")
    set_networks(hot, pod, "net-a")
    converge(hot, {"lo", "eth0", "net1"})
    wait_for(lambda: len(hot.allocations()) == 2, 5.0)  # bridge releases after the link
    teardown_leaves_nothing(hot, pod)


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


def test_pod_deleted_mid_pass(hot: ThickCluster) -> None:
    """The pass stops before ADDing into a dying pod; teardown leaves nothing."""
    pod = slow_add_running(hot, 2, "", "rec-slow,net-b", "net1")
    hot.api.delete_object("pods", NS, pod.name)
    time.sleep(3)  # the slow ADD ends; the pass must not go on with net-b
    assert "net2" not in links(hot)
    teardown_leaves_nothing(hot, pod)
    assert calls(hot, "rec-slow")[-1][0] == "DEL"


def test_daemon_killed_mid_pass_converges_after_restart(hot: ThickCluster) -> None:
    pod = slow_add_running(hot, 5, "net-b", "net-b,rec-slow", "net2")
    hot.kill_daemon()
    hot.kill_recorded_plugins()
    hot.put_nad(NS, "rec-slow", hot.recorder_nad("rec-slow"))
    hot.start_daemon()
    wait_for(lambda: len(status(hot, pod)) == 3, 15.0, hot.tail)
    # the half-made attachment was DELed with its recorded config, then made once
    assert calls(hot, "rec-slow") == [("ADD", "net2"), ("DEL", "net2"), ("ADD", "net2")]
    assert [s[0] for s in status(hot, pod)] == ["pm-cluster", "default/net-b", "default/rec-slow"]
    assert links(hot) == {"lo", "eth0", "net1"}
    teardown_leaves_nothing(hot, pod)


PODS = 50
WORKERS = 8


def test_50_pods_edited_at_once_converge_within_30_s(hot: ThickCluster) -> None:
    nads(hot, "net-a")
    pods = [(hot.put_pod(NS, f"p{i:02d}"), hot.new_netns()) for i in range(PODS)]
    hot.start_daemon()

    def shim(command: str, pod_netns: tuple[PodId, str]) -> None:
        pod, netns = pod_netns
        hot.shim(command, pod, netns=netns).check_ok()

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda p: shim("ADD", p), pods))
    started_at = time.monotonic()
    for pod, _ in pods:
        set_networks(hot, pod, "net-a")

    def converged() -> bool:
        return all(hot.pod_links(netns) == {"lo", "eth0", "net1"} for _, netns in pods)

    wait_for(converged, 30.0, hot.tail)
    assert time.monotonic() - started_at < 30.0
    wait_for(lambda: all(len(status(hot, pod)) == 2 for pod, _ in pods), 10.0)
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda p: shim("DEL", p), pods))
    assert hot.allocations() == []
    assert hot.cache_files() == []


def test_off_by_default(thick: ThickCluster) -> None:
    nads(thick, "net-a", "net-b")
    pod = started(thick, "net-a")
    set_networks(thick, pod, "net-a,net-b")
    nads(thick, "net-c")  # one more watch event after the edit, as a marker
    time.sleep(2)
    assert links(thick) == {"lo", "eth0", "net1"}
    assert not any(f.startswith("pymultus-records") for f in thick.cache_files())
    teardown_leaves_nothing(thick, pod)


def turn_hotplug_on(world: ThickCluster) -> None:
    conf = {**world.daemon_config(), "hotPlug": True}
    world.daemon_config_path.write_text(json.dumps(conf, indent=2))
    world.restart_daemon()


def test_pod_attached_before_hotplug_is_adopted(thick: ThickCluster) -> None:
    """Attached with hot-plug off (no record): adopted from the delegate cache and libcni's
    result cache; its cold attachment is removed with the config libcni cached."""
    nads(thick, "net-a", "net-b")
    pod = started(thick, "net-a")
    turn_hotplug_on(thick)
    set_networks(thick, pod, "net-b")
    converge(thick, {"lo", "eth0", "net2"})
    wait_for(lambda: status(thick, pod) == [("pm-cluster", "eth0"), ("default/net-b", "net2")], 5.0)
    wait_for(lambda: len(thick.allocations()) == 2, 5.0)
    assert "adopted pod default/web" in thick.daemon_log()
    teardown_leaves_nothing(thick, pod)


def test_pod_without_caches_is_left_alone_with_one_log_line(hot: ThickCluster) -> None:
    nads(hot, "net-a", "net-b")
    pod = started(hot, "net-a")
    for name in hot.cache_files():
        (hot.cni_dir / name).unlink()  # as if attached by something that keeps no cache
    set_networks(hot, pod, "net-a,net-b")
    set_networks(hot, pod, "net-b")
    wait_for(lambda: "cannot be found in the caches" in hot.daemon_log(), 5.0)
    assert hot.daemon_log().count("cannot be found in the caches") == 1
    assert links(hot) == {"lo", "eth0", "net1"}


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


def test_nad_created_later_is_attached_without_another_edit(hot: ThickCluster) -> None:
    """A missing NAD: Warning, retries with backoff; once it is created the waiting
    attachment is tried at once, not at the end of its backoff."""
    nads(hot, "net-a")
    pod = started(hot, "net-a")
    set_networks(hot, pod, "net-a,late")
    wait_event(hot, "NoNetworkFound", "(late)")

    def failures() -> int:
        pending = hotplug_status(hot).get("default/web", {}).get("pending", [])
        return int(pending[0]["failures"]) if pending else 0

    wait_for(lambda: failures() >= 4, 15.0, hot.tail)  # the next try is 8 s away
    created = time.monotonic()
    hot.put_nad(NS, "late", hot.bridge_nad("late", "pmblate", 30))
    converge(hot, {"lo", "eth0", "net1", "net2"})
    assert time.monotonic() - created < 3.0
    wait_for(lambda: len(status(hot, pod)) == 3, 5.0)
    teardown_leaves_nothing(hot, pod)


def test_a_pass_follows_the_edit_at_once(hot: ThickCluster) -> None:
    nads(hot, "net-a")
    pod = started(hot, "")
    edited = time.monotonic()
    set_networks(hot, pod, "net-a")
    converge(hot, {"lo", "eth0", "net1"})
    assert time.monotonic() - edited < 3.0  # watch event + pass + one bridge ADD
    teardown_leaves_nothing(hot, pod)
