"""The daemon's ResourceSlice cache (``daemon.slices``) and pod claims over real HTTP against
the stand-in API server: this node's and node-independent slices, kept by list+watch; claims
by one GET per ADD; the pod cache carries the pod's claims."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.integration.daemon.test_watch_cache import (
    NODE,
    NS,
    api,
    kubeconfig,
    live,
    loop,
    start,
    until,
)
from tests.support import dra_objects as dra
from tests.support.apiserver import StandInApiServer

from pymultus.daemon.cache import WatchCache
from pymultus.daemon.slices import CachedDra
from pymultus.k8s.client import KubeApi
from pymultus.k8s.dra import PodClaims, add_dra_devices
from pymultus.k8s.objects import Pod
from pymultus.k8s.refs import PodRef

__all__ = ["api", "kubeconfig", "live", "loop", "start"]


@pytest.fixture
def cache(start: Any, live: KubeApi) -> Iterator[WatchCache]:
    c: WatchCache = start(live)
    until(lambda: c.slices.synced)
    yield c


def ids(cache: WatchCache) -> set[str]:
    return {d.device_id for s in cache.slices.slices(dra.DRIVER) for d in s.devices.values()}


def test_node_and_node_independent_slices_only(
    api: StandInApiServer, cache: WatchCache, live: KubeApi
) -> None:
    api.put_object(dra.resource_slice("mine", [dra.device("vf0", "a", dra.SRIOV)], node=NODE))
    api.put_object(dra.resource_slice("theirs", [dra.device("vf0", "b", dra.SRIOV)], node="node-2"))
    api.put_object(
        dra.resource_slice("fabric", [dra.device("n0", "c", dra.SRIOV)], pool="f", all_nodes=True)
    )
    until(lambda: ids(cache) == {"a", "c"})
    api.delete_object("resourceslices", "", "fabric")
    until(lambda: ids(cache) == {"a"})
    assert cache.stats()["resourceslices"] == {
        "slices-node": {"count": 1, "synced": True},
        "slices-shared": {"count": 0, "synced": True},
    }


def test_cached_pod_claims_and_devices_without_a_slice_list(
    api: StandInApiServer, cache: WatchCache, live: KubeApi
) -> None:
    api.put_object(
        dra.resource_slice("mine", [dra.device("vf0", "0000:03:00.1", dra.SRIOV)], node=NODE)
    )
    api.put_object(dra.resource_claim(NS, "p-vf", [("vf", dra.DRIVER, dra.POOL, "vf0")]))
    api.put_object(
        dra.pod_with_claims(NS, "p", generated={"vf": "p-vf"}, direct={"d": "p-vf"}, node=NODE)
    )
    until(lambda: len(ids(cache)) == 1)
    pod = cache.get_pod(PodRef(NS, "p"), for_add=True)
    assert pod is not None and pod.claims == PodClaims(("p-vf",))
    api.clear_log()

    devices: dict[str, list[str]] = {}
    add_dra_devices(pod, CachedDra(live, cache=cache.slices), devices)

    assert devices == {dra.SRIOV: ["0000:03:00.1"]}
    assert [r.path for r in api.requests()] == [
        f"/apis/resource.k8s.io/v1/namespaces/{NS}/resourceclaims/p-vf"
    ]


def test_a_device_missing_from_the_cache_is_looked_up_once_live(
    api: StandInApiServer, cache: WatchCache, live: KubeApi, loop: Any
) -> None:
    """A slice the watch has not brought yet (here: the cache is stopped) is found by one
    LIST of the driver's slices, the node's own included."""
    loop.run(cache.stop())
    api.put_object(
        dra.resource_slice("late", [dra.device("vf0", "0000:03:00.7", dra.SRIOV)], node=NODE)
    )
    api.put_object(dra.resource_claim(NS, "q-vf", [("vf", dra.DRIVER, dra.POOL, "vf0")]))
    pod = Pod.from_dict(dra.pod_with_claims(NS, "q", generated={"vf": "q-vf"}, node=NODE))
    api.clear_log()

    devices: dict[str, list[str]] = {}
    add_dra_devices(pod, CachedDra(live, cache=cache.slices), devices)

    assert devices == {dra.SRIOV: ["0000:03:00.7"]}
    lists = [r.query.get("fieldSelector") for r in api.requests("GET", "/resourceslices")]
    assert lists == [f"spec.driver={dra.DRIVER}"]


def test_a_cluster_without_dra_keeps_the_daemon_ready_and_quiet(
    api: StandInApiServer, start: Any, live: KubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    """Kubernetes before 1.34 serves no ``resource.k8s.io/v1``: the slice reflectors retry
    without warnings, and the pod and NAD cache (readiness) does not wait for them."""

    def not_served(req: Any) -> None:
        if "/resourceslices" in req.path:
            api.fail_next(1, 404)

    api.on_request = not_served
    caplog.set_level("DEBUG", logger="pymultus.daemon.watch")

    c: WatchCache = start(live)  # waits for the pods' and NADs' first lists

    until(lambda: len(api.requests("GET", "/resourceslices")) >= 4)
    assert c.synced and not c.slices.synced
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "slices" in r.message]
    assert warnings == []
    assert any("is not served" in r.message for r in caplog.records)
