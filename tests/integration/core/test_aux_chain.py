"""The auxiliary CNI chain (row 47) and our ``passthru`` plugin that heads it.

``auxiliaryCNIChainName: pm-chain`` appends a conflist ``pm-chain`` = ``passthru`` + the
``.conf`` files of ``<clusterNetwork's dir>/pm-chain/``, run on ``net<N>`` after every other
attachment. Here the chain holds Debian's tuning plugin setting a sysctl of the pod's eth0.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.multus import NETWORKS, Cluster, run_plugin
from tests.support.netns import exec_in

PASSTHRU = Path(sys.executable).with_name("passthru")
ARP_FILTER = "/proc/sys/net/ipv4/conf/eth0/arp_filter"


def chain_conf(cluster: Cluster, **overrides: Any) -> dict[str, Any]:
    """binDir holds ``passthru`` (CNI_PATH, /usr/lib/cni, has the rest)."""
    bin_dir = cluster.tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "passthru").exists():
        (bin_dir / "passthru").symlink_to(PASSTHRU)
    return cluster.multus_conf(binDir=str(bin_dir), auxiliaryCNIChainName="pm-chain", **overrides)


def write_chain_plugin(cluster: Cluster) -> None:
    tuning = {
        "cniVersion": "1.0.0",
        "name": "tweak",
        "type": "tuning",
        "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"},
    }
    chain_dir = cluster.cluster_file.parent / "pm-chain"
    chain_dir.mkdir()
    (chain_dir / "50-tweak.conf").write_text(json.dumps(tuning))
    (chain_dir / "ignored.conflist").write_text("{}")  # only .conf files join the chain


def arp_filter(cluster: Cluster) -> str:
    return exec_in(cluster.pair.pod, "cat", ARP_FILTER).stdout.strip()


def test_chain_runs_last_on_its_own_ifname(cluster: Cluster) -> None:
    write_chain_plugin(cluster)
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "chained", {NETWORKS: "br-a"})
    conf = chain_conf(cluster)

    cluster.add(pod, conf).check_ok()

    assert arp_filter(cluster) == "1"
    assert cluster.link_names() == {"lo", "eth0", "net1"}  # the chain adds no interface
    cache = json.loads((cluster.cni_dir / pod.container_id).read_bytes())
    assert [d["Name"] for d in cache] == ["pm-cluster", "default/br-a", "pm-chain"]
    chain = json.loads(base64.b64decode(cache[2]["Bytes"]))
    assert [p["type"] for p in chain["plugins"]] == ["passthru", "tuning"]
    assert (cluster.cni_dir / "results" / f"pm-chain-{pod.container_id}-net2").is_file()
    status = json.loads(cluster.status_annotation(pod) or "[]")
    assert [s["name"] for s in status] == ["pm-cluster", "default/br-a"]  # no interface

    cluster.delete(pod, conf).check_ok()

    assert cluster.link_names() == {"lo"} and cluster.cache_files() == []


def test_no_chain_plugins_no_chain(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "unchained")

    cluster.add(pod, chain_conf(cluster)).check_ok()

    assert arp_filter(cluster) == "0"  # the kernel's default: nothing ran
    cache = json.loads((cluster.cni_dir / pod.container_id).read_bytes())
    assert [d["Name"] for d in cache] == ["pm-cluster"]
    cluster.delete(pod, chain_conf(cluster)).check_ok()


def test_chain_needs_a_cluster_network_path(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "named")
    (cluster.conf_dir / "10-cluster.conflist").write_bytes(cluster.cluster_file.read_bytes())
    write_chain_plugin(cluster)

    err = cluster.add(pod, chain_conf(cluster, clusterNetwork="pm-cluster")).error()

    assert err["code"] == 7 and "auxiliaryCNIChainName needs clusterNetwork" in err["msg"], err
    assert cluster.link_names() == {"lo"} and cluster.cache_files() == []


@pytest.mark.parametrize(
    ("command", "config", "expected"),
    [
        (
            "VERSION",
            {},
            {
                "cniVersion": "1.1.0",
                "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
            },
        ),
        ("ADD", {"cniVersion": "1.0.0"}, {"cniVersion": "1.0.0", "dns": {}}),
        (
            "ADD",
            {
                "cniVersion": "0.4.0",
                "prevResult": {
                    "cniVersion": "0.4.0",
                    "ips": [{"version": "4", "address": "192.0.2.5/24"}],
                },
            },
            {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "192.0.2.5/24"}]},
        ),
        ("DEL", {"cniVersion": "1.0.0"}, None),
        ("CHECK", {"cniVersion": "1.0.0"}, None),
    ],
)
def test_passthru_plugin(
    cluster: Cluster, command: str, config: dict[str, Any], expected: Any
) -> None:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_IFNAME": "net9"}
    stdin = json.dumps({"name": "aux", "type": "passthru", **config}).encode()

    out = run_plugin(cluster.pair, env, stdin, argv=[str(PASSTHRU)]).check_ok()

    assert (json.loads(out.stdout) if out.stdout else None) == expected


@pytest.mark.parametrize(
    ("stdin", "code"), [(b"not json", 6), (b'{"cniVersion": "0.2.0"}', 1), (b"[]", 6)]
)
def test_passthru_errors(cluster: Cluster, stdin: bytes, code: int) -> None:
    out = run_plugin(cluster.pair, {"CNI_COMMAND": "ADD"}, stdin, argv=[str(PASSTHRU)])

    assert out.error()["code"] == code
