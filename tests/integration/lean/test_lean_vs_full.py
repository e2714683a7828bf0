"""The thin plugin's lean path against its full path, call for call.

Each scenario runs ADD then DEL twice on the same sandbox: once with ``PYMULTUS_THIN_PATH=full``
(the core), once with ``PYMULTUS_THIN_PATH=lean`` (which fails rather than hand over, so the
scenario is known to be lean). Between the runs host-local's data and the pod's status go, so
both start from the same state. What each printed, its exit status, every file under cniDir
after ADD and after DEL (delegate cache, libcni's result cache), the network-status annotation
and the pod's links must be the same bytes, once the random parts (veth names, MACs) are
masked. A last group pins what the lean path leaves to the full path.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import yaml
from tests.support.multus import NETWORKS, STATUS, Cluster, PodId, cluster, run_plugin

__all__ = ["cluster"]

pytestmark = pytest.mark.root

_RANDOM = re.compile(rb"veth[0-9a-f]{8}|[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
SWITCH = "PYMULTUS_THIN_PATH"
UNHANDLED = 70


def _masked(data: bytes) -> bytes:
    return _RANDOM.sub(lambda m: b"X" * len(m.group()), data)


def _files(c: Cluster) -> dict[str, bytes]:
    return {
        str(p.relative_to(c.cni_dir)): _masked(p.read_bytes())
        for p in sorted(c.cni_dir.rglob("*"))
        if p.is_file()
    }


def _call(c: Cluster, command: str, pod: PodId, conf: bytes, path: str) -> tuple[int, bytes]:
    """One call on ``path`` ("full", "lean", or "" for the plugin's own choice)."""
    env = {**c.env(command, pod), SWITCH: path}
    out = run_plugin(c.pair, env, conf)
    assert out.rc != UNHANDLED, f"{command} was not lean: {out.stderr.decode(errors='replace')}"
    return out.rc, _masked(out.stdout)


def _reset(c: Cluster, pod: PodId, annotations: Mapping[str, str]) -> None:
    """host-local's allocations and the pod's annotations as before the first run."""
    for child in c.data_dir.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    meta = {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid}
    if annotations:
        meta["annotations"] = dict(annotations)
    spec = {"containers": [{"name": "pause", "image": "pause"}]}
    c.api.put_object({"kind": "Pod", "metadata": meta, "spec": spec})


def _run(
    c: Cluster,
    pod: PodId,
    conf: bytes,
    path: str,
    annotations: Mapping[str, str],
    *,
    del_path: str | None = None,
) -> Any:
    _reset(c, pod, annotations)
    add = _call(c, "ADD", pod, conf, path)
    after_add = {
        "files": _files(c),
        "status": _masked((c.status_annotation(pod) or "").encode()),
        "links": sorted(c.link_names()),
    }
    delete = _call(c, "DEL", pod, conf, path if del_path is None else del_path)
    return {"add": add, "after_add": after_add, "del": delete, "after_del": _files(c)}


def compare(
    c: Cluster,
    annotations: Mapping[str, str],
    conf: Mapping[str, Any] | None = None,
    *,
    del_path: str | None = None,
) -> Any:
    """Both paths on one pod; returns the lean run (asserted equal to the full one).
    ``del_path`` overrides the DEL's path of both runs."""
    pod = c.put_pod("default", "web", annotations)
    stdin = json.dumps(conf or c.multus_conf()).encode()
    full = _run(c, pod, stdin, "full", annotations, del_path=del_path)
    lean = _run(c, pod, stdin, "lean", annotations, del_path=del_path)
    assert lean == full
    return lean


Setup = Callable[[Cluster], dict[str, str]]


def _two_bridges(c: Cluster) -> dict[str, str]:
    c.put_nad("default", "br-a", c.bridge_nad("br-a", "pmla", 1))
    c.put_nad("default", "br-b", c.bridge_nad("br-b", "pmlb", 2))
    return {NETWORKS: "br-a, br-b@eth7"}


def _json_form(c: Cluster) -> dict[str, str]:
    c.put_nad("other", "br-a", c.bridge_nad("br-a", "pmla", 1))
    selection = [{"name": "br-a", "namespace": "other", "interface": "sec0"}]
    return {NETWORKS: json.dumps(selection)}


def _unnamed_nad(c: Cluster) -> dict[str, str]:
    conf = c.bridge_nad("x", "pmla", 1)
    del conf["name"]
    c.put_nad("default", "noname", conf)
    return {NETWORKS: "noname"}


def _conflist_nad(c: Cluster) -> dict[str, str]:
    bridge = c.bridge_nad("x", "pmla", 1)
    del bridge["name"], bridge["cniVersion"]
    tuning = {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}
    c.put_nad(
        "default",
        "chained",
        {"cniVersion": c.cni_version, "name": "chained", "plugins": [bridge, tuning]},
    )
    return {NETWORKS: "chained"}


def _static_ip_and_mac(c: Cluster) -> dict[str, str]:
    """A static address and MAC from the annotation: CNI_ARGS IP/MAC and capability args."""
    conf = c.bridge_conf("br-static", "pmls", {"type": "static"})
    conf["capabilities"] = {"ips": True, "mac": True}
    c.put_nad("default", "br-static", conf)
    selection = [
        {
            "name": "br-static",
            "interface": "st0",
            "ips": ["198.18.9.5/24"],
            "mac": "02:00:00:00:09:05",
        }
    ]
    return {NETWORKS: json.dumps(selection)}


def _no_networks(c: Cluster) -> dict[str, str]:
    return {}


SCENARIOS: dict[str, Setup] = {
    "cluster network only": _no_networks,
    "two bridges, comma form": _two_bridges,
    "JSON form, other namespace": _json_form,
    "NAD config without a name": _unnamed_nad,
    "conflist NAD": _conflist_nad,
    "static IP and MAC requests": _static_ip_and_mac,
}


@pytest.mark.parametrize("version", ["1.0.0", "0.4.0", "0.3.1"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_lean_writes_what_the_full_path_writes(
    cluster: Cluster, scenario: str, version: str
) -> None:
    cluster.cni_version = version
    cluster.write_cluster_network(cluster.bridge_conflist())
    annotations = SCENARIOS[scenario](cluster)
    lean = compare(cluster, annotations)
    assert lean["add"][0] == 0 and lean["del"][0] == 0
    assert lean["after_del"] == {}


def test_a_single_conf_cluster_network(cluster: Cluster) -> None:
    plugin = cluster.bridge_conflist()["plugins"][0]
    cluster.write_cluster_network(
        {"cniVersion": "1.0.0", "name": "pm-cluster", **plugin}, name="10-cluster.conf"
    )
    compare(cluster, _two_bridges(cluster))


def test_the_printed_result_converted_to_the_config_version(cluster: Cluster) -> None:
    cluster.cni_version = "0.4.0"
    cluster.write_cluster_network(cluster.bridge_conflist())
    annotations = _two_bridges(cluster)
    lean = compare(cluster, annotations, cluster.multus_conf(cniVersion="1.0.0"))
    assert b'"cniVersion": "1.0.0"' in lean["add"][1]


def test_a_failing_delegate_rolls_back_alike(cluster: Cluster) -> None:
    c = cluster
    c.put_nad("default", "br-a", c.bridge_nad("br-a", "pmla", 1))
    c.put_nad("default", "broken", c.bridge_conf("broken", "pmlb", {"type": "no-such-ipam"}))
    # The failed ADD took its delegate cache away: that DEL is the full path's (the pod).
    lean = compare(c, {NETWORKS: "br-a, broken"}, del_path="")
    assert lean["add"][0] == 1
    assert lean["after_add"]["files"] == {} and lean["after_add"]["links"] == ["lo"]


def test_a_failed_status_write_rolls_back_alike(cluster: Cluster) -> None:
    c = cluster
    annotations = _two_bridges(c)
    pod = c.put_pod("default", "web", annotations)
    stdin = json.dumps(c.multus_conf()).encode()
    runs = []
    for path in ("full", "lean"):
        _reset(c, pod, annotations)
        c.api.fail_matching("PATCH", "/status", n=10, status=500)
        runs.append((_call(c, "ADD", pod, stdin, path), _files(c), sorted(c.link_names())))
        c.api.clear_failures()
    assert runs[0] == runs[1]
    assert runs[1][0][0] == 1 and runs[1][1] == {} and runs[1][2] == ["lo"]


# ---------------------------------------------------------------- what is left to the full path


def _unhandled(c: Cluster, annotations: Mapping[str, str], conf: Mapping[str, Any]) -> str:
    pod = c.put_pod("default", "web", annotations)
    out = run_plugin(c.pair, {**c.env("ADD", pod), SWITCH: "lean"}, json.dumps(conf).encode())
    assert out.rc == UNHANDLED, out.describe()
    assert c.cache_files() == [] and c.status_annotation(pod) is None
    return out.stderr.decode()


@pytest.mark.parametrize(
    ("annotations", "overrides", "why"),
    [
        ({NETWORKS: '[{"name": "br-a", "default-route": ["198.18.1.1"]}]'}, {}, "keys"),
        ({NETWORKS: '[{"name": "br-a", "ips": ["198.18.1.09/24"]}]'}, {}, "ips"),
        ({NETWORKS: '[{"name": "br-a", "mac": "0200.0000.0009"}]'}, {}, "mac"),
        ({"v1.multus-cni.io/default-network": "br-a"}, {}, "default-network"),
        ({NETWORKS: "missing"}, {}, "missing NAD"),
        ({}, {"logLevel": "debug"}, "logging"),
        ({}, {"defaultNetworks": ["br-a"]}, "config keys"),
    ],
)
def test_left_to_the_full_path_before_any_change(
    cluster: Cluster, annotations: dict[str, str], overrides: dict[str, Any], why: str
) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmla", 1))
    assert why in _unhandled(cluster, annotations, cluster.multus_conf(**overrides))


def test_the_full_path_takes_over_what_the_lean_path_leaves(cluster: Cluster) -> None:
    """Without the switch, a call the lean path leaves is served by the full path."""
    c = cluster
    c.put_nad("default", "br-a", c.bridge_nad("br-a", "pmla", 1))
    pod = c.put_pod("default", "web", {NETWORKS: "br-a"})
    out = c.add(pod, c.multus_conf(logLevel="debug")).check_ok()
    assert out.json()["interfaces"]
    assert STATUS and c.status_annotation(pod)
    c.delete(pod, c.multus_conf(logLevel="debug")).check_ok()
    assert c.cache_files() == []


# ---------------------------------------------------------------- the config a cluster runs


def _deployed_conf(c: Cluster, runtime_config: Mapping[str, Any]) -> dict[str, Any]:
    """What ``pymultus generate-config --type thin`` writes (the DaemonSet's config: the
    primary in ``delegates``, its capabilities copied), as the runtime hands the multus plugin
    of that conflist to it: name and cniVersion injected, ``runtimeConfig`` added."""
    from pymultus.config.generator import generate_thin_config

    primary = c.bridge_conflist()
    primary["plugins"][0]["capabilities"] = {"portMappings": True}
    name, data = generate_thin_config(
        json.dumps(primary).encode(),
        primary_path=str(c.cluster_file),
        kubeconfig=str(c.kubeconfig),
    )
    body = json.loads(data)
    plugin = body["plugins"][0] if name.endswith(".conflist") else body
    conf = {"cniVersion": body["cniVersion"], "name": body["name"], **plugin}
    conf.update(cniDir=str(c.cni_dir), binDir="/usr/lib/cni")
    if runtime_config:
        conf["runtimeConfig"] = dict(runtime_config)
    return conf


@pytest.mark.parametrize(
    "runtime_config",
    [{}, {"portMappings": []}, {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}],
    ids=["none", "no-ports", "a-port"],
)
def test_the_deployed_config_is_lean(cluster: Cluster, runtime_config: dict[str, Any]) -> None:
    lean = compare(cluster, _two_bridges(cluster), _deployed_conf(cluster, runtime_config))
    assert lean["add"][0] == 0


def test_a_yaml_kubeconfig_is_lean_from_its_second_call(cluster: Cluster) -> None:
    """The full path parses a YAML kubeconfig once and caches its parsed form; the lean path
    reads that cache (the service account kubeconfig the DaemonSet writes is YAML)."""
    c = cluster
    c.kubeconfig.write_text(yaml.safe_dump(json.loads(c.kubeconfig.read_text())))
    annotations = _two_bridges(c)
    pod = c.put_pod("default", "web", annotations)
    stdin = json.dumps(c.multus_conf()).encode()
    first = run_plugin(c.pair, {**c.env("ADD", pod), SWITCH: "lean"}, stdin)
    assert first.rc == UNHANDLED, first.describe()
    _run(c, pod, stdin, "", annotations)  # the full path writes the parsed form's cache
    compare(c, annotations)


def test_static_delegates_then_the_pod_s_networks(cluster: Cluster) -> None:
    c = cluster
    static = c.bridge_nad("static-b", "pmls", 3)
    conf = c.multus_conf(clusterNetwork=None, delegates=[c.bridge_conflist(), static])
    lean = compare(c, _two_bridges(c), conf)
    assert lean["after_add"]["links"] == ["eth0", "eth7", "lo", "net1", "net2"]


def test_the_requested_address_is_the_pod_s(cluster: Cluster) -> None:
    lean = compare(cluster, _static_ip_and_mac(cluster))
    assert b'"198.18.9.5"' in lean["after_add"]["status"]
    assert "st0" in lean["after_add"]["links"]
