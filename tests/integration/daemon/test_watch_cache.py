"""The daemon's watch cache over real HTTP against the stand-in API server.

Acceptance: a NAD created after the daemon started is found; a watch that ends with 410
recovers; the API server restarted mid-run; rotated credentials; memory with 1,000 pods and
500 NADs cached.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import lightkube
import pytest
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from tests.support.apiserver import StandInApiServer

from pymultus.daemon.cache import LookupPolicy, WatchCache
from pymultus.daemon.watch import WatchTiming, async_client_factory
from pymultus.k8s.client import KubeApi, load_client
from pymultus.k8s.objects import NETWORKS_ANNOTATION, Nad
from pymultus.k8s.refs import PodRef

T = TypeVar("T")
NODE = "node-1"
NS = "watch-ns"
FAST = WatchTiming(page_size=100, backoff_initial=0.05, backoff_max=0.2)
LOOKUP = LookupPolicy(add_retry_interval=0.02, add_retry_timeout=0.5)
_ROOT = Path(__file__).resolve().parents[3]


class Loop:
    """The daemon's event loop in a thread; the test thread plays a core worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(api: StandInApiServer, tmp_path: Path) -> str:
    return str(api.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


@pytest.fixture
def live(kubeconfig: str) -> Iterator[KubeApi]:
    client = load_client(kubeconfig, timeout=5)
    assert client is not None
    yield KubeApi(client)
    client.close()


class Started:
    def __init__(self, loop: Loop, cache: WatchCache) -> None:
        self.loop, self.cache = loop, cache
        loop.run(cache.start())

    def stop(self) -> None:
        self.loop.run(self.cache.stop())


@pytest.fixture
def start(loop: Loop, kubeconfig: str) -> Iterator[Any]:
    started: list[Started] = []

    def _start(
        live_api: KubeApi | None = None, factory: Any = None, timing: WatchTiming = FAST
    ) -> WatchCache:
        factory = factory or async_client_factory(kubeconfig, timeout=5)
        cache = WatchCache(factory, node_name=NODE, live_api=live_api, timing=timing, lookup=LOOKUP)
        started.append(Started(loop, cache))
        assert cache.wait_synced(60)
        return cache

    yield _start
    for s in started:
        s.stop()


def pod(name: str, node: str = NODE, ns: str = NS, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "name": name, "annotations": annotations}
    return {"kind": "Pod", "metadata": meta, "spec": {"nodeName": node, "containers": []}}


def nad(name: str, config: str = '{"cniVersion":"1.0.0","type":"bridge"}', ns: str = NS) -> Any:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"config": config},
    }


def until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def watches(api: StandInApiServer, plural: str) -> list[dict[str, str]]:
    return [r.query for r in api.requests("GET", plural) if r.query.get("watch") == "true"]


def lists(api: StandInApiServer, plural: str) -> list[dict[str, str]]:
    return [r.query for r in api.requests("GET", plural) if "watch" not in r.query]


# --- sync and events ---------------------------------------------------------------------


def test_initial_sync_this_nodes_pods_and_all_nads(api: StandInApiServer, start: Any) -> None:
    api.put_object(pod("mine", **{NETWORKS_ANNOTATION: "br-a"}))
    api.put_object(pod("theirs", node="node-2"))
    api.put_object(nad("br-a"))
    api.put_object(nad("other", ns="elsewhere"))
    cache = start()
    assert cache.synced
    mine = cache.get_pod(PodRef(NS, "mine"), for_add=True)
    assert mine is not None and mine.annotations == {NETWORKS_ANNOTATION: "br-a"}
    assert cache.pods.get((NS, "theirs")) is None
    assert cache.get_nad("elsewhere", "other") is not None
    assert lists(api, "/pods")[0]["fieldSelector"] == f"spec.nodeName={NODE}"
    until(lambda: bool(watches(api, "/pods")))
    assert watches(api, "/pods")[0]["fieldSelector"] == f"spec.nodeName={NODE}"
    assert "fieldSelector" not in lists(api, "network-attachment-definitions")[0]
    assert api.requests("GET", "/pods/mine") == []  # served from the cache


def test_pod_added_modified_deleted(api: StandInApiServer, start: Any) -> None:
    cache = start()
    api.put_object(pod("p", **{NETWORKS_ANNOTATION: "a"}))
    until(lambda: cache.pods.get((NS, "p")) is not None)
    api.put_object(pod("p", **{NETWORKS_ANNOTATION: "a,b"}))
    until(lambda: (p := cache.pods.get((NS, "p"))) and p.annotations[NETWORKS_ANNOTATION] == "a,b")
    api.delete_object("pods", NS, "p")
    until(lambda: cache.pods.get((NS, "p")) is None)
    assert cache.stats()["pods"]["relists"] == 0


def test_nad_created_after_start_is_found(api: StandInApiServer, start: Any) -> None:
    cache = start()  # no live API: only the watch can bring it
    assert cache.get_nad(NS, "late") is None
    api.put_object(nad("late", '{"type":"macvlan"}'))
    until(lambda: cache.get_nad(NS, "late") is not None)
    assert cache.get_nad(NS, "late") == Nad(NS, "late", '{"type":"macvlan"}')
    api.delete_object("network-attachment-definitions", NS, "late")
    until(lambda: cache.get_nad(NS, "late") is None)


def test_add_finds_a_pod_created_just_before(
    api: StandInApiServer, start: Any, live: KubeApi
) -> None:
    cache = start(live)
    api.put_object(pod("fresh"))
    found = cache.get_pod(PodRef(NS, "fresh"), for_add=True)
    assert found is not None and found.name == "fresh"


def test_live_get_for_a_nad_the_cache_does_not_have_yet(
    api: StandInApiServer, live: KubeApi
) -> None:
    api.put_object(nad("now"))
    cache = WatchCache(lambda: pytest.fail("not started"), node_name=NODE, live_api=live)
    assert cache.get_nad(NS, "now") == Nad(NS, "now", '{"cniVersion":"1.0.0","type":"bridge"}')
    assert len(api.requests("GET", "/network-attachment-definitions/now")) == 1


def test_missing_pod_on_add_is_one_live_get(
    api: StandInApiServer, start: Any, live: KubeApi
) -> None:
    cache = start(live)
    api.clear_log()
    assert cache.get_pod(PodRef(NS, "absent"), for_add=True) is None
    assert len(api.requests("GET", "/pods/absent")) == 1


# --- failures ---------------------------------------------------------------------------


def test_watch_ending_with_410_relists(api: StandInApiServer, start: Any) -> None:
    api.put_object(pod("old"))
    api.put_object(nad("old"))
    cache = start()
    until(lambda: len(watches(api, "/pods")) >= 1 and len(watches(api, "definitions")) >= 1)
    api.stop()  # the watches end; changes happen while we cannot see them
    api.delete_object("pods", NS, "old")
    api.put_object(pod("new"))
    api.delete_object("network-attachment-definitions", NS, "old")
    api.put_object(nad("new"))
    api.compact()  # ... and the history before them is gone
    api.restart()
    until(lambda: cache.pods.get((NS, "new")) is not None and cache.get_nad(NS, "new"))
    assert cache.pods.get((NS, "old")) is None
    assert cache.get_nad(NS, "old") is None
    stats = cache.stats()
    assert stats["pods"]["relists"] == 1 and stats["nads"]["relists"] == 1
    assert "410" in stats["pods"]["last_error"]


def test_api_server_restart_resumes_the_watch(api: StandInApiServer, start: Any) -> None:
    api.put_object(pod("before"))
    cache = start()
    until(lambda: len(watches(api, "/pods")) == 1)
    seen = cache.stats()["pods"]["resource_version"]
    api.stop()
    time.sleep(0.3)  # a few failed reconnects, with backoff
    api.restart()
    api.put_object(pod("after"))
    until(lambda: cache.pods.get((NS, "after")) is not None, timeout=5)
    stats = cache.stats()
    assert stats["pods"]["lists"] == 1  # resumed from the version, no re-list
    assert stats["pods"]["errors"] >= 1
    assert watches(api, "/pods")[-1]["resourceVersion"] == seen
    assert cache.synced


def test_list_failures_delay_readiness_only(
    api: StandInApiServer, loop: Loop, kubeconfig: str
) -> None:
    api.put_object(pod("p"))
    api.fail_next(2, 503)
    cache = WatchCache(async_client_factory(kubeconfig, timeout=5), node_name=NODE, timing=FAST)
    loop.run(cache.start())
    try:
        assert cache.wait_synced(10)
        assert cache.pods.get((NS, "p")) is not None
    finally:
        loop.run(cache.stop())


def test_rotated_kubeconfig_token(
    api: StandInApiServer,
    start: Any,
    kubeconfig: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = async_client_factory(kubeconfig, timeout=5)
    assert base is not None
    made: list[lightkube.AsyncClient] = []

    def factory() -> lightkube.AsyncClient:
        made.append(base())
        return made[-1]

    cache = start(factory=factory)
    api.token = "rotated-token"
    api.write_kubeconfig(kubeconfig)  # the new credentials, as a rotation writes them
    api.restart()  # the watches must come again, with credentials
    api.put_object(pod("after-rotation"))
    api.put_object(nad("after-rotation"))
    until(lambda: cache.pods.get((NS, "after-rotation")) is not None)
    until(lambda: cache.get_nad(NS, "after-rotation") is not None)
    assert len(made) == 2  # rebuilt once from the rewritten kubeconfig
    # whichever reflector met the old token first (pods, NADs or DRA slices) saw the 401
    failed = [r.getMessage() for r in caplog.records if "list/watch failed" in r.getMessage()]
    assert any("401" in message for message in failed), failed


def test_rotated_service_account_token_file(
    api: StandInApiServer, start: Any, tmp_path: Path
) -> None:
    """In-cluster credentials: lightkube re-reads the token file after a 401 (#852)."""
    token_file = tmp_path / "token"
    token_file.write_text(str(api.token))
    config = KubeConfig.from_one(
        cluster=Cluster(server=api.url), user=User(token_file=str(token_file)), namespace="x"
    )
    made: list[int] = []

    def factory() -> lightkube.AsyncClient:
        made.append(1)
        return lightkube.AsyncClient(config=config)

    cache = start(factory=factory)
    token_file.write_text("kubelet-rotated")
    api.token = "kubelet-rotated"
    api.restart()
    api.put_object(pod("after-rotation"))
    until(lambda: cache.pods.get((NS, "after-rotation")) is not None)
    assert len(made) == 1  # no rebuild was needed
    assert "401" not in cache.stats()["pods"]["last_error"]


def test_stop_is_prompt_and_keeps_the_last_state(
    api: StandInApiServer, loop: Loop, kubeconfig: str
) -> None:
    api.put_object(nad("kept"))
    cache = WatchCache(async_client_factory(kubeconfig, timeout=5), node_name=NODE, timing=FAST)
    loop.run(cache.start())
    assert cache.wait_synced(10)
    started = time.monotonic()
    loop.run(cache.stop())
    assert time.monotonic() - started < 1.0
    assert cache.get_nad(NS, "kept") is not None


# --- memory ------------------------------------------------------------------------------


def realistic_pod(i: int, node: str = NODE) -> dict[str, Any]:
    """A pod with what real ones carry and the cache must not keep."""
    last_applied = json.dumps({"spec": {"containers": [{"image": "x" * 1500}]}})
    container = {
        "name": "app",
        "image": f"registry.example/app:{i}",
        "command": ["/bin/app"],
        "args": ["--flag"] * 10,
        "env": [{"name": f"VAR_{j}", "value": "v" * 40} for j in range(15)],
        "volumeMounts": [{"name": f"v{j}", "mountPath": f"/m/{j}"} for j in range(5)],
    }
    obj = pod(f"pod-{i:04d}", node=node, **{NETWORKS_ANNOTATION: "br-a, mv-b@data0"})
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = (
        last_applied
    )
    obj["metadata"]["labels"] = {"app": "bench", "pod-template-hash": "abc123"}
    obj["metadata"]["managedFields"] = [
        {"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {"f:containers": {}}}}
    ] * 4
    obj["spec"].update({"containers": [container] * 2, "volumes": [{"name": "v"}] * 5})
    obj["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}] * 4}
    return obj


def fill(api: StandInApiServer, pods: int = 1000, nads: int = 500) -> None:
    for i in range(pods):
        api.put_object(realistic_pod(i))
    config = json.dumps(
        {
            "cniVersion": "1.0.0",
            "type": "macvlan",
            "master": "eth0",
            "ipam": {"type": "host-local", "subnet": "198.18.0.0/16"},
        }
    )
    for i in range(nads):
        api.put_object(nad(f"nad-{i:04d}", config, ns=f"ns-{i % 50}"))


def deep_size(root: Any) -> int:
    """Bytes of ``root`` and everything it references, each object counted once (interned
    and shared strings and mappings too). Rough, like the brief asks, but exact about what
    the cache keeps alive, and fast (tracemalloc over the stand-in's work takes minutes)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, type):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            stack.extend(o)
        elif hasattr(o, "__dict__"):
            stack.append(vars(o))
        elif hasattr(o, "__struct_fields__"):  # msgspec.Struct: slots, no __dict__
            stack.extend(getattr(o, name) for name in o.__struct_fields__)
        elif isinstance(o, Mapping):  # MappingProxyType
            stack.extend(o.items())
    return total


def test_cache_memory_with_1000_pods_and_500_nads(api: StandInApiServer, start: Any) -> None:
    fill(api)
    cache = start(timing=WatchTiming(page_size=500))
    assert cache.stats()["pods"]["count"] == 1000
    assert cache.stats()["nads"]["count"] == 500
    held = deep_size(cache.pods) + deep_size(cache.nads)
    print(f"the stores hold {held / 2**20:.2f} MiB")
    assert held < 20 * 2**20
    # What is kept per pod is the small view, not the API object (~9 KB of JSON each).
    assert deep_size(cache.pods) / 1000 < 2048


def test_daemon_process_rss_with_1000_pods_and_500_nads(
    api: StandInApiServer, kubeconfig: str
) -> None:
    """The whole process, as the daemon would run it: ≤ 60 MiB peak RSS."""
    fill(api)
    script = textwrap.dedent(
        f"""
        import asyncio, gc, re, sys
        import prometheus_client, pyroute2  # what the daemon loads besides the cache
        import pymultus.core.add, pymultus.k8s.client
        from pymultus.daemon.cache import WatchCache
        from pymultus.daemon.watch import async_client_factory

        async def main():
            # As the daemon builds them: the live API client, whose config the cache reuses.
            client = pymultus.k8s.client.load_client({kubeconfig!r})
            live = pymultus.k8s.client.KubeApi(client)
            factory = async_client_factory({kubeconfig!r}, config=client.config)
            cache = WatchCache(factory, node_name={NODE!r}, live_api=live)
            await cache.start()
            assert await cache.wait_synced_async(30), cache.stats()
            gc.collect()
            status = open("/proc/self/status").read()
            rss = int(re.search(r"VmRSS:\\s+(\\d+)", status).group(1))
            hwm = int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
            print(cache.stats()["pods"]["count"], cache.stats()["nads"]["count"], rss, hwm)
            await cache.stop()

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(_ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    pods, nads, rss_kib, hwm_kib = map(int, out.stdout.split())
    assert (pods, nads) == (1000, 500)
    print(f"RSS {rss_kib / 1024:.1f} MiB, peak {hwm_kib / 1024:.1f} MiB")
    assert hwm_kib <= 60 * 1024, f"peak RSS {hwm_kib / 1024:.1f} MiB, now {rss_kib / 1024:.1f} MiB"
