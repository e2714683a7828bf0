"""Standalone mode end to end, driven the way containerd drives a CNI plugin, with no API server
anywhere: the pod's annotations arrive in ``runtimeConfig["io.kubernetes.cri.pod-annotations"]``
(or, without them, from a local pod file), NADs are YAML/JSON files, Debian's real bridge,
macvlan and host-local plugins attach three interfaces in a fresh netns pair, network-status
lands in a state file, and DEL takes every trace away again.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.netns import NetnsPair, addresses, links, unique_name

from pymultus.cni.convert import AnyResult, to_current
from pymultus.cni.env import parse_plugin_env
from pymultus.cni.errors import InvalidConfigError
from pymultus.core.request import Request
from pymultus.core.standalone import CRI_POD_ANNOTATIONS, run_standalone
from pymultus.k8s.files import read_record
from pymultus.k8s.objects import NETWORKS_ANNOTATION

CNI_BIN = "/usr/lib/cni"
POD_NS, POD_NAME, POD_UID = "team-a", "web-0", "0c3f6f1e-5b1d-4d7e-9a63-3a5a2e0f7b11"
SUBNETS = {"cluster-net": "198.18.1.0/24", "net-a": "198.51.100.0/24", "net-b": "203.0.113.0/24"}


@pytest.fixture(autouse=True)
def no_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Kubernetes: no in-cluster variables, and any TCP connection from this process fails."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"standalone mode tried to reach {address}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@dataclass
class Node:
    """One test's "node": netns pair, directories, and containerd-style calls."""

    pair: NetnsPair
    tmp: Path
    version: str
    container_id: str
    bridges: tuple[str, str]

    @property
    def dirs(self) -> dict[str, str]:
        return {k: str(self.tmp / k) for k in ("nads", "pods", "status")}

    @property
    def cni_dir(self) -> Path:
        return self.tmp / "cni"

    def stdin(self, annotations: dict[str, str] | None) -> bytes:
        conf: dict[str, Any] = {
            "cniVersion": self.version,
            "name": "multus-cni-network",
            "type": "multus",
            "clusterNetwork": "cluster-net",
            "cniDir": str(self.cni_dir),
            "confDir": str(self.tmp / "confdir"),
            "binDir": CNI_BIN,
            "capabilities": {CRI_POD_ANNOTATIONS: True, "portMappings": True},
            "runtimeConfig": {
                "portMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp"}]
            },
        }
        if annotations is not None:
            conf["runtimeConfig"][CRI_POD_ANNOTATIONS] = annotations
        return json.dumps(conf).encode()

    def call(self, command: str, stdin: bytes, *, netns: bool = True) -> AnyResult | None:
        """One CNI call as containerd makes it (CNI_ARGS in another order each time)."""
        args = [
            "IgnoreUnknown=1",
            f"K8S_POD_NAMESPACE={POD_NS}",
            f"K8S_POD_NAME={POD_NAME}",
            f"K8S_POD_INFRA_CONTAINER_ID={self.container_id}",
            f"K8S_POD_UID={POD_UID}",
        ]
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.pair.pod_path if netns else "",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": CNI_BIN,
            "CNI_ARGS": ";".join(args if command == "ADD" else reversed(args)),
        }
        req = Request.build(parse_plugin_env(env, stdin))
        with self.pair.in_host():
            return run_standalone(req, nad_dir=self.dirs["nads"], pod_dir=self.dirs["pods"],
                                  state_dir=self.dirs["status"])  # fmt: skip

    def ipam(self, network: str) -> dict[str, Any]:
        return {
            "type": "host-local",
            "subnet": SUBNETS[network],
            "dataDir": str(self.tmp / "ipam"),
            **({"routes": [{"dst": "0.0.0.0/0"}]} if network == "cluster-net" else {}),
        }

    def allocations(self) -> list[str]:
        """Addresses host-local still holds, for any network."""
        root = self.tmp / "ipam"
        return sorted(p.name for p in root.glob("*/*") if p.name[0].isdigit())


@pytest.fixture
def node(netns_pair: NetnsPair, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Node]:
    version = getattr(request, "param", "1.0.0")
    n = Node(
        netns_pair,
        tmp_path,
        version,
        "sandbox" + unique_name(""),
        (unique_name("pmsa"), unique_name("pmsb")),
    )
    master = unique_name("pmmv")
    netns_pair.add_veth(master, unique_name("pmmp"))
    write_nads(n, master)
    yield n  # the netns pair (bridges, veths) and tmp_path go away with their fixtures


def write_nads(n: Node, master: str) -> None:
    """kube-system/cluster-net as JSON; the pod's two networks as one kubectl manifest."""

    def nad(name: str, config: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name},
            "spec": {"config": json.dumps({"cniVersion": n.version, **config}, indent=2)},
        }

    bridge = {"type": "bridge", "isGateway": True, "ipMasq": False}
    cluster = nad("cluster-net", {**bridge, "bridge": n.bridges[0], "ipam": n.ipam("cluster-net")})
    net_a = nad("net-a", {"type": "macvlan", "master": master, "mode": "bridge",
                          "ipam": n.ipam("net-a")})  # fmt: skip
    net_b = nad("net-b", {"plugins": [{**bridge, "bridge": n.bridges[1], "ipam": n.ipam("net-b")}]})
    (n.tmp / "nads" / "kube-system").mkdir(parents=True)
    (n.tmp / "nads" / "kube-system" / "cluster-net.json").write_text(json.dumps(cluster))
    (n.tmp / "nads" / POD_NS).mkdir()
    (n.tmp / "nads" / POD_NS / "networks.yaml").write_text(yaml.safe_dump_all([net_a, net_b]))


def assert_attached(n: Node, result: AnyResult | None) -> dict[str, str]:
    """Three interfaces, each with an address of its network; the cluster network's result is
    the one returned. Returns the address of each interface."""
    found = {}
    for ifname, network in (("eth0", "cluster-net"), ("net1", "net-a"), ("data0", "net-b")):
        (cidr,) = addresses(n.pair.pod, ifname)
        assert ipaddress.ip_interface(cidr).network == ipaddress.ip_network(SUBNETS[network])
        found[ifname] = cidr.split("/")[0]
    assert result is not None
    assert [ip.address for ip in to_current(result).ips] == [f"{found['eth0']}/24"]
    return found


def assert_status(n: Node, ips: dict[str, str]) -> None:
    record = read_record(n.dirs["status"], POD_NS, POD_NAME)
    assert record is not None
    assert (record.namespace, record.name, record.uid) == (POD_NS, POD_NAME, POD_UID)
    assert record.container_id == n.container_id
    entries = json.loads(record.network_status)
    pod_links = links(n.pair.pod)
    assert [(e["name"], e["interface"], e["ips"]) for e in entries] == [
        ("kube-system/cluster-net", "eth0", [ips["eth0"]]),
        (f"{POD_NS}/net-a", "net1", [ips["net1"]]),
        (f"{POD_NS}/net-b", "data0", [ips["data0"]]),
    ]
    assert [e.get("default", False) for e in entries] == [True, False, False]
    assert all(e["mac"] == pod_links[e["interface"]]["address"] for e in entries)


def assert_clean(n: Node) -> None:
    assert set(links(n.pair.pod)) == {"lo"}
    assert n.allocations() == []
    assert not (n.cni_dir / n.container_id).exists()  # the delegate cache
    assert list((n.cni_dir / "results").glob("*")) == []  # libcni's result cache
    assert read_record(n.dirs["status"], POD_NS, POD_NAME) is None
    host_veths = [k for k, v in links(n.pair.host).items() if v.get("master") in n.bridges]
    assert host_veths == []


@pytest.mark.parametrize("node", ["1.0.0", "0.4.0"], indirect=True)
def test_cri_pod_annotations_select_networks_without_an_api_server(node: Node) -> None:
    annotations = {
        NETWORKS_ANNOTATION: "net-a, net-b@data0",
        "kubernetes.io/config.seen": "2024-01-01T00:00:00Z",
        "kubernetes.io/config.source": "api",
    }
    stdin = node.stdin(annotations)

    ips = assert_attached(node, node.call("ADD", stdin))
    assert_status(node, ips)

    node.call("DEL", stdin)  # StopPodSandbox: netns still there
    assert_clean(node)
    node.call("DEL", stdin, netns=False)  # RemovePodSandbox: no netns, nothing left to do
    assert_clean(node)


def test_pod_file_selects_networks_when_the_runtime_sends_no_annotations(node: Node) -> None:
    pod_file = node.tmp / "pods" / POD_NS / f"{POD_NAME}.yaml"
    pod_file.parent.mkdir(parents=True)
    pod_file.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": POD_NAME,
                    "annotations": {NETWORKS_ANNOTATION: "net-a,net-b@data0"},
                },
            }
        )
    )
    stdin = node.stdin(None)

    ips = assert_attached(node, node.call("ADD", stdin))
    assert_status(node, ips)
    node.call("DEL", stdin)
    assert_clean(node)


def test_a_missing_nad_fails_before_anything_is_attached(node: Node) -> None:
    stdin = node.stdin({NETWORKS_ANNOTATION: "net-a, no-such-net"})
    with pytest.raises(InvalidConfigError) as caught:
        node.call("ADD", stdin)
    assert caught.value.field == NETWORKS_ANNOTATION
    assert "no-such-net" in caught.value.msg
    assert set(links(node.pair.pod)) == {"lo"}
    assert read_record(node.dirs["status"], POD_NS, POD_NAME) is None
    node.call("DEL", stdin)  # containerd's DEL after a failed ADD
    assert_clean(node)
