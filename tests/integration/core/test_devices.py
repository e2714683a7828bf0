"""Device-plugin integration through the thin plugin (rows 24, 28, 30, 31).

A NAD annotated ``k8s.v1.cni.cncf.io/resourceName`` gets the next device of that resource from
the pod's resource map: a stand-in kubelet PodResources gRPC server on a temporary socket, or
the device-manager checkpoint when there is no socket. The recording plugin shows what the
delegate received; the device-info files and the network-status show the rest.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.multus import NETWORKS, Cluster, Outcome, PodId
from tests.support.plugins import install_recorder, read_records, recorder_conf
from tests.support.podresources_server import PodResourcesServer, container, pod

from pymultus.k8s.devinfo_files import cni_device_info_path, dp_device_info_path
from pymultus.k8s.objects import RESOURCE_NAME_ANNOTATION

RESOURCE = "example.com/pmvf"
RECORDER = "rec-dev"
DP_INFO = {"type": "pci", "version": "1.0.0", "pci": {"pci-address": "0000:03:00.1"}}
CAPS = {"deviceID": True, "CNIDeviceInfoFile": True}


@dataclass
class Node:
    """One test's kubelet paths, device-info root, plugin dir and the recorder's log."""

    cluster: Cluster
    thin: Callable[..., Outcome]
    kubelet_dir: Path  # short: a unix socket path must fit in 108 bytes
    devinfo: Path
    records: Path
    bin_dir: Path

    @property
    def socket(self) -> Path:
        return self.kubelet_dir / "kubelet.sock"

    @property
    def checkpoint(self) -> Path:
        return self.kubelet_dir / "kubelet_internal_checkpoint"

    def put_nad(self, name: str, config: Any, *, resource: str | None = RESOURCE) -> None:
        meta: dict[str, Any] = {"namespace": "default", "name": name}
        if resource:
            meta["annotations"] = {RESOURCE_NAME_ANNOTATION: resource}
        obj = {"kind": "NetworkAttachmentDefinition", "metadata": meta}
        self.cluster.api.put_object({**obj, "spec": {"config": json.dumps(config)}})

    def recorder(self, name: str) -> dict[str, Any]:
        return recorder_conf(RECORDER, self.records, name=name, capabilities=CAPS)

    def run(self, command: str, p: PodId) -> Outcome:
        conf = self.cluster.multus_conf(binDir=str(self.bin_dir))
        return self.thin(
            self.cluster,
            command,
            p,
            conf,
            kubelet_socket=str(self.socket),
            kubelet_checkpoint=str(self.checkpoint),
            devinfo_root=str(self.devinfo),
        )

    def calls(self, command: str) -> list[dict[str, Any]]:
        """The configs the recorder got for ``command``, by network name."""
        found = [r for r in read_records(self.records) if r["command"] == command]
        return [json.loads(r["stdin"]) for r in found]

    def cni_file(self, p: PodId, nad: str, ifname: str) -> Path:
        path = cni_device_info_path(
            f"default/{nad}", p.container_id, ifname, root=str(self.devinfo)
        )
        return Path(path)

    def write_dp_file(self, device_id: str, info: Any) -> None:
        path = Path(dp_device_info_path(RESOURCE, device_id, root=str(self.devinfo)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info))


@pytest.fixture
def node(cluster: Cluster, thin: Callable[..., Outcome], tmp_path: Path) -> Iterator[Node]:
    kubelet_dir = Path(tempfile.mkdtemp(prefix="pmk", dir="/tmp"))
    bin_dir = tmp_path / "bin"
    install_recorder(bin_dir, RECORDER)
    try:
        yield Node(
            cluster, thin, kubelet_dir, tmp_path / "devinfo", tmp_path / "rec.jsonl", bin_dir
        )
    finally:
        shutil.rmtree(kubelet_dir, ignore_errors=True)


def statuses(cluster: Cluster, p: PodId) -> list[dict[str, Any]]:
    value = cluster.status_annotation(p)
    assert value is not None, "no network-status annotation was written"
    entries: list[dict[str, Any]] = json.loads(value)
    return entries


def cached(cluster: Cluster, p: PodId) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((cluster.cni_dir / p.container_id).read_bytes())
    return entries


def test_devices_from_the_kubelet_reach_the_delegates_and_the_status(node: Node) -> None:
    cluster = node.cluster
    node.put_nad("vf-a", node.recorder("vf-a"))
    chained = {
        "cniVersion": "1.0.0",
        "name": "vf-b",
        "plugins": [node.recorder("vf-b"), node.recorder("vf-b")],
    }
    node.put_nad("vf-b", chained)
    node.write_dp_file("0000:03:00.1", {**DP_INFO, "unknown": "dropped"})
    p = cluster.put_pod("default", "sriov", {NETWORKS: "vf-a, vf-b"})
    ids = ["0000:03:00.2", "0000:03:00.1"]  # the map sorts them
    with PodResourcesServer(node.socket) as kubelet:
        kubelet.pods = [pod("default", "sriov", container("app", (RESOURCE, ids)))]

        node.run("ADD", p).check_ok()

        assert kubelet.calls == 1  # one resource map per ADD, shared by both NADs
    first, *second = node.calls("ADD")
    file_a = node.cni_file(p, "vf-a", "net1")
    assert (first["deviceID"], first["pciBusID"]) == ("0000:03:00.1", "0000:03:00.1")
    assert first["runtimeConfig"] == {"deviceID": "0000:03:00.1", "CNIDeviceInfoFile": str(file_a)}
    assert len(second) == 2  # every plugin of the conflist gets the device
    for plugin in second:
        assert (plugin["deviceID"], plugin["pciBusID"]) == ("0000:03:00.2", "0000:03:00.2")
        assert plugin["runtimeConfig"]["deviceID"] == "0000:03:00.2"
    # The DP file was copied (decoded and re-encoded: unknown keys dropped), read-only.
    assert json.loads(file_a.read_bytes()) == DP_INFO
    assert stat.S_IMODE(file_a.stat().st_mode) == 0o444
    assert not node.cni_file(p, "vf-b", "net2").exists()  # no DP file for that device
    _, net1, net2 = statuses(cluster, p)
    assert (net1["name"], net1["device-info"]) == ("default/vf-a", DP_INFO)
    assert net2["name"] == "default/vf-b" and "device-info" not in net2
    entries = cached(cluster, p)
    assert [(e.get("deviceID"), e.get("resourceName")) for e in entries] == [
        (None, None),
        ("0000:03:00.1", RESOURCE),
        ("0000:03:00.2", RESOURCE),
    ]
    assert json.loads(base64.b64decode(entries[1]["Bytes"]))["deviceID"] == "0000:03:00.1"

    node.run("DEL", p).check_ok()

    deleted = node.calls("DEL")
    assert sorted(c["deviceID"] for c in deleted) == [
        "0000:03:00.1",
        "0000:03:00.2",
        "0000:03:00.2",
    ]
    assert not file_a.exists()
    assert cluster.link_names() == {"lo"} and cluster.cache_files() == []


def test_checkpoint_is_the_source_when_there_is_no_socket(node: Node) -> None:
    node.put_nad("vf-a", node.recorder("vf-a"))
    p = node.cluster.put_pod("default", "ckpt", {NETWORKS: "vf-a"})
    entry = {
        "PodUID": p.uid,
        "ContainerName": "app",
        "ResourceName": RESOURCE,
        "DeviceIDs": {"0": ["0000:04:00.7"]},
        "AllocResp": "",
    }
    data = {"Data": {"PodDeviceEntries": [entry], "RegisteredDevices": {}}, "Checksum": 1}
    node.checkpoint.write_text(json.dumps(data))

    node.run("ADD", p).check_ok()

    [call] = node.calls("ADD")
    assert call["deviceID"] == "0000:04:00.7"
    assert call["runtimeConfig"]["CNIDeviceInfoFile"] == str(node.cni_file(p, "vf-a", "net1"))
    node.run("DEL", p).check_ok()


def test_annotation_device_id_is_used_when_the_kubelet_has_none(node: Node) -> None:
    """Row 24: only a capability; the config is not changed and no resource is recorded."""
    node.put_nad("vf-a", node.recorder("vf-a"))
    request = [{"name": "vf-a", "deviceID": "0000:05:00.0"}]
    p = node.cluster.put_pod("default", "annot", {NETWORKS: json.dumps(request)})
    with PodResourcesServer(node.socket) as kubelet:
        kubelet.pods = [pod("default", "annot", container("app", ("other.com/x", ["a"])))]

        node.run("ADD", p).check_ok()

    [call] = node.calls("ADD")
    assert "deviceID" not in call and "pciBusID" not in call
    assert call["runtimeConfig"] == {
        "deviceID": "0000:05:00.0",
        "CNIDeviceInfoFile": str(node.cni_file(p, "vf-a", "net1")),
    }
    entry = cached(node.cluster, p)[1]
    assert (entry["deviceID"], "resourceName" in entry) == ("0000:05:00.0", False)
    node.run("DEL", p).check_ok()


def test_no_kubelet_source_fails_before_anything_runs(node: Node) -> None:
    node.put_nad("vf-a", node.recorder("vf-a"))
    p = node.cluster.put_pod("default", "nokubelet", {NETWORKS: "vf-a"})

    err = node.run("ADD", p).error()

    assert err["code"] == 5, err
    assert str(node.socket) in err["msg"] and str(node.checkpoint) in err["msg"], err
    assert node.calls("ADD") == [] and node.cluster.link_names() == {"lo"}
    assert not os.path.exists(node.cluster.cni_dir / p.container_id)
