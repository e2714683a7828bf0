"""Pod sandboxes through containerd's CRI, kubelet's calls in kubelet's order, with pymultus
in thick mode behind it (multus-shim -> multus-daemon), standalone and with the API server."""

from __future__ import annotations

import ipaddress
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.clusters import Cluster
from tests.e2e.node import FAILING_MESSAGE, SUBNETS, Node
from tests.support.cri import CriClient, CriError, PodSpec

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def new_pod(node: Node, networks: str, **annotations: str) -> PodSpec:
    name = f"web-{secrets.token_hex(3)}"
    return PodSpec(name, node.namespace, annotations={NETWORKS: networks, **annotations})


def in_subnet(address: str, network: str) -> bool:
    return ipaddress.ip_interface(address).ip in ipaddress.ip_network(SUBNETS[network])


def check_attached(node: Node, cri: CriClient, sandbox: str) -> dict[str, str]:
    """eth0, net1 and data0 inside the sandbox's netns, each with its network's address;
    returns ``{ifname: address/prefix}``."""
    status = cri.pod_sandbox_status(sandbox)
    assert status.state == "SANDBOX_READY"
    assert in_subnet(status.ip, "cluster"), status.ip  # containerd read eth0 from our result
    inside = node.addresses_in(status.netns_path)
    assert sorted(inside) == ["data0", "eth0", "net1"], inside
    for ifname, network in (("eth0", "cluster"), ("net1", "a"), ("data0", "b")):
        assert len(inside[ifname]) == 1 and in_subnet(inside[ifname][0], network), inside
    return {ifname: addrs[0] for ifname, addrs in inside.items()}


def test_pod_gets_cluster_network_and_two_nads(
    cluster: Cluster, node: Node, cri: CriClient
) -> None:
    spec = new_pod(node, "a, b@data0")
    cluster.add_pod(spec)
    sandbox = cri.run_pod_sandbox(spec)
    netns = cri.pod_sandbox_status(sandbox).netns_path
    inside = check_attached(node, cri, sandbox)

    by_name = {entry["name"]: entry for entry in cluster.network_status(spec)}
    assert set(by_name) == {"e2e-cluster", f"{node.namespace}/a", f"{node.namespace}/b"}
    assert by_name["e2e-cluster"]["interface"] == "eth0"
    assert by_name["e2e-cluster"].get("default") is True
    for ifname, nad in (("eth0", "e2e-cluster"), ("net1", "a"), ("data0", "b")):
        entry = by_name[nad if ifname == "eth0" else f"{node.namespace}/{nad}"]
        assert entry["interface"] == ifname
        assert entry["ips"] == [inside[ifname].split("/")[0]]

    cri.stop_pod_sandbox(sandbox)
    cri.remove_pod_sandbox(sandbox)
    assert node.shim_calls(sandbox) == [
        ("ADD", netns),
        ("DEL", netns),  # StopPodSandbox
        ("DEL", ""),  # RemovePodSandbox: the netns is gone already
    ]
    assert node.leftovers() == []


def test_failing_network_fails_the_sandbox_and_leaves_nothing(
    cluster: Cluster, node: Node, cri: CriClient
) -> None:
    spec = new_pod(node, "a, bad")
    cluster.add_pod(spec)
    with pytest.raises(CriError) as failed:
        cri.run_pod_sandbox(spec)
    message = failed.value.message
    # containerd's error carries pymultus's, which carries the plugin's
    assert 'error adding container to network "bad"' in message, message
    assert FAILING_MESSAGE in message, message
    sandbox = re.search(r'sandbox "([0-9a-f]{64})"', message)
    assert sandbox is not None, message
    calls = node.shim_calls(sandbox.group(1))
    assert [verb for verb, _ in calls] == ["ADD", "DEL"]  # containerd cleans up at once
    assert cri.list_pod_sandboxes() == []
    assert node.leftovers() == []


def test_twenty_pods_five_at_a_time(cluster: Cluster, node: Node, cri: CriClient) -> None:
    specs = [new_pod(node, "a, b@data0") for _ in range(20)]
    for spec in specs:
        cluster.add_pod(spec)
    with ThreadPoolExecutor(max_workers=5) as pool:
        sandboxes = list(pool.map(cri.run_pod_sandbox, specs))
        attached = [check_attached(node, cri, s) for s in sandboxes]
        for ifname in ("eth0", "net1", "data0"):
            assert len({a[ifname] for a in attached}) == 20, f"{ifname} addresses not unique"
        list(pool.map(cri.teardown, sandboxes))
    assert cri.list_pod_sandboxes() == []
    for sandbox in sandboxes:
        assert [verb for verb, _ in node.shim_calls(sandbox)] == ["ADD", "DEL", "DEL"]
    assert node.leftovers() == []


def test_daemon_restart_keeps_pods_removable(cluster: Cluster, node: Node, cri: CriClient) -> None:
    specs = [new_pod(node, "a, b@data0") for _ in range(3)]
    for spec in specs:
        cluster.add_pod(spec)
    sandboxes = [cri.run_pod_sandbox(spec) for spec in specs]
    node.start_daemon(node.daemon_kubeconfig)  # SIGTERM, wait, start again
    check_attached(node, cri, sandboxes[0])
    cri.stop_pod_sandbox(sandboxes[0])  # stopped now, removed after the next restart
    node.start_daemon(node.daemon_kubeconfig)
    for sandbox in sandboxes:
        cri.teardown(sandbox)
    later = new_pod(node, "b@data0")  # and the restarted daemon still attaches new pods
    cluster.add_pod(later)
    cri.teardown(cri.run_pod_sandbox(later))
    assert cri.list_pod_sandboxes() == []
    assert node.leftovers() == []
