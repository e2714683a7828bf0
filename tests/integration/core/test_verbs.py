"""VERSION, CHECK, STATUS and GC through the thin ``multus`` binary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.multus import CNI_BIN, NETWORKS, Cluster, PodId, run_plugin
from tests.support.netns import ip
from tests.support.plugins import install_recorder, read_records, recorder_conf

from pymultus.cni.version import ALL_VERSIONS


def test_version_prints_every_supported_version(cluster: Cluster) -> None:
    out = run_plugin(cluster.pair, {"CNI_COMMAND": "VERSION"}, b"").check_ok()

    expected = {"cniVersion": "1.1.0", "supportedVersions": list(ALL_VERSIONS)}
    assert out.stdout == json.dumps(expected, separators=(",", ":")).encode()


# --- CHECK ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "annotation",
    [
        "br-a, br-b@data0",  # one veth per bridge: a bridge's MAC moves as ports join
        # The default-route step rewrote libcni's cached results to match the kernel, so the
        # bridge plugin's CHECK (which verifies every cached route) still passes.
        json.dumps([{"name": "br-a", "default-route": ["198.18.1.1"]}]),
    ],
    ids=["plain", "default-route"],
)
def test_check_passes_after_add_and_fails_once_an_attachment_is_broken(
    cluster: Cluster, annotation: str
) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    cluster.put_nad("default", "br-b", cluster.bridge_nad("br-b", "pmbrb", 2))
    pod = cluster.put_pod("default", "chk", {NETWORKS: annotation})
    cluster.add(pod).check_ok()

    assert cluster.call("CHECK", pod).check_ok().stdout == b""

    ip(cluster.pair.pod, "addr", "flush", "dev", "net1")
    err = cluster.call("CHECK", pod).error()
    assert 'error checking network "br-a"' in err["msg"], err
    assert "198.18.1.2" in err["msg"], err


def test_check_needs_config_version_0_4_0(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "old")
    conf = cluster.multus_conf(cniVersion="0.3.1")

    err = cluster.call("CHECK", pod, conf).error()

    assert (err["code"], err["msg"]) == (1, "config version does not allow CHECK")


# --- STATUS and GC (spec 1.1.0: the recorder plays the cluster network) ----------------------


def _recorder_cluster(cluster: Cluster, behaviour: dict[str, Any] | None = None) -> Path:
    """The recorder as a 1.1.0 cluster network conflist; returns its record file."""
    install_recorder(cluster.tmp / "bin", "pm-rec")
    calls = cluster.tmp / "calls.jsonl"
    plugin = recorder_conf("pm-rec", calls, cni_version="1.1.0", behaviour=behaviour)
    del plugin["cniVersion"], plugin["name"]
    conflist = {"cniVersion": "1.1.0", "name": "rec-cluster", "plugins": [plugin]}
    cluster.write_cluster_network(conflist)
    return calls


def _conf_110(cluster: Cluster, **extra: Any) -> dict[str, Any]:
    settings = {"cniVersion": "1.1.0", "binDir": str(cluster.tmp / "bin"), **extra}
    return cluster.multus_conf(**settings)


def _run(cluster: Cluster, command: str, conf: dict[str, Any]) -> Any:
    """STATUS and GC get only CNI_COMMAND and CNI_PATH from a runtime."""
    env = {"CNI_COMMAND": command, "CNI_PATH": CNI_BIN}
    return run_plugin(cluster.pair, env, json.dumps(conf).encode())


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (None, 0),
        ({"STATUS": {"action": "error", "code": 50, "msg": "no lease"}}, 50),
        ({"STATUS": {"action": "error", "code": 51, "msg": "degraded"}}, 51),
    ],
    ids=["ready", "plugin-not-available", "limited-connectivity"],
)
def test_status_asks_the_cluster_network(
    cluster: Cluster, behaviour: dict[str, Any] | None, code: int
) -> None:
    calls = _recorder_cluster(cluster, behaviour)

    out = _run(cluster, "STATUS", _conf_110(cluster))

    assert [r["command"] for r in read_records(calls)] == ["STATUS"]
    if code == 0:
        assert out.check_ok().stdout == b""
    else:
        err = out.error()
        assert err["code"] == code  # the delegate's own code reaches the runtime
        assert behaviour is not None and behaviour["STATUS"]["msg"] in err["msg"]


@pytest.mark.parametrize("command", ["STATUS", "GC"])
def test_status_and_gc_need_config_version_1_1_0(cluster: Cluster, command: str) -> None:
    calls = _recorder_cluster(cluster)

    err = _run(cluster, command, _conf_110(cluster, cniVersion="1.0.0")).error()

    assert (err["code"], err["msg"]) == (1, f"config version does not allow {command}")
    assert read_records(calls) == []


def test_gc_deletes_attachments_the_runtime_no_longer_lists(cluster: Cluster) -> None:
    calls = _recorder_cluster(cluster)
    keep, stale = cluster.put_pod("default", "keep"), cluster.put_pod("default", "stale")
    for pod in (keep, stale):
        cluster.add(pod, _conf_110(cluster)).check_ok()
    valid = [{"containerID": keep.container_id, "ifname": "eth0"}]

    _run(cluster, "GC", _conf_110(cluster, **{"cni.dev/valid-attachments": valid})).check_ok()

    assert cluster.cache_files() == [
        keep.container_id,
        f"results/rec-cluster-{keep.container_id}-eth0",
    ]
    after_adds = read_records(calls)[2:]
    assert [(r["command"], r["env"].get("CNI_CONTAINERID")) for r in after_adds] == [
        ("DEL", stale.container_id),
        ("GC", ""),
    ]
    gc_conf = json.loads(after_adds[1]["stdin"])
    assert gc_conf["cni.dev/valid-attachments"] == valid
    assert _pods_added(calls) == {keep.container_id, stale.container_id}


def _pods_added(calls: Path) -> set[str]:
    return {r["env"]["CNI_CONTAINERID"] for r in read_records(calls) if r["command"] == "ADD"}


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "key-absent"])
def test_gc_without_stale_attachments_only_sends_gc(cluster: Cluster, listed: bool) -> None:
    """A request without valid-attachments is read as Go reads every GC: what our caches
    hold is valid, so nothing is deleted. A stray file in cniDir does not break GC."""
    calls = _recorder_cluster(cluster)
    pod: PodId = cluster.put_pod("default", "only")
    cluster.add(pod, _conf_110(cluster)).check_ok()
    (cluster.cni_dir / "not a container id").write_text("stray")
    valid = [{"containerID": pod.container_id, "ifname": "eth0"}]
    extra = {"cni.dev/valid-attachments": valid} if listed else {}

    _run(cluster, "GC", _conf_110(cluster, **extra)).check_ok()

    records = read_records(calls)
    assert [r["command"] for r in records] == ["ADD", "GC"]
    assert json.loads(records[1]["stdin"])["cni.dev/valid-attachments"] == valid
    assert len(cluster.cache_files()) == 3


def test_runtime_config_reaches_the_cluster_network_only(cluster: Cluster) -> None:
    """NPWG 7.5: the runtime's portMappings go to the cluster network; a secondary network
    declaring the same capability gets only what the pod's annotation asked for."""
    calls = _recorder_cluster(cluster)
    conflist = json.loads(cluster.cluster_file.read_text())
    conflist["plugins"][0]["capabilities"] = {"portMappings": True}
    cluster.write_cluster_network(conflist)
    secondary = recorder_conf(
        "pm-rec", calls, name="rec-b", cni_version="1.1.0", capabilities={"portMappings": True}
    )
    cluster.put_nad("default", "rec-b", secondary)
    own = {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
    asked = {"hostPort": 9090, "containerPort": 90}
    pod = cluster.put_pod(
        "default", "pm", {NETWORKS: json.dumps([{"name": "rec-b", "portMappings": [asked]}])}
    )

    cluster.add(pod, _conf_110(cluster, runtimeConfig={"portMappings": [own]})).check_ok()

    sent = {r["env"]["CNI_IFNAME"]: json.loads(r["stdin"]) for r in read_records(calls)}
    assert sent["eth0"]["runtimeConfig"] == {"portMappings": [own]}
    assert sent["net1"]["runtimeConfig"] == {"portMappings": [asked]}
