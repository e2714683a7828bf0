"""Thick mode end to end when things break (issue #4): a watch that ends with 410 Expired, the
API server restarted while the daemon runs, and the daemon killed with SIGKILL in the middle
of an ADD. Same world as ``test_thick_calls.py``: the real shim, the real daemon process, real
bridge/host-local plugins, the stand-in API server; assertions on real state.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.multus import NETWORKS, PodId
from tests.support.netns import addresses
from tests.support.plugins import read_records
from tests.support.thick import NAD_COLLECTION, POD_COLLECTION, ThickCluster, wait_for

NS = "default"


def addr_of(netns: str, dev: str = "net1") -> ipaddress.IPv4Interface:
    """The one IPv4 address of ``dev`` in the pod namespace at path ``netns``."""
    [address] = addresses(os.path.basename(netns), dev)
    return ipaddress.IPv4Interface(address)


def subnet(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def assert_nothing_left(thick: ThickCluster, *netns: str) -> None:
    for path in netns:
        assert thick.pod_links(path) == {"lo"}, path
    assert thick.host_veths() == []
    assert thick.allocations() == []
    assert thick.cache_files() == []


def add_pod(thick: ThickCluster, name: str, networks: str) -> tuple[PodId, str]:
    return thick.put_pod(NS, name, {NETWORKS: networks}), thick.new_netns()


# ================================================================ 410 Expired


def test_watch_that_ends_with_410_recovers(thick: ThickCluster) -> None:
    """The NAD changes and the history is compacted in one step, so the open watches can only
    end with 410: the daemon lists again and the next ADD uses the changed NAD, from its
    cache (no live GET of it)."""
    thick.put_nad(NS, "shift", thick.bridge_nad("shift", "pmbrs", 4))
    first, first_ns = add_pod(thick, "first", "shift")
    second, second_ns = add_pod(thick, "second", "shift")
    thick.start_daemon()
    thick.shim("ADD", first, netns=first_ns).check_ok()
    assert addr_of(first_ns) in subnet("198.18.4.0/24")

    since = len(thick.api.requests())
    with thick.api.store.cond:  # no watch sees the change before the compaction
        thick.put_nad(NS, "shift", thick.bridge_nad("shift", "pmbrs", 5))
        thick.api.compact()
    thick.wait_relisted(since, NAD_COLLECTION, POD_COLLECTION)

    thick.shim("ADD", second, netns=second_ns).check_ok()
    assert addr_of(second_ns) in subnet("198.18.5.0/24")
    assert thick.api.requests("GET", "/network-attachment-definitions/shift") == []
    assert "watch expired" in thick.daemon_log()

    # The first pod's DEL uses what its ADD cached: the old subnet's address is released.
    for pod, netns in ((first, first_ns), (second, second_ns)):
        thick.shim("DEL", pod, netns=netns).check_ok()
    assert_nothing_left(thick, first_ns, second_ns)


# ================================================================ API server restart


def test_api_server_restarted_mid_run(thick: ThickCluster) -> None:
    """While the API server is down an ADD fails with code 11 (its network-status cannot be
    written) and is rolled back; the daemon keeps serving. What changed meanwhile (a NAD
    modified, a NAD and a pod created, history compacted) is seen once it is back."""
    thick.put_nad(NS, "moving", thick.bridge_nad("moving", "pmbrm", 6))
    first, first_ns = add_pod(thick, "first", "moving")
    second, second_ns = add_pod(thick, "second", "moving")
    thick.start_daemon()
    thick.shim("ADD", first, netns=first_ns).check_ok()
    held = thick.allocations()
    assert len(held) == 2

    thick.api.stop()
    down = thick.shim("ADD", second, netns=second_ns).error()
    assert down["code"] == 11, down
    assert thick.pod_links(second_ns) == {"lo"}  # rolled back
    assert thick.allocations() == held
    assert thick.daemon_answers("/healthz")

    thick.put_nad(NS, "moving", thick.bridge_nad("moving", "pmbrm", 7))
    thick.put_nad(NS, "fresh", thick.bridge_nad("fresh", "pmbrf", 8))
    third, third_ns = add_pod(thick, "third", "moving, fresh")
    thick.api.compact()
    since = len(thick.api.requests())
    thick.start_api()  # same port, same objects
    thick.wait_relisted(since, NAD_COLLECTION, POD_COLLECTION)

    thick.shim("ADD", third, netns=third_ns).check_ok()
    assert addr_of(third_ns) in subnet("198.18.7.0/24")
    assert addr_of(third_ns, "net2") in subnet("198.18.8.0/24")
    thick.shim("ADD", second, netns=second_ns).check_ok()  # the runtime's retry
    assert addr_of(second_ns) in subnet("198.18.7.0/24")
    status = thick.status_annotation(third)
    assert status is not None
    names = [e["name"] for e in json.loads(status)]
    assert names == ["pm-cluster", "default/moving", "default/fresh"]

    for pod, netns in ((first, first_ns), (second, second_ns), (third, third_ns)):
        thick.shim("DEL", pod, netns=netns).check_ok()
    assert_nothing_left(thick, first_ns, second_ns, third_ns)


# ================================================================ SIGKILL mid-ADD

#: Long enough that the kill surely lands while the slow delegate sleeps.
SLOW_DELAY = 10.0


def test_daemon_killed_mid_add_then_del_releases_everything(thick: ThickCluster) -> None:
    """SIGKILL to the daemon (its container dying) while the third delegate runs: the ADD
    fails with code 11, two interfaces and their addresses are left. A DEL while the daemon
    is down asks the runtime to retry (11); after the restart the DEL, and the runtime's
    second DEL without a netns, leave nothing behind."""
    thick.put_nad(NS, "br-a", thick.bridge_nad("br-a", "pmbra", 1))
    slow = thick.recorder_nad("slow", behaviour={"ADD": {"delay": SLOW_DELAY}})
    thick.put_nad(NS, "slow", slow)
    pod = thick.put_pod(NS, "victim", {NETWORKS: "br-a, slow"})
    thick.start_daemon()

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(thick.shim, "ADD", pod)
        wait_for(lambda: read_records(thick.record_file("slow")), 20, thick.tail)
        started = time.monotonic()
        assert thick.kill_daemon(signal.SIGKILL) == -signal.SIGKILL
        killed = pending.result(30).error()
        # The container's death takes the delegate it was running along.
        assert len(thick.kill_recorded_plugins()) == 1
    assert time.monotonic() - started < SLOW_DELAY / 2  # the kill ended the ADD, not the delay
    assert killed["code"] == 11, killed
    assert thick.link_names() == {"lo", "eth0", "net1"}  # half done: something to clean up
    assert len(thick.allocations()) == 2
    assert pod.container_id in thick.cache_files()  # the delegate cache, saved before ADD ran
    assert os.path.exists(thick.socket_path)  # a dead daemon's socket file

    dead = thick.shim("DEL", pod).error()
    assert dead["code"] == 11, dead  # installed but not answering: the runtime retries

    thick.start_daemon()
    thick.shim("DEL", pod).check_ok()
    thick.shim("DEL", pod, netns="").check_ok()  # containerd's second DEL, netns gone
    assert thick.snapshot() == {
        "links": {"lo"},
        "addresses": {"lo": ["127.0.0.1/8", "::1/128"]},
        "routes": [],
        "allocations": [],
        "cache": [],
    }
    assert thick.host_veths() == []
    commands = [
        (r["command"], r["env"]["CNI_IFNAME"]) for r in read_records(thick.record_file("slow"))
    ]
    assert ("DEL", "net2") in commands  # the slow network was torn down too
