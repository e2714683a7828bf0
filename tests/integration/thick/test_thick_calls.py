"""Thick mode end to end (issue #4): the runtime runs the real ``multus-shim`` executable, which
talks to the real ``multus-daemon`` process in the host namespace, which runs the real bridge
and host-local plugins; pods and NADs come from the stand-in API server through the daemon's
watch cache. Every assertion is on real state: links and addresses inside the pod namespaces,
host-local's allocation files, the cache files under ``cniDir``, the stored annotation.

Here: ADD/CHECK/DEL, a NAD created after the daemon started, ``/delegate`` hot-plug, and 50
pods at once. The failure cases (410, API server restart, SIGKILL) are in
``test_thick_failures.py``.
"""

from __future__ import annotations

import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.support.multus import NETWORKS, Outcome, PodId
from tests.support.netns import addresses, ip
from tests.support.thick import ThickCluster

from pymultus.protocol import wire

NS = "default"


def in_subnet(address: str, subnet: str) -> bool:
    return ipaddress.ip_interface(address) in ipaddress.ip_network(subnet)


def pod_addrs(netns: str, dev: str) -> list[str]:
    return addresses(netns.rsplit("/", 1)[-1], dev)


def assert_nothing_left(thick: ThickCluster, *netns: str) -> None:
    """No pod interface, host veth, host-local allocation or cache file is left."""
    for path in netns or (thick.pair.pod_path,):
        assert thick.pod_links(path) == {"lo"}, path
    assert thick.host_veths() == []
    assert thick.allocations() == []
    assert thick.cache_files() == []


def status_entries(thick: ThickCluster, pod: PodId) -> list[dict[str, Any]]:
    text = thick.status_annotation(pod)
    assert text is not None, f"no network-status on {pod.name}"
    entries: list[dict[str, Any]] = json.loads(text)
    return entries


# ================================================================ ADD, CHECK, DEL


@pytest.mark.parametrize("thick", ["0.4.0", "1.0.0"], indirect=True)
def test_add_check_del_through_the_shim(thick: ThickCluster) -> None:
    thick.put_nad(NS, "br-a", thick.bridge_nad("br-a", "pmbra", 1))
    pod = thick.put_pod(NS, "web", {NETWORKS: "br-a"})
    thick.start_daemon()

    add = thick.shim("ADD", pod).check_ok()
    result = add.json()
    assert result["cniVersion"] == thick.cni_version  # the shim converts the daemon's 1.1.0
    assert thick.link_names() == {"lo", "eth0", "net1"}
    [eth0] = thick.addrs("eth0")
    [net1] = thick.addrs("net1")
    assert in_subnet(eth0, "198.18.0.0/24") and in_subnet(net1, "198.18.1.0/24")
    assert [ip_["address"] for ip_ in result["ips"]] == [eth0]  # the cluster network's result
    assert thick.default_routes() == [("eth0", "198.18.0.1")]  # only the cluster network
    assert thick.allocations() == sorted(
        [f"pm-cluster/{eth0.split('/')[0]}", f"br-a/{net1.split('/')[0]}"]
    )
    entries = status_entries(thick, pod)
    assert [(e["name"], e["interface"], e["ips"]) for e in entries] == [
        ("pm-cluster", "eth0", [eth0.split("/")[0]]),
        (f"{NS}/br-a", "net1", [net1.split("/")[0]]),
    ]
    assert thick.cache_files() == sorted(
        [
            pod.container_id,
            f"results/pm-cluster-{pod.container_id}-eth0",
            f"results/br-a-{pod.container_id}-net1",
        ]
    )

    thick.shim("CHECK", pod).check_ok()
    ip(thick.pair.pod, "addr", "del", net1, "dev", "net1")  # break the attachment
    broken = thick.shim("CHECK", pod).error()
    assert broken["code"] == 999  # the bridge plugin's own code, kept by daemon and shim
    assert f"Failed to match addr {net1} on interface net1" in broken["msg"]

    thick.shim("DEL", pod).check_ok()
    assert_nothing_left(thick)
    thick.shim("DEL", pod).check_ok()  # DEL again: nothing to do, still success
    assert "Traceback" not in thick.daemon_log()


def test_daemon_restarted_between_add_and_del(thick: ThickCluster) -> None:
    """A graceful restart (an upgrade of the DaemonSet) forgets nothing a pod needs: the new
    daemon serves the same ``00-multus.conf``, CHECK and DEL work from what the ADD cached."""
    thick.put_nad(NS, "br-a", thick.bridge_nad("br-a", "pmbra", 1))
    pod = thick.put_pod(NS, "web", {NETWORKS: "br-a"})
    thick.start_daemon()
    thick.shim("ADD", pod).check_ok()
    generated = thick.generated_conf()
    first = thick.daemon

    thick.restart_daemon()
    assert first is not None and first.returncode == 0  # SIGTERM: a clean exit
    assert thick.daemon is not first
    assert thick.generated_conf() == generated
    thick.shim("CHECK", pod).check_ok()
    thick.shim("DEL", pod).check_ok()
    assert_nothing_left(thick)


def test_nad_created_after_the_daemon_started_is_found(thick: ThickCluster) -> None:
    """The pod names a NAD nobody has created yet: the ADD fails naming it and leaves
    nothing; once the NAD exists, the runtime's next ADD attaches it."""
    pod = thick.put_pod(NS, "late-pod", {NETWORKS: "late-net"})
    thick.start_daemon()

    missing = thick.shim("ADD", pod).error()
    assert missing["code"] == 7
    assert "network-attachment-definition (late-net) in namespace (default)" in missing["msg"]
    assert thick.snapshot() == {
        "links": {"lo"},
        "addresses": {"lo": ["127.0.0.1/8", "::1/128"]},
        "routes": [],
        "allocations": [],
        "cache": [],
    }

    thick.put_nad(NS, "late-net", thick.bridge_nad("late-net", "pmbrl", 2))
    thick.shim("ADD", pod).check_ok()
    assert thick.link_names() == {"lo", "eth0", "net1"}
    [net1] = thick.addrs("net1")
    assert in_subnet(net1, "198.18.2.0/24")
    assert [e["name"] for e in status_entries(thick, pod)] == ["pm-cluster", f"{NS}/late-net"]

    thick.shim("DEL", pod).check_ok()
    assert_nothing_left(thick)


# ================================================================ /delegate


def test_delegate_hot_adds_one_interface_to_a_running_pod(thick: ThickCluster) -> None:
    """multus-dynamic-networks-controller's call: one bridge network added to (and removed
    from) a pod that is up, its MAC from ``interfaceAttributes``; the pod's own interfaces are
    not touched and its DEL later still releases everything."""
    thick.put_nad(NS, "br-a", thick.bridge_nad("br-a", "pmbra", 1))
    pod = thick.put_pod(NS, "hot-pod", {NETWORKS: "br-a"})
    thick.start_daemon()
    thick.shim("ADD", pod).check_ok()
    before = {dev: thick.addrs(dev) for dev in ("eth0", "net1")}

    hot = thick.bridge_nad("hot", "pmbrh", 9, capabilities={"mac": True})
    mac = "02:00:c6:12:09:42"
    attrs = wire.InterfaceAttributes(mac=mac)
    status, body = thick.delegate("ADD", pod, hot, ifname="net2", attributes=attrs)
    assert status == 200, body
    result = json.loads(body)["Result"]
    [net2] = thick.addrs("net2")
    assert in_subnet(net2, "198.18.9.0/24")
    assert [i["address"] for i in result["ips"]] == [net2]
    assert thick.link_names() == {"lo", "eth0", "net1", "net2"}
    assert thick.link("net2")["address"] == mac
    assert {dev: thick.addrs(dev) for dev in ("eth0", "net1")} == before
    assert f"hot/{net2.split('/')[0]}" in thick.allocations()
    thick.shim("CHECK", pod).check_ok()  # the pod's own networks are still as ADD left them

    taken, answer = thick.delegate("ADD", pod, hot, ifname="net1")
    assert taken == 400 and "net1" in json.loads(answer)["msg"], answer
    assert thick.addrs("net1") == before["net1"]

    status, body = thick.delegate("DEL", pod, hot, ifname="net2")
    assert (status, body) == (200, b"")
    assert thick.link_names() == {"lo", "eth0", "net1"}
    assert not [a for a in thick.allocations() if a.startswith("hot/")]
    assert not [f for f in thick.cache_files() if "hot" in f]

    thick.shim("DEL", pod).check_ok()
    assert_nothing_left(thick)


# ================================================================ 50 pods at once

PODS = 50
WORKERS = 8


def failures(pods: list[tuple[PodId, str]], outcomes: list[Outcome]) -> list[tuple[str, str]]:
    """(pod, what the shim said) of every call that failed."""
    pairs = zip(pods, outcomes, strict=True)
    return [(pod.name, out.describe()) for (pod, _), out in pairs if out.rc]


def test_50_pods_added_and_deleted_concurrently(thick: ThickCluster) -> None:
    thick.put_nad(NS, "br-a", thick.bridge_nad("br-a", "pmbra", 1))
    pods = [
        (thick.put_pod(NS, f"p{i:02d}", {NETWORKS: "br-a"}), thick.new_netns()) for i in range(PODS)
    ]
    thick.start_daemon()

    def run(command: str, pod_netns: tuple[PodId, str]) -> Outcome:
        pod, netns = pod_netns
        return thick.shim(command, pod, netns=netns)

    with ThreadPoolExecutor(WORKERS) as pool:
        added = list(pool.map(lambda p: run("ADD", p), pods))
    assert failures(pods, added) == []
    seen: set[str] = set()
    for pod, netns in pods:
        assert thick.pod_links(netns) == {"lo", "eth0", "net1"}, pod.name
        [eth0], [net1] = pod_addrs(netns, "eth0"), pod_addrs(netns, "net1")
        assert in_subnet(eth0, "198.18.0.0/24") and in_subnet(net1, "198.18.1.0/24")
        seen |= {eth0, net1}
        assert [e["interface"] for e in status_entries(thick, pod)] == ["eth0", "net1"]
    assert len(seen) == 2 * PODS  # no address handed out twice
    assert len(thick.allocations()) == 2 * PODS
    assert len(thick.host_veths()) == 2 * PODS

    with ThreadPoolExecutor(WORKERS) as pool:
        deleted = list(pool.map(lambda p: run("DEL", p), pods))
    assert failures(pods, deleted) == []
    assert_nothing_left(thick, *(netns for _, netns in pods))
    log = thick.daemon_log()
    assert "[error]" not in log and "Traceback" not in log
    assert thick.daemon is not None and thick.daemon.poll() is None
