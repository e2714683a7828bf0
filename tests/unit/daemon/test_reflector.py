"""The list+watch reflector against an in-memory API: sync, events, 410, backoff, 401."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.unit.daemon.fakekube import (
    FakeKube,
    LoopThread,
    api_error,
    connect_error,
    loop_thread,
    obj,
)

from pymultus.daemon.cache import CachedNad, nad_view
from pymultus.daemon.watch import (
    Connection,
    Reflector,
    Store,
    WatchKind,
    WatchTiming,
    http_status,
)
from pymultus.k8s.objects import Nad

FAST = WatchTiming(page_size=2, watch_seconds=30.0, backoff_initial=0.01, backoff_max=0.05)

lt = pytest.fixture(loop_thread)


def nad(name: str, config: str = "{}", ns: str = "ns") -> dict[str, Any]:
    return obj(ns, name, spec={"config": config})


class Harness:
    def __init__(self, lt: LoopThread, kube: FakeKube, timing: WatchTiming = FAST) -> None:
        self.lt, self.kube = lt, kube
        self.store: Store[Nad] = Store()
        kind = WatchKind("nads", CachedNad, nad_view, lambda o: nad_view(o)[0])
        self.reflector = Reflector(kind, self.store, Connection(kube.client), timing)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        async def _start() -> None:
            self.task = asyncio.create_task(self.reflector.run())

        self.lt.run(_start())
        assert self.reflector.synced.wait(5)

    def write(self, fn: Any, *args: Any) -> None:
        self.lt.call(fn, *args)

    def until(self, cond: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.005)

    def calls(self, what: str) -> list[dict[str, Any]]:
        return [kw for c, _, kw in self.kube.calls if c == what]


@pytest.fixture
def h(lt: LoopThread) -> Iterator[Harness]:
    kube = FakeKube()
    yield Harness(lt, kube)


def test_lists_in_pages_then_watches_from_the_list_version(h: Harness) -> None:
    for i in range(5):
        h.kube.put(CachedNad, nad(f"n{i}"))
    h.start()
    assert len(h.store) == 5
    assert h.store.get(("ns", "n3")) == Nad("ns", "n3", "{}")
    assert h.calls("list")[0]["chunk_size"] == 2
    h.until(lambda: h.calls("watch"))
    assert h.calls("watch")[0]["resource_version"] == "105"
    assert h.store.resource_version == "105"


def test_events_are_applied(h: Harness) -> None:
    h.kube.put(CachedNad, nad("a"))
    h.start()
    h.write(h.kube.put, CachedNad, nad("b", '{"x":1}'))
    h.until(lambda: h.store.get(("ns", "b")) is not None)
    h.write(h.kube.put, CachedNad, nad("a", '{"changed":true}'))
    h.until(lambda: (n := h.store.get(("ns", "a"))) is not None and n.config != "{}")
    h.write(h.kube.delete, CachedNad, "ns", "b")
    h.until(lambda: h.store.get(("ns", "b")) is None)
    assert h.store.resource_version == str(h.kube.rv)
    assert h.reflector.stats.events == 3
    assert h.reflector.stats.lists == 1


def test_410_relists_at_once_and_drops_what_was_deleted_meanwhile(h: Harness) -> None:
    h.kube.put(CachedNad, nad("gone"))
    h.start()
    # While the watch is down: a delete and an add, then the history is compacted away.
    h.kube.fail_watches.append(connect_error())
    h.write(h.kube.delete, CachedNad, "ns", "gone")
    h.write(h.kube.put, CachedNad, nad("new"))
    h.write(h.kube.compact, CachedNad)
    h.until(lambda: h.store.get(("ns", "new")) is not None)
    assert h.store.get(("ns", "gone")) is None
    assert h.reflector.stats.relists == 1
    assert h.reflector.stats.last_error.startswith("ApiError 410: too old resource version")


def test_connection_loss_resumes_the_watch_without_relisting(h: Harness) -> None:
    h.start()
    h.until(lambda: h.calls("watch"))
    h.kube.fail_watches.extend([connect_error(), connect_error(), connect_error()])
    h.write(h.kube.put, CachedNad, nad("after"))
    h.until(lambda: h.store.get(("ns", "after")) is not None)
    assert h.reflector.stats.lists == 1
    assert h.reflector.stats.errors == 3
    versions = {kw["resource_version"] for kw in h.calls("watch")}
    assert versions == {"100"}  # every retry resumed from the list's version


def test_list_failures_are_retried_until_synced(lt: LoopThread) -> None:
    kube = FakeKube()
    kube.put(CachedNad, nad("a"))
    kube.fail_lists.extend([api_error(503, "ServiceUnavailable"), connect_error()])
    h = Harness(lt, kube)
    h.start()
    assert h.store.get(("ns", "a")) is not None
    assert len(h.calls("list")) == 3
    assert h.reflector.stats.errors == 2


def test_backoff_grows_and_is_capped(lt: LoopThread) -> None:
    kube = FakeKube()
    timing = WatchTiming(backoff_initial=0.02, backoff_max=0.08)
    kube.fail_lists.extend([connect_error()] * 5)
    h = Harness(lt, kube, timing)
    started = time.monotonic()
    h.start()
    elapsed = time.monotonic() - started
    # 0.02 + 0.04 + 0.08 + 0.08 + 0.08 = 0.30 s at least, at most twice that (jitter).
    assert 0.30 <= elapsed < 1.5


def test_401_rebuilds_the_client(h: Harness) -> None:
    h.kube.fail_lists.append(api_error(401, "Unauthorized"))
    h.start()
    assert h.kube.clients_made == 2
    assert h.kube.clients_closed == 1


def test_our_watch_deadline_starts_a_new_watch_from_the_same_version(lt: LoopThread) -> None:
    kube = FakeKube()
    h = Harness(lt, kube, WatchTiming(watch_seconds=0.05, backoff_initial=0.01))
    h.start()
    h.until(lambda: len(h.calls("watch")) >= 3)
    assert h.reflector.stats.lists == 1
    assert h.reflector.stats.errors == 0
    assert {kw["server_timeout"] for kw in h.calls("watch")} == {60}


def test_unexpected_errors_do_not_kill_the_reflector(h: Harness) -> None:
    h.kube.fail_lists.append(RuntimeError("bug"))
    h.start()
    assert h.reflector.stats.last_error == "RuntimeError: bug"


def test_cancel_ends_the_reflector(h: Harness) -> None:
    h.start()
    assert h.task is not None
    h.task.get_loop().call_soon_threadsafe(h.task.cancel)
    h.until(h.task.done)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (api_error(410, "Expired"), 410),
        (api_error(500, "InternalError"), 500),
        (connect_error(), 0),
        (RuntimeError("x"), 0),
    ],
)
def test_http_status(exc: BaseException, code: int) -> None:
    assert http_status(exc) == code
