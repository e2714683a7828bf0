"""DRA devices in thick mode: the real daemon keeps this node's and the node-independent
ResourceSlices in a watch cache (no slice LIST per ADD), reads each claim with one GET per
ADD, and the recording plugin gets the deviceID (``dra.md``; issue #14)."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.support import dra_objects as dra
from tests.support.multus import NETWORKS, PodId
from tests.support.plugins import read_records
from tests.support.thick import ThickCluster

from pymultus.k8s.objects import RESOURCE_NAME_ANNOTATION

VF1, VF2, VF3 = "0000:03:00.1", "0000:03:00.2", "0000:03:00.3"


def put_vf_nad(thick: ThickCluster, name: str) -> None:
    conf = thick.recorder_nad(name, capabilities={"deviceID": True, "CNIDeviceInfoFile": True})
    meta = {
        "namespace": "default",
        "name": name,
        "annotations": {RESOURCE_NAME_ANNOTATION: dra.SRIOV},
    }
    nad = {"kind": "NetworkAttachmentDefinition", "metadata": meta}
    thick.api.put_object({**nad, "spec": {"config": json.dumps(conf)}})


def put_pod(thick: ThickCluster, name: str, networks: str, **claims: Any) -> PodId:
    uid = f"0000{name}-aaaa-bbbb-cccc-000000000000"
    pod = dra.pod_with_claims(
        "default", name, uid=uid, annotations={NETWORKS: networks}, node=thick.node, **claims
    )
    thick.api.put_object(pod)
    return PodId("default", name, uid, container_id=f"c0ffee{name}" * 2)


def device_ids(thick: ThickCluster, nad: str, command: str) -> list[str | None]:
    records = read_records(thick.record_file(nad))
    return [json.loads(r["stdin"]).get("deviceID") for r in records if r["command"] == command]


def slice_requests(thick: ThickCluster) -> list[tuple[str, str]]:
    return [
        (r.query.get("watch", "list"), r.query.get("fieldSelector", ""))
        for r in thick.api.requests("GET", "/resourceslices")
    ]


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_slices_come_from_the_watch_cache_and_claims_from_one_get(thick: ThickCluster) -> None:
    put_vf_nad(thick, "vf-a")
    put_vf_nad(thick, "vf-b")
    thick.api.put_object(
        dra.resource_slice("local", [dra.device("vf0", VF2, dra.SRIOV)], node=thick.node)
    )
    thick.api.put_object(
        dra.resource_slice("other", [dra.device("vf0", "x", dra.SRIOV)], node="pm-node-b")
    )
    results = [("vf", dra.DRIVER, dra.POOL, "vf0")]
    thick.api.put_object(dra.resource_claim("default", "p1-vf", results))
    p1 = put_pod(thick, "p1", "vf-a", generated={"vf": "p1-vf"})
    thick.start_daemon()
    # The reflectors list and watch the node's slices and the node-independent ones.
    wait_until(
        lambda: (
            {q for q in slice_requests(thick) if q[0] == "true"}
            >= {
                ("true", f"spec.nodeName={thick.node}"),
                ("true", "spec.nodeName="),
            }
        )
    )
    thick.api.clear_log()

    thick.shim("ADD", p1).check_ok()

    assert device_ids(thick, "vf-a", "ADD") == [VF2]
    claim_gets = [r.path for r in thick.api.requests("GET", "/resourceclaims")]
    assert claim_gets == ["/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/p1-vf"]
    assert [q for q in slice_requests(thick) if q[0] == "list"] == []  # no LIST per ADD

    # A network-attached pool published just now (allNodes): from the cache once its watch
    # event is in, else from one LIST of the driver's slices; two NADs of one resource get
    # its two devices in order.
    fabric = [dra.device("nic1", VF3, dra.SRIOV), dra.device("nic0", VF1, dra.SRIOV)]
    thick.api.put_object(dra.resource_slice("fabric", fabric, pool="fabric", all_nodes=True))
    two = [("vf", dra.DRIVER, "fabric", "nic0"), ("vf", dra.DRIVER, "fabric", "nic1")]
    thick.api.put_object(dra.resource_claim("default", "shared", two))
    p2 = put_pod(thick, "p2", "vf-a, vf-b", direct={"vf": "shared"})
    netns2 = thick.new_netns()

    thick.shim("ADD", p2, netns=netns2).check_ok()

    assert device_ids(thick, "vf-a", "ADD") == [VF2, VF1]
    assert device_ids(thick, "vf-b", "ADD") == [VF3]
    status = json.loads(
        thick.api.get_object("pods", "default", "p2")["metadata"]["annotations"][
            "k8s.v1.cni.cncf.io/network-status"
        ]
    )
    assert [s["name"] for s in status[1:]] == ["default/vf-a", "default/vf-b"]

    thick.api.stop()  # DEL never needs DRA
    try:
        thick.shim("DEL", p2, netns=netns2).check_ok()
        thick.shim("DEL", p1).check_ok()
    finally:
        thick.api.start()
    assert device_ids(thick, "vf-a", "DEL") == [VF1, VF2]
    assert device_ids(thick, "vf-b", "DEL") == [VF3]


def test_a_pod_without_claims_costs_no_dra_request(thick: ThickCluster) -> None:
    put_vf_nad(thick, "vf-a")
    p = put_pod(thick, "p3", "vf-a")
    # A node with a device-plugin checkpoint is not needed: no claims, no kubelet source ->
    # the ADD fails as Go's does, but without a single DRA request.
    thick.start_daemon()
    thick.api.clear_log()

    out = thick.shim("ADD", p)

    assert out.error()["code"] == 5  # neither kubelet source exists on this machine
    assert thick.api.requests(path="/resourceclaims") == []
    assert [q for q in slice_requests(thick) if q[0] == "list"] == []
