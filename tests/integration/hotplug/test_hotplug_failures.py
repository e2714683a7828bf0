"""Hot-plug when things go wrong (issue #12): a failing network and its backoff, a failing
status write (#235), a NAD deleted before its removal or created late, the pod deleted or the
daemon killed mid-pass, pods attached without a record (adoption), and 50 pods edited at once.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.integration.hotplug.helpers import (
    NS,
    calls,
    converge,
    hotplug_status,
    links,
    nads,
    pending_failures,
    set_networks,
    slow_add_running,
    started,
    status,
    teardown_leaves_nothing,
    turn_hotplug_on,
    wait_event,
)
from tests.support.multus import PodId
from tests.support.plugins import read_records
from tests.support.thick import ThickCluster, wait_for


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

    wait_for(lambda: pending_failures(hot) >= 3, 5.0)
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
    path = f"/pods/{pod.name}/status"
    before = len(hot.api.requests("PATCH", path))  # the runtime's ADD wrote it once
    hot.api.fail_matching("PATCH", path, n=2, status=500)
    set_networks(hot, pod, "rec-a")
    wait_for(lambda: len(status(hot, pod)) == 2, 15.0, hot.tail)
    # two refused, the third (after 1 s, then 2 s more) written
    assert len(hot.api.requests("PATCH", path)) - before == 3
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


def test_nad_created_later_is_attached_without_another_edit(hot: ThickCluster) -> None:
    """A missing NAD: Warning, retries with backoff; once it is created the waiting
    attachment is tried at once, not at the end of its backoff."""
    nads(hot, "net-a")
    pod = started(hot, "net-a")
    set_networks(hot, pod, "net-a,late")
    wait_event(hot, "NoNetworkFound", "(late)")

    wait_for(lambda: pending_failures(hot) >= 4, 15.0, hot.tail)  # the next try is 8 s away
    created = time.monotonic()
    hot.put_nad(NS, "late", hot.bridge_nad("late", "pmblate", 30))
    converge(hot, {"lo", "eth0", "net1", "net2"})
    assert time.monotonic() - created < 3.0
    wait_for(lambda: len(status(hot, pod)) == 3, 5.0)
    teardown_leaves_nothing(hot, pod)


def test_failing_removal_keeps_the_attachment_listed_and_warns(hot: ThickCluster) -> None:
    stuck = hot.recorder_nad("rec-stuck", behaviour={"DEL": {"action": "error", "msg": "stuck"}})
    hot.put_nad(NS, "rec-stuck", stuck)
    nads(hot, "net-b")
    pod = started(hot, "rec-stuck,net-b")
    set_networks(hot, pod, "net-b")
    wait_event(hot, "FailedRemovingInterface", "failed removing interface net1 from network")
    wait_for(lambda: pending_failures(hot) >= 2, 10.0, hot.tail)  # retried
    assert [s[0] for s in status(hot, pod)] == ["pm-cluster", "default/rec-stuck", "default/net-b"]
    assert links(hot) == {"lo", "eth0", "net2"}
