"""DRA devices from ResourceClaims and ResourceSlices (``k8s.dra``) against an in-memory API.

The cases of Go Multus's ``pkg/draclient/draclient_test.go`` (numbered as in
``dra.md`` §5) and the gaps of §6 that pymultus fixes; the wire-level requests are
covered by the integration tests against the stand-in API server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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

from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError
from pymultus.k8s.dra import IndexedSlice, PodClaims, add_dra_devices, attribute_text
from pymultus.k8s.objects import Pod
from pymultus.k8s.resourcemap import ResourceMap

VF1, VF2 = "0000:03:00.1", "0000:03:00.2"


@dataclass
class FakeDra:
    """Claims by (namespace, name) and slices; selects slices as the API's field selectors."""

    claims: dict[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    slices_: list[Mapping[str, Any]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    lists: list[tuple[str, bool]] = field(default_factory=list)

    def add(self, obj: Mapping[str, Any]) -> None:
        if obj["kind"] == "ResourceSlice":
            self.slices_.append(obj)
        else:
            self.claims[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        self.gets.append(f"{namespace}/{name}")
        return self.claims.get((namespace, name))

    def slices(self, node_name: str, driver: str, *, local_only: bool) -> list[IndexedSlice]:
        self.lists.append((driver, local_only))
        found = [IndexedSlice.from_dict(s) for s in self.slices_]
        return [
            s for s in found if s.driver == driver and (not local_only or s.node_name == node_name)
        ]


def build(pod: Mapping[str, Any], api: FakeDra, into: dict[str, list[str]] | None = None) -> Any:
    devices: dict[str, list[str]] = into if into is not None else {}
    add_dra_devices(Pod.from_dict(pod), api, devices)
    return ResourceMap(devices).as_dict()


def one_claim_pod(claim: str = "p-vf-abc", ns: str = "default") -> dict[str, Any]:
    return pod_with_claims(ns, "p", generated={"vf": claim})


@pytest.fixture
def api() -> FakeDra:
    return FakeDra()


def test_2_no_claims_no_requests(api: FakeDra) -> None:
    assert build(pod_with_claims("default", "p"), api) == {}
    assert api.gets == [] and api.lists == []


def test_3_one_claim_one_device(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV)]))
    api.add(resource_claim("default", "p-vf-abc", [("vf", DRIVER, POOL, "vf0")]))
    assert build(one_claim_pod(), api) == {SRIOV: [VF1]}
    assert api.gets == ["default/p-vf-abc"] and api.lists == [(DRIVER, True)]


def test_4_other_nodes_slices_do_not_count(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV)]))
    api.add(resource_slice("s2", [device("vf0", VF2, SRIOV)], node="node-b", pool="b-pool"))
    api.add(resource_claim("default", "p-vf-abc", [("vf", DRIVER, POOL, "vf0")]))
    assert build(one_claim_pod(), api) == {SRIOV: [VF1]}


def test_5_and_6_several_results(api: FakeDra) -> None:
    other = "example.com/other"
    devs = [device("vf0", VF2, SRIOV), device("vf1", VF1, SRIOV), device("x", "x0", other)]
    api.add(resource_slice("s1", devs))
    results = [("vf", DRIVER, POOL, "vf0"), ("vf", DRIVER, POOL, "vf1"), ("o", DRIVER, POOL, "x")]
    api.add(resource_claim("default", "p-vf-abc", results))
    assert build(one_claim_pod(), api) == {SRIOV: [VF1, VF2], other: ["x0"]}
    assert api.lists == [(DRIVER, True)]  # one list per driver


def test_10_missing_claim_is_an_error_naming_it(api: FakeDra) -> None:
    with pytest.raises(CniError, match=r'resourceclaims.resource.k8s.io "p-vf-abc" not found'):
        build(one_claim_pod(), api)


@pytest.mark.parametrize(
    "dev",
    [
        pytest.param(None, id="11-no-slices"),
        pytest.param(device("vf0", None, SRIOV), id="12-no-deviceID"),
        pytest.param(device("vf0", VF1, None), id="13-no-resourceName"),
        pytest.param(device("other", VF1, SRIOV), id="14-unknown-device"),
    ],
)
def test_11_to_14_unresolvable_devices_are_skipped(api: FakeDra, dev: Any) -> None:
    if dev is not None:
        api.add(resource_slice("s1", [dev]))
    api.add(resource_claim("default", "p-vf-abc", [("vf", DRIVER, POOL, "vf0")]))
    kubelet = {SRIOV: ["0000:09:00.0"]}
    assert build(one_claim_pod(), api, kubelet) == {SRIOV: ["0000:09:00.0"]}  # 15


def test_16_a_gpu_claim_next_to_a_vf_claim(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV)]))
    gpu = device("gpu0", attrs={"gpu.example.com/model": {"string": "x"}})
    api.add(resource_slice("g1", [gpu], driver=GPU_DRIVER, pool="gpus"))
    api.add(resource_claim("default", "p-vf", [("vf", DRIVER, POOL, "vf0")]))
    api.add(resource_claim("default", "p-gpu", [("gpu", GPU_DRIVER, "gpus", "gpu0")]))
    pod = pod_with_claims("default", "p", generated={"vf": "p-vf", "gpu": "p-gpu"})
    assert build(pod, api) == {SRIOV: [VF1]}


def test_18_two_claims_one_driver_list_once(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV), device("vf1", VF2, SRIOV)]))
    api.add(resource_claim("default", "c1", [("vf", DRIVER, POOL, "vf0")]))
    api.add(resource_claim("default", "c2", [("vf", DRIVER, POOL, "vf1")]))
    pod = pod_with_claims("default", "p", generated={"a": "c1", "b": "c2"})
    assert build(pod, api) == {SRIOV: [VF1, VF2]}
    assert api.lists == [(DRIVER, True)] and api.gets == ["default/c1", "default/c2"]


def test_19_same_claim_name_in_two_namespaces(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV), device("vf1", VF2, SRIOV)]))
    api.add(resource_claim("ns1", "c", [("vf", DRIVER, POOL, "vf0")]))
    api.add(resource_claim("ns2", "c", [("vf", DRIVER, POOL, "vf1")]))
    assert build(one_claim_pod("c", "ns1"), api) == {SRIOV: [VF1]}
    assert build(one_claim_pod("c", "ns2"), api) == {SRIOV: [VF2]}


def test_21_kubelet_and_dra_ids_sort_together(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", "0000:01:00.0", SRIOV)]))
    api.add(resource_claim("default", "p-vf-abc", [("vf", DRIVER, POOL, "vf0")]))
    kubelet = {SRIOV: ["0000:02:00.0", "0000:00:00.0"]}
    assert build(one_claim_pod(), api, kubelet) == {
        SRIOV: ["0000:00:00.0", "0000:01:00.0", "0000:02:00.0"]
    }


def test_22_pool_split_over_two_slices(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV)], slice_count=2))
    api.add(resource_slice("s2", [device("vf1", VF2, SRIOV)], slice_count=2))
    api.add(resource_claim("default", "p-vf-abc", [("vf", DRIVER, POOL, "vf1")]))
    assert build(one_claim_pod(), api) == {SRIOV: [VF2]}


def test_7_8_extended_mappings_key_by_the_mapping(api: FakeDra) -> None:
    devs = [device("vf0", VF1, SRIOV), device("vf1", VF2, SRIOV), device("vf2", "v3", SRIOV)]
    api.add(resource_slice("s1", devs))
    results = [
        ("r1", DRIVER, POOL, "vf0"),
        ("r1", DRIVER, POOL, "vf1"),
        ("r2", DRIVER, POOL, "vf2"),
    ]
    api.add(resource_claim("default", "p-ext", results))
    pod = pod_with_claims(
        "default", "p", extended=("p-ext", [("app", SRIOV, "r1"), ("side", SRIOV, "r2")])
    )
    assert build(pod, api) == {SRIOV: [VF1, VF2, "v3"]}


def test_9_gap2_extended_non_network_device_is_skipped_not_an_error(api: FakeDra) -> None:
    gpu = device("gpu0", attrs={"gpu.example.com/model": {"string": "x"}})
    api.add(resource_slice("g1", [gpu, device("other", "o1", "example.com/else")], pool="g"))
    results = [("g", DRIVER, "g", "gpu0"), ("o", DRIVER, "g", "other")]
    api.add(resource_claim("default", "p-ext", results))
    mappings = [("app", "example.com/gpu", "g"), ("app", SRIOV, "o"), ("app", SRIOV, "gone")]
    pod = pod_with_claims("default", "p", extended=("p-ext", mappings))
    assert build(pod, api) == {}


def test_23_regular_plus_extended(api: FakeDra) -> None:
    other = "example.com/other"
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV), device("x", "x0", other)]))
    api.add(resource_slice("e1", [device("e0", "e0", "example.com/ext")], pool="e"))
    api.add(
        resource_claim("default", "c1", [("vf", DRIVER, POOL, "vf0"), ("x", DRIVER, POOL, "x")])
    )
    api.add(resource_claim("default", "p-ext", [("r", DRIVER, "e", "e0")]))
    pod = pod_with_claims(
        "default",
        "p",
        generated={"vf": "c1"},
        extended=("p-ext", [("app", "example.com/ext", "r")]),
    )
    assert build(pod, api) == {SRIOV: [VF1], other: ["x0"], "example.com/ext": ["e0"]}


# ---------------------------------------------------------------- the gaps


def test_gap1_claims_named_directly_in_the_spec(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV), device("vf1", VF2, SRIOV)]))
    api.add(resource_claim("default", "shared-vf", [("vf", DRIVER, POOL, "vf0")]))
    api.add(resource_claim("default", "p-gen", [("vf", DRIVER, POOL, "vf1")]))
    pod = pod_with_claims(
        "default", "p", generated={"g": "p-gen", "pending": None}, direct={"d": "shared-vf"}
    )
    claims = Pod.from_dict(pod).claims
    assert claims == PodClaims(("p-gen", "shared-vf"))
    assert build(pod, api) == {SRIOV: [VF1, VF2]}


@pytest.mark.parametrize(
    "where",
    [{"all_nodes": True}, {"node_selector": {"nodeSelectorTerms": [{"matchFields": []}]}}],
    ids=["allNodes", "nodeSelector"],
)
def test_gap3_node_independent_slices(api: FakeDra, where: dict[str, Any]) -> None:
    api.add(resource_slice("net", [device("vf0", VF1, SRIOV)], pool="fabric", **where))
    api.add(resource_slice("local", [device("vf9", VF2, SRIOV)]))
    api.add(resource_claim("default", "p-vf-abc", [("vf", DRIVER, "fabric", "vf0")]))
    assert build(one_claim_pod(), api) == {SRIOV: [VF1]}
    assert api.lists == [(DRIVER, True), (DRIVER, False)]  # the second only when needed


def test_gap4_newest_pool_generation_and_shares(api: FakeDra) -> None:
    api.add(resource_slice("old", [device("vf0", "stale", SRIOV)], generation=1))
    api.add(resource_slice("new", [device("vf0", VF1, SRIOV)], generation=2))
    results = [("vf", DRIVER, POOL, "vf0"), ("vf", DRIVER, POOL, "vf0")]  # two shares
    api.add(resource_claim("default", "p-vf-abc", results))
    assert build(one_claim_pod(), api) == {SRIOV: [VF1]}


def test_gap5_int_and_version_attributes_are_text() -> None:
    assert attribute_text({"a": {"int": 7}}, "a") == "7"
    assert attribute_text({"a": {"version": "1.2.3"}}, "a") == "1.2.3"
    assert attribute_text({"a": {"bool": True}}, "a") == ""
    assert attribute_text({"a": {"int": True}}, "a") == ""
    assert attribute_text(None, "a") == ""


def test_unallocated_claim_is_try_again_later_naming_it(api: FakeDra) -> None:
    api.add(resource_claim("default", "p-vf-abc", None))
    with pytest.raises(TryAgainLaterError, match="claim p-vf-abc has no device allocation"):
        build(one_claim_pod(), api)


@pytest.mark.parametrize(
    ("results", "path"),
    [
        ("x", "status.allocation.devices.results"),
        (["x"], "status.allocation.devices.results[0]"),
        ([{"request": "r", "driver": DRIVER, "pool": POOL}], "results[0].device"),
        ([{"request": "r", "driver": 5, "pool": POOL, "device": "d"}], "results[0].driver"),
    ],
)
def test_malformed_allocation_is_code_7_naming_claim_and_field(
    api: FakeDra, results: Any, path: str
) -> None:
    claim = resource_claim("default", "p-vf-abc", [])
    claim["status"] = {"allocation": {"devices": {"results": results}}}
    api.add(claim)
    with pytest.raises(InvalidConfigError) as err:
        build(one_claim_pod(), api)
    assert err.value.code == 7 and "claim p-vf-abc" in err.value.msg
    assert path in err.value.msg and (err.value.field or "").endswith(path)


def test_slices_are_read_with_the_pods_node(api: FakeDra) -> None:
    api.add(resource_slice("s1", [device("vf0", VF1, SRIOV)], node="node-b"))
    api.add(resource_claim("default", "p-vf-abc", [("vf", DRIVER, POOL, "vf0")]))
    pod = pod_with_claims("default", "p", generated={"vf": "p-vf-abc"}, node="node-b")
    assert build(pod, api) == {SRIOV: [VF1]}
    assert Pod.from_dict(pod).node_name == "node-b" != NODE
