"""``resource.k8s.io/v1`` objects for DRA tests, shaped as a DRA driver and the scheduler
write them: ResourceSlices (per node, ``nodeSelector`` or ``allNodes``), allocated
ResourceClaims, and pods whose ``spec.resourceClaims`` / ``status.resourceClaimStatuses``
name them::

    api.put_object(resource_slice("s1", [device("vf0", "0000:03:00.1", SRIOV)]))
    api.put_object(resource_claim("default", "pod-vf-x1", [("vf", DRIVER, POOL, "vf0")]))
    api.put_object(pod_with_claims("default", "p", generated={"vf": "pod-vf-x1"}))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = dict[str, Any]

DRIVER = "sriov.example.com"
GPU_DRIVER = "gpu.example.com"
NODE = "node-a"
POOL = "node-a-pool"
SRIOV = "example.com/sriov"
DEVICE_ID = "k8s.cni.cncf.io/deviceID"
RESOURCE_NAME = "k8s.cni.cncf.io/resourceName"


def device(
    name: str,
    device_id: str | None = None,
    resource: str | None = None,
    *,
    attrs: Obj | None = None,
) -> Obj:
    """A slice device; ``device_id``/``resource`` become the two network string attributes,
    ``attrs`` are attribute values as the API holds them (``{"int": 5}``)."""
    attributes: Obj = dict(attrs or {})
    if device_id is not None:
        attributes[DEVICE_ID] = {"string": device_id}
    if resource is not None:
        attributes[RESOURCE_NAME] = {"string": resource}
    return {"name": name, "attributes": attributes}


def resource_slice(
    name: str,
    devices: Sequence[Obj],
    *,
    driver: str = DRIVER,
    pool: str = POOL,
    node: str | None = NODE,
    all_nodes: bool = False,
    node_selector: Obj | None = None,
    generation: int = 1,
    slice_count: int = 1,
) -> Obj:
    spec: Obj = {
        "driver": driver,
        "pool": {"name": pool, "generation": generation, "resourceSliceCount": slice_count},
        "devices": list(devices),
    }
    if all_nodes:
        spec["allNodes"] = True
    elif node_selector is not None:
        spec["nodeSelector"] = node_selector
    elif node is not None:
        spec["nodeName"] = node
    return {"kind": "ResourceSlice", "metadata": {"name": name}, "spec": spec}


def resource_claim(
    namespace: str, name: str, results: Sequence[tuple[str, str, str, str]] | None
) -> Obj:
    """A claim allocated to ``results`` (request, driver, pool, device); None: unallocated."""
    obj: Obj = {
        "kind": "ResourceClaim",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"devices": {"requests": [{"name": r[0]} for r in results or ()]}},
    }
    if results is not None:
        allocated = [{"request": r, "driver": d, "pool": p, "device": v} for r, d, p, v in results]
        obj["status"] = {"allocation": {"devices": {"results": allocated}}}
    return obj


def pod_with_claims(
    namespace: str,
    name: str,
    *,
    uid: str = "",
    annotations: Mapping[str, str] | None = None,
    generated: Mapping[str, str | None] | None = None,
    direct: Mapping[str, str] | None = None,
    extended: tuple[str, Sequence[tuple[str, str, str]]] | None = None,
    node: str = NODE,
) -> Obj:
    """A pod with claims from templates (``generated``: ref name -> claim name, as the
    controller records in status; None: not created yet), claims it names itself
    (``direct``: ref name -> claim name), and an extended-resource claim
    (claim name, [(container, resourceName, request)])."""
    refs: list[Obj] = [
        {"name": ref, "resourceClaimTemplateName": f"{ref}-template"} for ref in generated or {}
    ]
    refs += [{"name": ref, "resourceClaimName": claim} for ref, claim in (direct or {}).items()]
    spec: Obj = {"nodeName": node, "containers": [{"name": "app", "image": "pause"}]}
    if refs:
        spec["resourceClaims"] = refs
    status: Obj = {"phase": "Pending"}
    if generated:
        status["resourceClaimStatuses"] = [
            {"name": ref, "resourceClaimName": claim} if claim else {"name": ref}
            for ref, claim in generated.items()
        ]
    if extended is not None:
        claim, mappings = extended
        status["extendedResourceClaimStatus"] = {
            "resourceClaimName": claim,
            "requestMappings": [
                {"containerName": c, "resourceName": r, "requestName": q} for c, r, q in mappings
            ],
        }
    meta: Obj = {"namespace": namespace, "name": name}
    if uid:
        meta["uid"] = uid
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"kind": "Pod", "metadata": meta, "spec": spec, "status": status}
