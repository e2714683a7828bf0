"""containerd sends ``portMappings`` and ``bandwidth`` with Go field names (``HostPort``,
``ContainerPort``, ``IngressRate``, ...): they must reach the cluster network's portmap and
bandwidth plugins through multus-shim, the daemon and the delegate chain. Proven by what those
plugins do in the host namespace: the DNAT rule, the shaping qdiscs."""

from __future__ import annotations

import secrets
from typing import Any

from tests.e2e.clusters import Cluster
from tests.e2e.node import Node
from tests.support.cri import CriClient, PodSpec, Port

NETWORKS = "k8s.v1.cni.cncf.io/networks"
INGRESS_BPS = 8_000_000  # kubernetes.io/ingress-bandwidth: 8M (bits per second)
EGRESS_BPS = 4_000_000


def tbf_rate(qdiscs: list[dict[str, Any]]) -> int | None:
    """The rate of the tbf qdisc in ``tc -j qdisc show`` output, in bits per second."""
    for qdisc in qdiscs:
        if qdisc.get("kind") == "tbf":
            return int(qdisc["options"]["rate"]) * 8  # tc -j reports bytes per second
    return None


def test_ports_and_bandwidth_reach_the_cluster_plugins(
    cluster: Cluster, node: Node, cri: CriClient
) -> None:
    host_port = 20000 + secrets.randbelow(10000)
    spec = PodSpec(
        f"svc-{secrets.token_hex(3)}",
        node.namespace,
        annotations={
            NETWORKS: "a",
            "kubernetes.io/ingress-bandwidth": f"{INGRESS_BPS // 1_000_000}M",
            "kubernetes.io/egress-bandwidth": f"{EGRESS_BPS // 1_000_000}M",
        },
        ports=(Port(container_port=8080, host_port=host_port, protocol="tcp"),),
    )
    cluster.add_pod(spec)
    sandbox = cri.run_pod_sandbox(spec)
    pod_ip = cri.pod_sandbox_status(sandbox).ip

    dnat = [r for r in node.nat_rules() if "-j DNAT" in r and f"--dport {host_port}" in r]
    assert len(dnat) == 1, node.nat_rules()
    assert f"--to-destination {pod_ip}:8080" in dnat[0]

    host = node.host_links()
    veths = [n for n, link in host.items() if link.get("master") == node.bridges["cluster"]]
    assert len(veths) == 1, host  # only the cluster network's veth: net1 is on bridge a
    assert tbf_rate(node.qdiscs(veths[0])) == INGRESS_BPS  # traffic to the pod
    ifbs = [n for n, link in host.items() if link.get("linkinfo", {}).get("info_kind") == "ifb"]
    assert len(ifbs) == 1, host
    assert tbf_rate(node.qdiscs(ifbs[0])) == EGRESS_BPS  # traffic from the pod

    cri.teardown(sandbox)
    assert not [r for r in node.nat_rules() if f"--dport {host_port}" in r]
    assert node.leftovers() == []
