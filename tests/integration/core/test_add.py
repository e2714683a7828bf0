"""ADD through the thin ``multus`` binary, as a runtime runs it, against Debian's real plugins.

Every test checks real state: links, addresses and routes with ``ip -j`` in the pod namespace,
the network-status bytes the stand-in API server stored, the delegate and libcni caches and
host-local's allocation files; and then that DEL releases all of it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from tests.support.multus import (
    DEFAULT_NETWORK,
    MULTUS_NAMESPACE,
    NETWORKS,
    Cluster,
    PodId,
)
from tests.support.netns import links

from pymultus.k8s.status import parse_network_status


def delete_releases_everything(cluster: Cluster, pod: PodId) -> None:
    """DEL succeeds and leaves nothing: no link but lo, no allocation, no cache file."""
    cluster.delete(pod).check_ok()
    assert cluster.link_names() == {"lo"}
    assert cluster.allocations() == []
    assert cluster.cache_files() == []


def statuses(cluster: Cluster, pod: PodId) -> list[dict[str, Any]]:
    value = cluster.status_annotation(pod)
    assert value is not None, "no network-status annotation was written"
    entries: list[dict[str, Any]] = json.loads(value)
    return entries


def delegate_cache(cluster: Cluster, pod: PodId) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((cluster.cni_dir / pod.container_id).read_bytes())
    return entries


def libcni_cache(cluster: Cluster, network: str, pod: PodId, ifname: str) -> dict[str, Any]:
    path = cluster.cni_dir / "results" / f"{network}-{pod.container_id}-{ifname}"
    entry: dict[str, Any] = json.loads(path.read_bytes())
    return entry


@pytest.mark.parametrize(
    ("version", "cluster_version"),
    [("1.0.0", "1.0.0"), ("0.3.1", "1.0.0"), ("1.1.0", "0.4.0")],
)
def test_pod_without_annotation_gets_the_cluster_network_only(
    cluster: Cluster, version: str, cluster_version: str
) -> None:
    cluster.cni_version = cluster_version
    cluster.write_cluster_network(cluster.bridge_conflist())
    pod = cluster.put_pod("default", "plain")

    result = cluster.add(pod, cluster.multus_conf(cniVersion=version)).check_ok().json()

    # Printed in the Multus config's version, which the runtime asked for (Go prints the
    # cluster network's own version, golden case 04).
    assert result["cniVersion"] == version
    assert ("ip4" in result) is (version == "0.2.0")
    assert [i["name"] for i in result["interfaces"]][-1] == "eth0"
    assert cluster.link_names() == {"lo", "eth0"}
    assert cluster.addrs("eth0") == ["198.18.0.2/24"]
    assert cluster.default_routes() == [("eth0", "198.18.0.1")]
    assert cluster.allocations() == ["pm-cluster/198.18.0.2"]
    assert cluster.cache_files() == [
        pod.container_id,
        f"results/pm-cluster-{pod.container_id}-eth0",
    ]
    [entry] = statuses(cluster, pod)
    assert (entry["name"], entry["interface"], entry["ips"]) == (
        "pm-cluster",
        "eth0",
        ["198.18.0.2"],
    )
    assert entry["default"] is True
    delete_releases_everything(cluster, pod)


def test_pod_gone_on_add_gets_the_synthetic_result(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "vanished")
    cluster.api.delete_object("pods", "default", "vanished")

    result = cluster.add(pod).check_ok().json()

    assert result["interfaces"] == [{"name": "eth0", "sandbox": cluster.pair.pod_path}]
    assert result["ips"] == [{"address": "0.0.0.0/0", "gateway": "0.0.0.0", "interface": 0}]
    assert cluster.link_names() == {"lo"}
    assert cluster.allocations() == [] and cluster.cache_files() == []


def test_json_annotation_with_ips_mac_and_cni_args(cluster: Cluster) -> None:
    static = cluster.bridge_conf(
        "static-c", "pmbrc", {"type": "static"}, capabilities={"ips": True, "mac": True}
    )
    cluster.put_nad("default", "static-c", static)
    request = {
        "name": "static-c",
        "ips": ["198.18.3.7/24"],
        "mac": "c2:ac:c0:00:03:07",
        "cni-args": {"golden": "yes", "count": 2},
    }
    pod = cluster.put_pod("default", "json", {NETWORKS: json.dumps([request])})

    cluster.add(pod).check_ok()

    assert cluster.addrs("net1") == ["198.18.3.7/24"]
    assert links(cluster.pair.pod)["net1"]["address"] == "c2:ac:c0:00:03:07"
    cached = delegate_cache(cluster, pod)[1]
    assert cached["macRequest"] == "c2:ac:c0:00:03:07"
    assert cached["ipRequest"] == ["198.18.3.7/24"]
    config = json.loads(base64.b64decode(cached["Bytes"]))
    assert config["args"] == {"cni": {"count": 2, "golden": "yes"}}
    entry = libcni_cache(cluster, "static-c", pod, "net1")
    assert entry["capabilityArgs"] == {"ips": ["198.18.3.7/24"], "mac": "c2:ac:c0:00:03:07"}
    assert entry["cniArgs"][-2:] == [["MAC", "c2:ac:c0:00:03:07"], ["IP", "198.18.3.7/24"]]
    net1_status = statuses(cluster, pod)[1]
    assert net1_status["ips"] == ["198.18.3.7"]
    assert net1_status["mac"] == "c2:ac:c0:00:03:07"
    delete_releases_everything(cluster, pod)


def test_same_nad_twice_gives_two_attachments(cluster: Cluster) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "twice", {NETWORKS: "br-a, br-a"})

    cluster.add(pod).check_ok()

    assert cluster.link_names() == {"lo", "eth0", "net1", "net2"}
    assert {cluster.addrs("net1")[0], cluster.addrs("net2")[0]} == {
        "198.18.1.2/24",
        "198.18.1.3/24",
    }
    assert cluster.allocations() == [
        "br-a/198.18.1.2",
        "br-a/198.18.1.3",
        "pm-cluster/198.18.0.2",
    ]
    found = [(s["name"], s["interface"]) for s in statuses(cluster, pod)]
    assert found == [("pm-cluster", "eth0"), ("default/br-a", "net1"), ("default/br-a", "net2")]
    delete_releases_everything(cluster, pod)


def test_default_route_moves_the_v4_default_to_net1(cluster: Cluster) -> None:
    cluster.put_nad("default", "br-gw", cluster.bridge_nad("br-gw", "pmbrd", 4))
    request = [{"name": "br-gw", "default-route": ["198.18.4.1"]}]
    pod = cluster.put_pod("default", "gw", {NETWORKS: json.dumps(request)})

    cluster.add(pod).check_ok()

    assert cluster.default_routes() == [("net1", "198.18.4.1")]
    cluster_result = libcni_cache(cluster, "pm-cluster", pod, "eth0")["result"]
    assert "routes" not in cluster_result  # the cache follows the kernel, keys sorted like Go
    assert libcni_cache(cluster, "br-gw", pod, "net1")["result"]["routes"] == [
        {"dst": "0.0.0.0/0", "gw": "198.18.4.1"}
    ]
    flags = [(d["IsFilterV4Gateway"], d["IsFilterV6Gateway"]) for d in delegate_cache(cluster, pod)]
    assert flags == [(True, True), (False, True)]  # Go's flags, byte-compatible cache
    # The status reflects the delegates' own results, as Go's does (§4.2 caveat).
    eth0, net1 = statuses(cluster, pod)
    assert eth0["gateway"] == ["<nil>"] and eth0["default"] is True
    assert "gateway" not in net1 and "default" not in net1
    delete_releases_everything(cluster, pod)


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [("default", {"lo", "eth0", "net1"}), (MULTUS_NAMESPACE, {"lo", "eth0"})],
)
def test_default_networks_skip_system_namespaces(
    cluster: Cluster, namespace: str, expected: set[str]
) -> None:
    cluster.put_nad(MULTUS_NAMESPACE, "dn", cluster.bridge_nad("dn", "pmbrn", 7))
    pod = cluster.put_pod(namespace, "dflt")

    cluster.add(pod, cluster.multus_conf(defaultNetworks=["dn"])).check_ok()

    assert cluster.link_names() == expected
    names = [s["name"] for s in statuses(cluster, pod)]
    assert names == ["pm-cluster", "kube-system/dn"][: len(expected) - 1]
    if "net1" in expected:
        assert cluster.addrs("net1") == ["198.18.7.2/24"]
    delete_releases_everything(cluster, pod)


def test_default_network_annotation_replaces_the_cluster_network(cluster: Cluster) -> None:
    alt = cluster.bridge_nad("alt", "pmbrx", 5)
    cluster.put_nad(MULTUS_NAMESPACE, "alt", alt)
    pod = cluster.put_pod("default", "alt", {DEFAULT_NETWORK: "alt"})

    result = cluster.add(pod).check_ok().json()

    assert cluster.link_names() == {"lo", "eth0"}
    assert cluster.addrs("eth0") == ["198.18.5.2/24"]
    assert [ip["address"] for ip in result["ips"]] == ["198.18.5.2/24"]
    assert cluster.allocations() == ["alt/198.18.5.2"]
    [entry] = statuses(cluster, pod)
    assert (entry["name"], entry["default"]) == ("kube-system/alt", True)
    delete_releases_everything(cluster, pod)


@pytest.mark.parametrize("file_name", ["20-disk.conf", "20-disk.conflist"])
def test_nad_without_spec_uses_the_config_in_conf_dir(cluster: Cluster, file_name: str) -> None:
    conf = cluster.bridge_nad("disk-e", "pmbre", 6)
    if file_name.endswith(".conflist"):
        conf = {"cniVersion": conf.pop("cniVersion"), "name": conf.pop("name"), "plugins": [conf]}
    (cluster.conf_dir / "10-other.conf").write_text(
        json.dumps(cluster.bridge_nad("unrelated", "pmbru", 9))
    )
    (cluster.conf_dir / file_name).write_text(json.dumps(conf))
    cluster.put_nad("default", "disk-e", None)
    pod = cluster.put_pod("default", "disk", {NETWORKS: "disk-e"})

    cluster.add(pod).check_ok()

    assert cluster.addrs("net1") == ["198.18.6.2/24"]
    assert statuses(cluster, pod)[1]["name"] == "default/disk-e"
    delete_releases_everything(cluster, pod)


def test_namespace_isolation_allows_own_and_global_namespaces(cluster: Cluster) -> None:
    cluster.put_nad("apps", "own", cluster.bridge_nad("own", "pmbro", 10))
    cluster.put_nad("default", "shared", cluster.bridge_nad("shared", "pmbrs", 11))
    pod = cluster.put_pod("apps", "iso", {NETWORKS: "own, default/shared"})

    cluster.add(pod, cluster.multus_conf(namespaceIsolation=True)).check_ok()

    assert cluster.addrs("net1") == ["198.18.10.2/24"]
    assert cluster.addrs("net2") == ["198.18.11.2/24"]
    delete_releases_everything(cluster, pod)


V6_ONLY = ("2001:db8:1::/64",)
DUAL = ("198.18.12.0/24", "2001:db8:1::/64")


@pytest.mark.parametrize(
    ("subnets", "gateways", "v4_defaults", "v6_defaults"),
    [
        pytest.param(V6_ONLY, [], [("eth0", "198.18.0.1")], [("eth0", "2001:db8::1")], id="v6"),
        pytest.param(
            V6_ONLY,
            ["2001:db8:1::1"],
            [("eth0", "198.18.0.1")],  # only the requested family moves (Go moves both)
            [("net1", "2001:db8:1::1")],
            id="v6-default-route",
        ),
        pytest.param(
            DUAL,
            ["198.18.12.1", "2001:db8:1::1"],
            [("net1", "198.18.12.1")],
            [("net1", "2001:db8:1::1")],
            id="dual-stack-default-routes",
        ),
    ],
)
def test_ipv6_and_dual_stack(
    cluster: Cluster,
    subnets: tuple[str, ...],
    gateways: list[str],
    v4_defaults: list[tuple[str, str]],
    v6_defaults: list[tuple[str, str]],
) -> None:
    cluster.write_cluster_network(cluster.bridge_conflist(v6=True))
    cluster.put_nad(
        "default", "br6", cluster.bridge_conf("br6", "pmbr6", cluster.host_local(*subnets))
    )
    request: dict[str, Any] = {"name": "br6"}
    if gateways:
        request["default-route"] = gateways
    pod = cluster.put_pod("default", "six", {NETWORKS: json.dumps([request])})

    cluster.add(pod).check_ok()

    assert cluster.addrs("eth0") == ["198.18.0.2/24"]
    assert cluster.addrs("eth0", "inet6") == ["2001:db8::2/64"]
    assert cluster.addrs("net1", "inet6") == ["2001:db8:1::2/64"]
    assert cluster.default_routes("-4") == v4_defaults
    assert cluster.default_routes("-6") == v6_defaults
    eth0, net1 = parse_network_status(cluster.status_annotation(pod) or "")
    assert eth0.ips == ["198.18.0.2", "2001:db8::2"]
    assert net1.ips[-1] == "2001:db8:1::2"
    delete_releases_everything(cluster, pod)
