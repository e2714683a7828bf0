"""The stand-in API server's ``resource.k8s.io/v1`` kinds, as the real server serves them:
namespaced ResourceClaims, cluster-scoped ResourceSlices (no namespace in the path or the
object, field selectors ``spec.nodeName``/``spec.driver``), list, watch and get; and a pod's
``status.resourceClaimStatuses`` kept across a ``pods/status`` patch."""

from __future__ import annotations

from tests.support import dra_objects as dra
from tests.support.apiserver import StandInApiServer
from tests.unit.k8s.test_apiserver_standin import Watch, api, call, watches

__all__ = ["api", "watches"]

DRA = "/apis/resource.k8s.io/v1"
SLICES = f"{DRA}/resourceslices"


def names(body: dict[str, object]) -> list[str]:
    return [i["metadata"]["name"] for i in body["items"]]  # type: ignore[attr-defined, index]


def test_claims_are_namespaced(api: StandInApiServer) -> None:
    api.put_object(dra.resource_claim("ns1", "c1", [("vf", dra.DRIVER, dra.POOL, "vf0")]))
    status, claim = call(api, "GET", f"{DRA}/namespaces/ns1/resourceclaims/c1")
    assert status == 200 and claim["kind"] == "ResourceClaim"
    assert claim["apiVersion"] == "resource.k8s.io/v1"
    assert claim["status"]["allocation"]["devices"]["results"][0]["device"] == "vf0"
    status, missing = call(api, "GET", f"{DRA}/namespaces/ns2/resourceclaims/c1")
    assert status == 404
    assert missing["message"] == 'resourceclaims.resource.k8s.io "c1" not found'
    _, listed = call(api, "GET", f"{DRA}/namespaces/ns1/resourceclaims")
    assert names(listed) == ["c1"] and "kind" not in listed["items"][0]


def test_slices_are_cluster_scoped_and_selectable(api: StandInApiServer) -> None:
    api.put_object(dra.resource_slice("a", [dra.device("d", "1", dra.SRIOV)], node="node-a"))
    api.put_object(dra.resource_slice("b", [dra.device("d", "2", dra.SRIOV)], node="node-b"))
    api.put_object(dra.resource_slice("f", [dra.device("d", "3", dra.SRIOV)], all_nodes=True))
    api.put_object(
        dra.resource_slice("g", [dra.device("d", "4")], driver="gpu.example.com", node="node-a")
    )
    status, one = call(api, "GET", f"{SLICES}/a")
    assert status == 200 and "namespace" not in one["metadata"]
    assert call(api, "GET", f"{DRA}/namespaces/default/resourceslices/a")[0] == 404
    sel = f"{SLICES}?fieldSelector=spec.nodeName%3Dnode-a%2Cspec.driver%3D{dra.DRIVER}"
    assert names(call(api, "GET", sel)[1]) == ["a"]
    assert names(call(api, "GET", f"{SLICES}?fieldSelector=spec.nodeName%3D")[1]) == ["f"]
    assert names(call(api, "GET", f"{SLICES}?fieldSelector=spec.driver%3D{dra.DRIVER}")[1]) == [
        "a",
        "b",
        "f",
    ]
    assert call(api, "GET", f"{SLICES}?fieldSelector=spec.pool.name%3Dx")[0] == 400


def test_slice_watch_with_a_node_selector(api: StandInApiServer, watches: list[Watch]) -> None:
    w = Watch(api, f"{SLICES}?watch=1&fieldSelector=spec.nodeName%3Dnode-a")
    watches.append(w)
    api.put_object(dra.resource_slice("b", [], node="node-b"))
    api.put_object(dra.resource_slice("a", [], node="node-a"))
    api.delete_object("resourceslices", "", "a")
    events = w.wait_for(2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("DELETED", "a"),
    ]


def test_claim_statuses_survive_a_status_patch(api: StandInApiServer) -> None:
    api.put_object(dra.pod_with_claims("ns1", "p", generated={"vf": "p-vf-1"}))
    patch = {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": "[]"}}}
    req = "/api/v1/namespaces/ns1/pods/p/status"
    status, _ = call(api, "PATCH", req, patch, content_type="application/merge-patch+json")
    assert status == 200
    pod = api.get_object("pods", "ns1", "p")
    assert pod is not None
    assert pod["status"]["resourceClaimStatuses"] == [{"name": "vf", "resourceClaimName": "p-vf-1"}]
