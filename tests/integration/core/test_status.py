"""network-status, events, caches and the printed result for golden case 01's setup, compared
with what Go Multus wrote (``/work/shared/reference/golden/01-thin-comma-annotation``) with the
run-dependent values (MACs, addresses, veth names, UIDs, paths) masked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.support.multus import NETWORKS, Cluster, PodId

from pymultus.cni.convert import parse_result, to_current
from pymultus.k8s.status import render_network_status, statuses_for_result

GOLDEN = Path("/work/shared/reference/golden/01-thin-comma-annotation")
_MAC = re.compile(r'"[0-9a-f]{2}(:[0-9a-f]{2}){5}"')
_IP4 = re.compile(r'"198\.18\.\d+\.\d+(/\d+)?"')
_VETH = re.compile(r'"veth[0-9a-f]{8}"')
_NETNS = re.compile(r'"/var/run/netns/[^"]+"')


def mask(text: str) -> str:
    for pattern, label in ((_MAC, '"MAC"'), (_IP4, '"IP"'), (_VETH, '"VETH"'), (_NETNS, '"NS"')):
        text = pattern.sub(label, text)
    return text


@pytest.fixture
def golden_01(cluster: Cluster) -> PodId:
    """Case 01's objects and names: namespace ``golden``, cluster network ``golden-cluster``
    on bridge ``gold-br0``, NADs ``br-a`` (bridge) and ``mv-b`` (macvlan on ``gold-mv0``)."""
    conflist = cluster.bridge_conflist()
    conflist["name"] = "golden-cluster"
    conflist["plugins"][0]["bridge"] = "gold-br0"
    conflist["plugins"][0]["ipam"] = {
        "type": "host-local",
        "subnet": "198.18.0.0/24",
        "gateway": "198.18.0.1",
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(cluster.data_dir),
    }
    cluster.write_cluster_network(conflist, "10-golden.conflist")
    cluster.pair.add_veth("gold-mv0", "gold-mv0p")
    cluster.put_nad("golden", "br-a", cluster.bridge_nad("br-a", "gold-bra", 1))
    macvlan = {
        "cniVersion": "1.0.0",
        "name": "mv-b",
        "type": "macvlan",
        "master": "gold-mv0",
        "mode": "bridge",
        "ipam": cluster.host_local("198.18.2.0/24"),
    }
    cluster.put_nad("golden", "mv-b", macvlan)
    return cluster.put_pod("golden", "pod-01", {NETWORKS: "br-a, mv-b@data0"})


def test_network_status_has_golden_01_shape(cluster: Cluster, golden_01: PodId) -> None:
    cluster.add(golden_01).check_ok()

    status = cluster.status_annotation(golden_01)
    assert status is not None
    assert mask(status) == mask((GOLDEN / "network-status.txt").read_text())
    # The exact bytes k8s.status renders from the delegates' results (as libcni cached them).
    names = [("golden-cluster", "eth0"), ("br-a", "net1"), ("mv-b", "data0")]
    entries = []
    for index, (network, ifname) in enumerate(names):
        cached = _results_file(cluster, golden_01, network, ifname)
        result = to_current(parse_result(json.dumps(cached["result"]).encode()))
        name = network if index == 0 else f"golden/{network}"
        entries += statuses_for_result(result, name, index == 0)
    assert status == render_network_status(entries)


def test_result_events_and_caches_have_golden_01_shape(cluster: Cluster, golden_01: PodId) -> None:
    out = cluster.add(golden_01).check_ok()

    assert mask(out.stdout.decode()) == mask((GOLDEN / "add.stdout").read_text())
    ours = [e["message"] for e in cluster.api.events]
    golden = [e["message"] for e in json.loads((GOLDEN / "events.json").read_text())]
    assert sorted(mask(f'"{m}"') for m in ours) == sorted(mask(f'"{m}"') for m in golden)
    assert {(e["type"], e["reason"], e["source"]["component"]) for e in cluster.api.events} == {
        ("Normal", "AddedInterface", "multus")
    }
    delegates = json.loads((cluster.cni_dir / golden_01.container_id).read_bytes())
    expected = json.loads((GOLDEN / "delegate-cache.json").read_bytes())
    assert _without_bytes(delegates) == _without_bytes(expected)
    for network, ifname in [("golden-cluster", "eth0"), ("br-a", "net1"), ("mv-b", "data0")]:
        ours_entry = _results_file(cluster, golden_01, network, ifname)
        golden_path = GOLDEN / "results" / f"{network}-{'0' * 63}1-{ifname}"
        golden_entry = json.loads(golden_path.read_bytes())
        assert list(ours_entry) == list(golden_entry)  # libcni's field order
        assert len(ours_entry["cniArgs"]) == len(golden_entry["cniArgs"]) == 10
        assert [k for k, _ in ours_entry["cniArgs"]] == [k for k, _ in golden_entry["cniArgs"]]


def test_del_leaves_the_network_status_in_place(cluster: Cluster, golden_01: PodId) -> None:
    cluster.add(golden_01).check_ok()
    written = cluster.status_annotation(golden_01)

    cluster.delete(golden_01).check_ok()

    assert cluster.status_annotation(golden_01) == written
    assert cluster.link_names() == {"lo"}
    assert cluster.allocations() == [] and cluster.cache_files() == []


def _results_file(cluster: Cluster, pod: PodId, network: str, ifname: str) -> dict[str, Any]:
    path = cluster.cni_dir / "results" / f"{network}-{pod.container_id}-{ifname}"
    entry: dict[str, Any] = json.loads(path.read_bytes())
    return entry


def _without_bytes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "Bytes"} for e in entries]
