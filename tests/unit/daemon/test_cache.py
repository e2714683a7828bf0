"""The watch cache as the core's PodSource/NadSource: trimming and the lookup policy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from tests.unit.daemon.fakekube import FakeKube, LoopThread, loop_thread, obj

from pymultus.cni.errors import InvalidConfigError, TryAgainLaterError
from pymultus.core.deps import NadSource, PodSource
from pymultus.daemon.cache import (
    KEPT_POD_ANNOTATIONS,
    CachedNad,
    CachedPod,
    LookupPolicy,
    WatchCache,
    nad_view,
    pod_view,
    trimmed_pod,
)
from pymultus.daemon.watch import WatchTiming
from pymultus.k8s.objects import (
    CONFIG_SOURCE_ANNOTATION,
    NETWORKS_ANNOTATION,
    RESOURCE_NAME_ANNOTATION,
    Nad,
    Pod,
)
from pymultus.k8s.refs import PodRef

NODE = "node-a"
FAST = WatchTiming(backoff_initial=0.01, backoff_max=0.05)
LOOKUP = LookupPolicy(add_retry_interval=0.01, add_retry_timeout=0.3)

lt = pytest.fixture(loop_thread)


def full_pod(name: str, node: str = NODE, uid: str = "", **annotations: str) -> dict[str, Any]:
    """A pod as the API sends it, with the bulk a real one carries."""
    big = json.dumps({"spec": {"containers": [{"name": "c", "image": "x" * 2000}]}})
    container = {
        "name": "app",
        "image": "registry.example/app:1",
        "command": ["/bin/app", "--flag"],
        "env": [{"name": f"E{i}", "value": "v" * 50} for i in range(20)],
        "volumeMounts": [{"name": "v", "mountPath": "/data"}],
    }
    return obj(
        "ns",
        name,
        meta={
            "uid": uid or f"uid-{name}",
            "labels": {"app": "x"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": big,
                **annotations,
            },
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 5,
        },
        spec={"nodeName": node, "containers": [container], "volumes": [{"name": "v"}]},
        status={"phase": "Running", "podIP": "198.18.0.5", "conditions": [{"type": "Ready"}]},
    )


class FakeLiveApi:
    """KubeApi's get_pod/get_nad, counting calls."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.nads: dict[tuple[str, str], dict[str, Any]] = {}
        self.pod_gets: list[PodRef] = []
        self.nad_gets: list[tuple[str, str]] = []
        self.error: Exception | None = None

    def get_pod(self, ref: PodRef) -> dict[str, Any] | None:
        self.pod_gets.append(ref)
        if self.error is not None:
            raise self.error
        return self.pods.get((ref.namespace, ref.name))

    def get_nad(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.nad_gets.append((namespace, name))
        if self.error is not None:
            raise self.error
        return self.nads.get((namespace, name))


class Env:
    def __init__(self, lt: LoopThread) -> None:
        self.lt = lt
        self.kube = FakeKube()
        self.live = FakeLiveApi()
        self.cache = WatchCache(
            self.kube.client,
            node_name=NODE,
            live_api=self.live,  # type: ignore[arg-type]
            timing=FAST,
            lookup=LOOKUP,
        )

    def start(self) -> None:
        self.lt.run(self.cache.start())
        assert self.cache.wait_synced(5)

    def stop(self) -> None:
        self.lt.run(self.cache.stop())


@pytest.fixture
def env(lt: LoopThread) -> Iterator[Env]:
    e = Env(lt)
    yield e
    e.stop()


def test_satisfies_the_core_protocols(env: Env) -> None:
    pods: PodSource = env.cache
    nads: NadSource = env.cache
    assert pods is nads


def test_only_this_nodes_pods_are_listed_and_watched(env: Env) -> None:
    env.kube.put(CachedPod, full_pod("here"))
    env.kube.put(CachedPod, full_pod("elsewhere", node="node-b"))
    env.start()
    assert env.cache.pods.get(("ns", "here")) is not None
    assert env.cache.pods.get(("ns", "elsewhere")) is None
    pod_calls = [kw for _, res, kw in env.kube.calls if res == "CachedPod"]
    assert pod_calls and all(kw["fields"] == {"spec.nodeName": NODE} for kw in pod_calls)
    nad_calls = [kw for _, res, kw in env.kube.calls if res == "CachedNad"]
    assert nad_calls and all(kw["fields"] is None for kw in nad_calls)


def test_pods_are_trimmed_to_what_multus_reads() -> None:
    raw = full_pod("p", **{NETWORKS_ANNOTATION: "a,b", CONFIG_SOURCE_ANNOTATION: "api"})
    decoded = msgspec.json.decode(json.dumps(raw).encode(), type=CachedPod)
    key, pod = pod_view(decoded)
    assert key == ("ns", "p")
    assert pod == Pod(
        namespace="ns",
        name="p",
        uid="uid-p",
        annotations={NETWORKS_ANNOTATION: "a,b", CONFIG_SOURCE_ANNOTATION: "api"},
        node_name=NODE,
    )
    assert set(pod.annotations) <= KEPT_POD_ANNOTATIONS
    assert msgspec.structs.fields(CachedPod)  # of spec and status only what Multus reads
    assert {f.name for f in msgspec.structs.fields(type(decoded.spec))} == {
        "nodeName",
        "resourceClaims",
        "hostNetwork",  # hot-plug refuses those pods
    }
    assert {f.name for f in msgspec.structs.fields(type(decoded.status))} == {
        "resourceClaimStatuses",
        "extendedResourceClaimStatus",
    }


def test_live_pods_are_trimmed_the_same_way() -> None:
    pod = trimmed_pod(full_pod("p", **{NETWORKS_ANNOTATION: "a"}))
    assert dict(pod.annotations) == {NETWORKS_ANNOTATION: "a"}


def test_pods_without_kept_annotations_share_one_empty_mapping() -> None:
    a = pod_view(msgspec.convert(full_pod("a"), CachedPod))[1]
    b = pod_view(msgspec.convert(obj("ns", "b"), CachedPod))[1]
    assert a.annotations == {} and a.annotations is b.annotations


def test_nad_view_keeps_the_config_bytes_and_resource_name() -> None:
    config = '{"cniVersion": "1.0.0",  "type":"bridge"}'
    raw = obj("ns", "n", meta={"annotations": {RESOURCE_NAME_ANNOTATION: "intel.com/sriov"}})
    raw["spec"] = {"config": config}
    assert nad_view(msgspec.convert(raw, CachedNad)) == (
        ("ns", "n"),
        Nad("ns", "n", config, "intel.com/sriov"),
    )
    assert nad_view(msgspec.convert(obj("ns", "e"), CachedNad))[1].config == ""


def test_empty_node_name_is_refused() -> None:
    with pytest.raises(InvalidConfigError) as err:
        WatchCache(FakeKube().client, node_name="")
    assert err.value.field == "MULTUS_NODE_NAME"


# --- pod lookup policy -------------------------------------------------------------------


def test_cached_pod_needs_no_api_call(env: Env) -> None:
    env.kube.put(CachedPod, full_pod("p", **{NETWORKS_ANNOTATION: "x"}))
    env.start()
    pod = env.cache.get_pod(PodRef("ns", "p", "uid-p"), for_add=True)
    assert pod is not None and pod.annotations[NETWORKS_ANNOTATION] == "x"
    assert env.live.pod_gets == []


def test_add_waits_for_a_pod_the_watch_brings_a_moment_later(env: Env) -> None:
    env.start()
    timer = threading.Timer(0.1, env.lt.call, (env.kube.put, CachedPod, full_pod("late")))
    timer.start()
    try:
        pod = env.cache.get_pod(PodRef("ns", "late"), for_add=True)
    finally:
        timer.join()
    assert pod is not None and pod.name == "late"
    assert env.live.pod_gets == []


def test_add_ends_with_one_live_get(env: Env) -> None:
    env.start()
    env.live.pods[("ns", "p")] = full_pod("p", **{NETWORKS_ANNOTATION: "y", "other": "z"})
    started = time.monotonic()
    pod = env.cache.get_pod(PodRef("ns", "p"), for_add=True)
    assert time.monotonic() - started >= LOOKUP.add_retry_timeout
    assert pod is not None and dict(pod.annotations) == {NETWORKS_ANNOTATION: "y"}
    assert env.live.pod_gets == [PodRef("ns", "p")]
    assert env.cache.stats()["pods"]["live_gets"] == 1


def test_add_of_a_missing_pod_is_none_after_the_live_get(env: Env) -> None:
    env.start()
    assert env.cache.get_pod(PodRef("ns", "nope"), for_add=True) is None
    assert len(env.live.pod_gets) == 1


def test_add_with_another_uid_in_the_cache_asks_the_api(env: Env) -> None:
    env.kube.put(CachedPod, full_pod("p", uid="old-uid"))
    env.live.pods[("ns", "p")] = full_pod("p", uid="new-uid")
    env.start()
    pod = env.cache.get_pod(PodRef("ns", "p", "new-uid"), for_add=True)
    assert pod is not None and pod.uid == "new-uid"
    assert len(env.live.pod_gets) == 1


def test_static_pods_are_taken_from_the_cache_whatever_their_uid(env: Env) -> None:
    env.kube.put(CachedPod, full_pod("s", uid="mirror", **{CONFIG_SOURCE_ANNOTATION: "file"}))
    env.start()
    pod = env.cache.get_pod(PodRef("ns", "s", "runtime-uid"), for_add=True)
    assert pod is not None and pod.uid == "mirror"
    assert env.live.pod_gets == []


def test_del_trusts_a_synced_cache(env: Env) -> None:
    env.start()
    started = time.monotonic()
    assert env.cache.get_pod(PodRef("ns", "gone"), for_add=False) is None
    assert time.monotonic() - started < LOOKUP.add_retry_timeout
    assert env.live.pod_gets == []


def test_del_asks_the_api_while_not_synced(env: Env) -> None:
    env.live.pods[("ns", "p")] = full_pod("p")
    pod = env.cache.get_pod(PodRef("ns", "p"), for_add=False)  # never started
    assert pod is not None
    assert env.live.pod_gets == [PodRef("ns", "p")]


def test_live_get_failure_propagates(env: Env) -> None:
    env.live.error = TryAgainLaterError("API server down")
    with pytest.raises(TryAgainLaterError):
        env.cache.get_pod(PodRef("ns", "p"), for_add=True)


def test_without_live_api_a_miss_is_none(lt: LoopThread) -> None:
    cache = WatchCache(FakeKube().client, node_name=NODE, lookup=LOOKUP)
    assert cache.get_pod(PodRef("ns", "p"), for_add=True) is None
    assert cache.get_nad("ns", "n") is None


# --- NAD lookup ----------------------------------------------------------------------------


def test_nad_from_cache_then_from_one_live_get(env: Env) -> None:
    env.kube.put(CachedNad, obj("ns", "cached", spec={"config": "{}"}))
    env.live.nads[("ns", "fresh")] = obj("ns", "fresh", spec={"config": '{"a":1}'})
    env.start()
    assert env.cache.get_nad("ns", "cached") == Nad("ns", "cached", "{}")
    assert env.live.nad_gets == []
    assert env.cache.get_nad("ns", "fresh") == Nad("ns", "fresh", '{"a":1}')
    assert env.cache.get_nad("ns", "missing") is None
    assert env.live.nad_gets == [("ns", "fresh"), ("ns", "missing")]
    assert env.cache.nads.get(("ns", "fresh")) is None  # the watch stays the only writer


def test_nads_of_every_namespace(env: Env) -> None:
    env.kube.put(CachedNad, obj("a", "n", spec={"config": "{}"}))
    env.kube.put(CachedNad, obj("b", "n", spec={"config": "{}"}))
    env.start()
    assert env.cache.get_nad("a", "n") is not None
    assert env.cache.get_nad("b", "n") is not None
    assert env.live.nad_gets == []


def test_stats(env: Env) -> None:
    env.kube.put(CachedPod, full_pod("p"))
    env.start()
    stats = env.cache.stats()
    assert stats["synced"] is True
    assert stats["node"] == NODE
    assert stats["pods"]["count"] == 1
    assert stats["nads"]["count"] == 0
    assert stats["pods"]["resource_version"] == str(env.kube.rv)
    assert stats["pods"]["lists"] == 1


def test_wait_synced_times_out_when_never_started(lt: LoopThread) -> None:
    cache = WatchCache(FakeKube().client, node_name=NODE)
    assert cache.synced is False
    assert cache.wait_synced(0.05) is False
    assert lt.run(cache.wait_synced_async(0.05)) is False
