"""DRA devices through the thin plugin: ResourceClaims and ResourceSlices from the stand-in
API server (``resource.k8s.io/v1``), the recording plugin showing the deviceID it got, and
network-status and the delegate cache carrying it (``dra.md`` §5 and the gaps of §6).

No kubelet source exists on this "node" unless a test makes one: DRA is the only device
source, which must work (``dra.md`` §8).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.dra_objects import (
    DRIVER,
    GPU_DRIVER,
    NODE,
    POOL,
    SRIOV,
    device,
    pod_with_claims,
    resource_claim,
    resource_slice,
)
from tests.support.multus import NETWORKS, Cluster, Outcome, PodId
from tests.support.plugins import install_recorder, read_records, recorder_conf
from tests.support.podresources_server import Container, Dynamic, PodResourcesServer, pod

from pymultus.k8s.devinfo_files import dp_device_info_path
from pymultus.k8s.objects import RESOURCE_NAME_ANNOTATION

RECORDER = "rec-dra"
CAPS = {"deviceID": True, "CNIDeviceInfoFile": True}
VF1, VF2, VF3 = "0000:03:00.1", "0000:03:00.2", "0000:03:00.3"
DP_INFO = {"type": "pci", "version": "1.0.0", "pci": {"pci-address": VF1}}


@dataclass
class DraNode:
    cluster: Cluster
    thin: Callable[..., Outcome]
    kubelet_dir: Path
    devinfo: Path
    records: Path
    bin_dir: Path

    def put_nad(self, name: str, resource: str = SRIOV) -> None:
        meta: dict[str, Any] = {"namespace": "default", "name": name}
        meta["annotations"] = {RESOURCE_NAME_ANNOTATION: resource}
        conf = recorder_conf(RECORDER, self.records, name=name, capabilities=CAPS)
        obj = {"kind": "NetworkAttachmentDefinition", "metadata": meta}
        self.cluster.api.put_object({**obj, "spec": {"config": json.dumps(conf)}})

    def put(self, *objs: dict[str, Any]) -> None:
        for obj in objs:
            self.cluster.api.put_object(obj)

    def put_pod(self, name: str, networks: str, **claims: Any) -> PodId:
        uid = f"0000{name}-aaaa-bbbb-cccc-000000000000"
        self.put(
            pod_with_claims("default", name, uid=uid, annotations={NETWORKS: networks}, **claims)
        )
        return PodId("default", name, uid, container_id=f"c0ffee{name}" * 2)

    def run(self, command: str, p: PodId) -> Outcome:
        conf = self.cluster.multus_conf(binDir=str(self.bin_dir))
        return self.thin(
            self.cluster,
            command,
            p,
            conf,
            kubelet_socket=str(self.kubelet_dir / "kubelet.sock"),
            kubelet_checkpoint=str(self.kubelet_dir / "kubelet_internal_checkpoint"),
            devinfo_root=str(self.devinfo),
        )

    def dra_requests(self) -> list[tuple[str, str, str]]:
        return [
            (r.method, r.path, r.query.get("fieldSelector", ""))
            for r in self.cluster.api.requests(path="/apis/resource.k8s.io/")
        ]


@pytest.fixture
def node(cluster: Cluster, thin: Callable[..., Outcome], tmp_path: Path) -> Iterator[DraNode]:
    kubelet_dir = Path(tempfile.mkdtemp(prefix="pmdra", dir="/tmp"))
    bin_dir = tmp_path / "bin"
    install_recorder(bin_dir, RECORDER)
    try:
        yield DraNode(
            cluster, thin, kubelet_dir, tmp_path / "devinfo", tmp_path / "rec.jsonl", bin_dir
        )
    finally:
        shutil.rmtree(kubelet_dir, ignore_errors=True)


def calls(node: DraNode, command: str) -> list[dict[str, Any]]:
    found = [r for r in read_records(node.records) if r["command"] == command]
    return [json.loads(r["stdin"]) for r in found]


def statuses(node: DraNode, p: PodId) -> list[dict[str, Any]]:
    value = node.cluster.status_annotation(p)
    assert value is not None
    entries: list[dict[str, Any]] = json.loads(value)
    return entries


def vf_slice(*devices: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return resource_slice(kw.pop("name", "node-a-vfs"), list(devices), **kw)


def test_a_claim_from_a_template_gives_its_device(node: DraNode) -> None:
    node.put_nad("vf-a")
    node.put(vf_slice(device("vf0", VF1, SRIOV)))
    node.put(resource_claim("default", "dra1-vf-x7k2p", [("vf", DRIVER, POOL, "vf0")]))
    path = Path(dp_device_info_path(SRIOV, VF1, root=str(node.devinfo)))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(DP_INFO))
    p = node.put_pod("dra1", "vf-a", generated={"vf": "dra1-vf-x7k2p"})

    node.run("ADD", p).check_ok()

    [call] = calls(node, "ADD")
    assert (call["deviceID"], call["pciBusID"]) == (VF1, VF1)
    assert call["runtimeConfig"]["deviceID"] == VF1
    _, net1 = statuses(node, p)
    assert (net1["name"], net1["device-info"]) == ("default/vf-a", DP_INFO)
    # Go's requests exactly: one GET of the claim, one LIST of the node's slices of the driver.
    assert node.dra_requests() == [
        ("GET", "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/dra1-vf-x7k2p", ""),
        (
            "GET",
            "/apis/resource.k8s.io/v1/resourceslices",
            f"spec.nodeName={NODE},spec.driver={DRIVER}",
        ),
    ]
    entry = json.loads((node.cluster.cni_dir / p.container_id).read_bytes())[1]
    assert (entry["deviceID"], entry["resourceName"]) == (VF1, SRIOV)
    # Gap 10: writing network-status leaves the pod's claim statuses alone.
    pod_obj = node.cluster.api.get_object("pods", "default", "dra1")
    assert pod_obj is not None
    assert pod_obj["status"]["resourceClaimStatuses"] == [
        {"name": "vf", "resourceClaimName": "dra1-vf-x7k2p"}
    ]

    node.cluster.api.stop()  # DEL never needs DRA (nor the API): the delegate cache has it
    try:
        node.run("DEL", p).check_ok()
    finally:
        node.cluster.api.start()
    assert [c["deviceID"] for c in calls(node, "DEL")] == [VF1]


def test_two_nads_of_one_resource_get_two_devices_in_order(node: DraNode) -> None:
    node.put_nad("vf-a")
    node.put_nad("vf-b")
    node.put(
        vf_slice(device("vf0", VF3, SRIOV), device("vf1", VF1, SRIOV), device("vf2", VF2, SRIOV))
    )
    results = [("vf", DRIVER, POOL, "vf0"), ("vf", DRIVER, POOL, "vf1")]
    node.put(resource_claim("default", "two-vf", results))
    node.put(resource_claim("default", "one-vf", [("vf", DRIVER, POOL, "vf2")]))
    p = node.put_pod("dra2", "vf-a, vf-b, vf-a", generated={"a": "two-vf", "b": "one-vf"})

    node.run("ADD", p).check_ok()

    assert [c["deviceID"] for c in calls(node, "ADD")] == [VF1, VF2, VF3]  # sorted, in turn
    assert [s.get("name") for s in statuses(node, p)][1:] == [
        "default/vf-a",
        "default/vf-b",
        "default/vf-a",
    ]
    # One GET per claim, one LIST for the one driver.
    assert [r[0] for r in node.dra_requests()] == ["GET", "GET", "GET"]
    node.run("DEL", p).check_ok()


def test_a_pod_without_claims_costs_no_dra_request(node: DraNode) -> None:
    node.put_nad("vf-a")
    checkpoint = {"Data": {"PodDeviceEntries": [], "RegisteredDevices": {}}, "Checksum": 1}
    (node.kubelet_dir / "kubelet_internal_checkpoint").write_text(json.dumps(checkpoint))
    p = node.put_pod("dra3", "vf-a")
    node.cluster.api.clear_log()

    node.run("ADD", p).check_ok()

    assert node.dra_requests() == []
    paths = [f"{r.method} {r.path}" for r in node.cluster.api.requests() if "events" not in r.path]
    assert paths == [
        "GET /api/v1/namespaces/default/pods/dra3",
        "GET /apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/vf-a",
        "PATCH /api/v1/namespaces/default/pods/dra3/status",
    ]
    assert calls(node, "ADD")[0].get("deviceID") is None
    node.run("DEL", p).check_ok()


def test_gap1_a_claim_named_directly_in_the_spec(node: DraNode) -> None:
    node.put_nad("vf-a")
    node.put(vf_slice(device("vf0", VF1, SRIOV)))
    node.put(resource_claim("default", "shared-vf", [("vf", DRIVER, POOL, "vf0")]))
    p = node.put_pod("dra4", "vf-a", direct={"vf": "shared-vf"})

    node.run("ADD", p).check_ok()

    assert [c["deviceID"] for c in calls(node, "ADD")] == [VF1]
    node.run("DEL", p).check_ok()


@pytest.mark.parametrize(
    "where",
    [{"all_nodes": True}, {"node_selector": {"nodeSelectorTerms": [{"matchExpressions": []}]}}],
    ids=["allNodes", "nodeSelector"],
)
def test_gap3_a_device_of_a_node_independent_slice(node: DraNode, where: dict[str, Any]) -> None:
    node.put_nad("vf-a")
    node.put(vf_slice(device("nic7", VF2, SRIOV), name="fabric", pool="fabric", **where))
    node.put(vf_slice(device("vf0", VF1, SRIOV)))  # the node's own slice does not have it
    node.put(resource_claim("default", "dra5-vf", [("vf", DRIVER, "fabric", "nic7")]))
    p = node.put_pod("dra5", "vf-a", generated={"vf": "dra5-vf"})

    node.run("ADD", p).check_ok()

    assert [c["deviceID"] for c in calls(node, "ADD")] == [VF2]
    assert [r[2] for r in node.dra_requests()][1:] == [
        f"spec.nodeName={NODE},spec.driver={DRIVER}",
        f"spec.nodeName=,spec.driver={DRIVER}",
    ]
    node.run("DEL", p).check_ok()


def test_gap2_a_gpu_claim_never_fails_the_add(node: DraNode) -> None:
    """A GPU (no network attributes) from a regular claim and from an extended resource,
    next to a NAD with a resourceName: no device for the NAD, and no error."""
    node.put_nad("vf-a")
    gpu = device("gpu0", attrs={"gpu.example.com/model": {"string": "a100"}})
    node.put(resource_slice("gpus", [gpu, device("gpu1")], driver=GPU_DRIVER, pool="gpus"))
    node.put(resource_claim("default", "dra6-gpu", [("gpu", GPU_DRIVER, "gpus", "gpu0")]))
    node.put(
        resource_claim(
            "default", "dra6-ext", [("container-0-request-0", GPU_DRIVER, "gpus", "gpu1")]
        )
    )
    mappings = [("app", "example.com/gpu", "container-0-request-0")]
    p = node.put_pod("dra6", "vf-a", generated={"gpu": "dra6-gpu"}, extended=("dra6-ext", mappings))

    node.run("ADD", p).check_ok()

    assert [c.get("deviceID") for c in calls(node, "ADD")] == [None]
    node.run("DEL", p).check_ok()


def test_kubelet_and_dra_devices_of_one_resource_both_count(node: DraNode) -> None:
    """Go's k8sclient DRA case 7: a device-plugin ID and a DRA ID under one resourceName."""
    node.put_nad("vf-a")
    node.put_nad("vf-b")
    p = node.put_pod("dra7", "vf-a, vf-b", generated={"vf": "dra7-vf"})
    entry = {
        "PodUID": p.uid,
        "ContainerName": "app",
        "ResourceName": SRIOV,
        "DeviceIDs": {"0": ["0000:01:00.4"]},
        "AllocResp": "",
    }
    data = {"Data": {"PodDeviceEntries": [entry], "RegisteredDevices": {}}, "Checksum": 1}
    (node.kubelet_dir / "kubelet_internal_checkpoint").write_text(json.dumps(data))
    node.put(vf_slice(device("vf0", "0000:02:00.4", SRIOV)))
    node.put(resource_claim("default", "dra7-vf", [("vf", DRIVER, POOL, "vf0")]))

    node.run("ADD", p).check_ok()

    assert [c["deviceID"] for c in calls(node, "ADD")] == ["0000:01:00.4", "0000:02:00.4"]
    node.run("DEL", p).check_ok()


def test_missing_claim_fails_the_add_naming_it(node: DraNode) -> None:
    node.put_nad("vf-a")
    p = node.put_pod("dra8", "vf-a", generated={"vf": "dra8-gone"})

    err = node.run("ADD", p).error()

    assert 'resourceclaims.resource.k8s.io "dra8-gone" not found' in err["msg"], err
    assert "failed to get resourceMap from DRA client" in err["msg"]
    assert calls(node, "ADD") == [] and node.cluster.link_names() == {"lo"}


def test_api_unreachable_for_the_claim_is_code_11(node: DraNode) -> None:
    node.put_nad("vf-a")
    node.put(resource_claim("default", "dra9-vf", [("vf", DRIVER, POOL, "vf0")]))
    p = node.put_pod("dra9", "vf-a", generated={"vf": "dra9-vf"})

    def fail_claims(req: Any) -> None:
        if "resourceclaims" in req.path:
            node.cluster.api.fail_next(1, 503)

    node.cluster.api.on_request = fail_claims
    err = node.run("ADD", p).error()

    assert err["code"] == 11, err
    assert "resourceclaim default/dra9-vf" in err["msg"], err
    assert node.cluster.link_names() == {"lo"}


def test_gap6_unallocated_claim_is_code_11_naming_it(node: DraNode) -> None:
    node.put_nad("vf-a")
    node.put(resource_claim("default", "dra15-vf", None))
    p = node.put_pod("dra15", "vf-a", generated={"vf": "dra15-vf"})

    err = node.run("ADD", p).error()

    assert err["code"] == 11, err
    assert "claim dra15-vf has no device allocation" in err["msg"], err
    node.run("DEL", p).check_ok()  # and the runtime's DEL after it succeeds


def test_malformed_allocation_is_code_7(node: DraNode) -> None:
    node.put_nad("vf-a")
    claim = resource_claim("default", "dra10-vf", [("vf", DRIVER, POOL, "vf0")])
    del claim["status"]["allocation"]["devices"]["results"][0]["pool"]
    node.put(claim)
    p = node.put_pod("dra10", "vf-a", generated={"vf": "dra10-vf"})

    err = node.run("ADD", p).error()

    assert err["code"] == 7, err
    assert "claim dra10-vf" in err["msg"] and "results[0].pool" in err["msg"], err


def test_del_without_the_delegate_cache_needs_no_dra(node: DraNode) -> None:
    """The claim is gone by DEL (its pod is being deleted): libcni's cache still holds the
    config with the deviceID the ADD injected."""
    node.put_nad("vf-a")
    node.put(vf_slice(device("vf0", VF1, SRIOV)))
    node.put(resource_claim("default", "dra11-vf", [("vf", DRIVER, POOL, "vf0")]))
    p = node.put_pod("dra11", "vf-a", generated={"vf": "dra11-vf"})
    node.run("ADD", p).check_ok()
    (node.cluster.cni_dir / p.container_id).unlink()
    node.cluster.api.delete_object("resourceclaims", "default", "dra11-vf")
    node.cluster.api.clear_log()

    node.run("DEL", p).check_ok()

    assert [c["deviceID"] for c in calls(node, "DEL")] == [VF1]
    assert node.dra_requests() == []
    assert node.cluster.link_names() == {"lo"} and node.cluster.cache_files() == []


def test_extended_resource_backed_by_dra_gives_the_mappings_devices(node: DraNode) -> None:
    """Go's cases 7/8 through the plugin: the extended-resource claim's requests, keyed by
    the mapping's resource name."""
    node.put_nad("vf-a")
    node.put_nad("vf-b")
    node.put(vf_slice(device("vf0", VF2, SRIOV), device("vf1", VF1, SRIOV)))
    results = [
        ("container-0-request-0", DRIVER, POOL, "vf0"),
        ("container-1-request-0", DRIVER, POOL, "vf1"),
    ]
    node.put(resource_claim("default", "dra12-extended-resources-x", results))
    mappings = [("app", SRIOV, "container-0-request-0"), ("side", SRIOV, "container-1-request-0")]
    p = node.put_pod("dra12", "vf-a, vf-b", extended=("dra12-extended-resources-x", mappings))

    node.run("ADD", p).check_ok()

    assert [c["deviceID"] for c in calls(node, "ADD")] == [VF1, VF2]
    node.run("DEL", p).check_ok()


def test_kubelet_dynamic_resources_and_claims_together(node: DraNode) -> None:
    """Go v4.3.0's path (PodResources ``dynamic_resources``, keyed by the claim's name) and
    master's (keyed by the device's resourceName) in one map."""
    node.put_nad("by-claim", resource="dra13-vf")
    node.put_nad("by-resource")
    node.put(vf_slice(device("vf0", VF2, SRIOV)))
    node.put(resource_claim("default", "dra13-vf", [("vf", DRIVER, POOL, "vf0")]))
    p = node.put_pod("dra13", "by-claim, by-resource", generated={"vf": "dra13-vf"})
    dyn = Dynamic("dra13-vf", [f"sriov.example.com/vf={VF3}"])
    with PodResourcesServer(node.kubelet_dir / "kubelet.sock") as kubelet:
        kubelet.pods = [pod("default", "dra13", Container("app", dynamic=[dyn]))]

        node.run("ADD", p).check_ok()

        assert kubelet.calls == 1
    assert [c["deviceID"] for c in calls(node, "ADD")] == [VF3, VF2]
    node.run("DEL", p).check_ok()


def test_gap8_default_network_and_selection_share_one_map(node: DraNode) -> None:
    """Go rebuilds the map for the default-network annotation (nil map) and so can give two
    NADs one device; here one map serves every attachment of the ADD."""
    node.put_nad("vf-a")
    node.put_nad("vf-b")
    node.put(vf_slice(device("vf0", VF1, SRIOV), device("vf1", VF2, SRIOV)))
    two = [("vf", DRIVER, POOL, "vf0"), ("vf", DRIVER, POOL, "vf1")]
    node.put(resource_claim("default", "dra14-vf", two))
    p = node.put_pod("dra14", "vf-b", generated={"vf": "dra14-vf"})
    pod_obj = node.cluster.api.get_object("pods", "default", "dra14")
    assert pod_obj is not None
    pod_obj["metadata"]["annotations"]["v1.multus-cni.io/default-network"] = "default/vf-a"
    node.put(pod_obj)

    node.run("ADD", p).check_ok()

    assert [c["deviceID"] for c in calls(node, "ADD")] == [VF1, VF2]
    assert [r[0] for r in node.dra_requests()] == ["GET", "GET"]  # one claim GET, one LIST
    node.run("DEL", p).check_ok()
