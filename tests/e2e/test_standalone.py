"""containerd's CRI drives multus-shim -> multus-daemon in standalone mode: the pod's networks
come from its annotations, which containerd hands over in
``runtimeConfig["io.kubernetes.cri.pod-annotations"]``; NADs are files."""

from __future__ import annotations

import ipaddress
import secrets

import pytest
from tests.e2e.node import FAILING_MESSAGE, SUBNETS, Node
from tests.support.cri import CriClient, CriError, PodSpec

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def pod(node: Node, networks: str, **extra: str) -> PodSpec:
    name = f"web-{secrets.token_hex(3)}"
    return PodSpec(name, node.namespace, annotations={NETWORKS: networks, **extra})


def in_subnet(address: str, network: str) -> bool:
    return ipaddress.ip_interface(address).ip in ipaddress.ip_network(SUBNETS[network])


def test_pod_gets_cluster_and_two_nads(node: Node, cri: CriClient) -> None:
    spec = pod(node, "a, b@data0")
    sandbox = cri.run_pod_sandbox(spec)
    status = cri.pod_sandbox_status(sandbox)
    assert status.state == "SANDBOX_READY"
    assert in_subnet(status.ip, "cluster")  # containerd took eth0's address from our result

    inside = node.addresses_in(status.netns_path)
    assert sorted(inside) == ["data0", "eth0", "net1"]
    for ifname, network in (("eth0", "cluster"), ("net1", "a"), ("data0", "b")):
        assert len(inside[ifname]) == 1 and in_subnet(inside[ifname][0], network), inside

    by_name = {entry["name"]: entry for entry in node.network_status(spec.name)}
    assert set(by_name) == {"e2e-cluster", f"{node.namespace}/a", f"{node.namespace}/b"}
    assert by_name["e2e-cluster"]["interface"] == "eth0"
    assert by_name["e2e-cluster"].get("default") is True
    for ifname, key in (("net1", "a"), ("data0", "b")):
        entry = by_name[f"{node.namespace}/{key}"]
        assert entry["interface"] == ifname
        assert [f"{entry['ips'][0]}/24"] == inside[ifname]

    cri.stop_pod_sandbox(sandbox)
    cri.remove_pod_sandbox(sandbox)
    assert node.shim_calls(sandbox) == [
        ("ADD", status.netns_path),
        ("DEL", status.netns_path),
        ("DEL", ""),  # RemovePodSandbox: the netns is gone already
    ]
    assert node.leftovers() == []


def test_failing_network_fails_the_sandbox_and_leaves_nothing(node: Node, cri: CriClient) -> None:
    spec = pod(node, "a, bad")
    with pytest.raises(CriError) as failed:
        cri.run_pod_sandbox(spec)
    message = failed.value.message
    assert FAILING_MESSAGE in message, message
    assert 'error adding container to network "bad"' in message, message
    assert cri.list_pod_sandboxes() == []
    assert node.leftovers() == []
