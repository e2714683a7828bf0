"""An in-memory stand-in for lightkube's AsyncClient list/watch, for reflector unit tests.

It keeps one object store per resource class, hands out lists and watches the way the API
does (a list's resourceVersion, watch events after a version), and lets a test inject the
failures a reflector must survive: an error for the next list or watch, a 410 for a watch
from a compacted version, a watch that ends. Objects are decoded with ``msgspec.convert``
into the trimmed resource classes, as lightkube decodes them from JSON.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
import msgspec
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

T = TypeVar("T")


def api_error(code: int, reason: str = "", message: str = "") -> ApiError:
    return ApiError(status=Status(code=code, reason=reason, message=message or reason))


def obj(ns: str, name: str, **extra: Any) -> dict[str, Any]:
    meta = {"namespace": ns, "name": name, "uid": f"uid-{name}", **extra.pop("meta", {})}
    return {"metadata": meta, **extra}


@dataclass
class FakeResource:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    compacted: int = 0


@dataclass
class FakeKube:
    """The fake API: state, failures to inject, and a log of list/watch calls."""

    rv: int = 100
    resources: dict[str, FakeResource] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    fail_lists: list[BaseException] = field(default_factory=list)
    fail_watches: list[BaseException] = field(default_factory=list)
    clients_made: int = 0
    clients_closed: int = 0
    changed: asyncio.Event | None = None

    def resource(self, res: type) -> FakeResource:
        return self.resources.setdefault(res.__name__, FakeResource())

    def put(self, res: type, o: dict[str, Any]) -> None:
        self._write(res, "MODIFIED" if self._key(o) in self.resource(res).objects else "ADDED", o)

    def delete(self, res: type, ns: str, name: str) -> None:
        o = self.resource(res).objects[(ns, name)]
        self._write(res, "DELETED", o)

    def compact(self, res: type) -> None:
        r = self.resource(res)
        r.events.clear()
        r.compacted = self.rv

    def _key(self, o: dict[str, Any]) -> tuple[str, str]:
        return (o["metadata"]["namespace"], o["metadata"]["name"])

    def _write(self, res: type, kind: str, o: dict[str, Any]) -> None:
        self.rv += 1
        o = {**o, "metadata": {**o["metadata"], "resourceVersion": str(self.rv)}}
        r = self.resource(res)
        if kind == "DELETED":
            r.objects.pop(self._key(o), None)
        else:
            r.objects[self._key(o)] = o
        r.events.append((self.rv, kind, o))
        if self.changed is not None:
            self.changed.set()

    def client(self) -> FakeClient:
        self.clients_made += 1
        return FakeClient(self)


class FakeList:
    def __init__(self, items: list[Any], rv: str) -> None:
        self._items, self._rv = items, rv
        self.resourceVersion = ""

    async def __aiter__(self) -> AsyncIterator[Any]:
        self.resourceVersion = self._rv
        for item in self._items:
            yield item


class FakeClient:
    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    def list(self, res: type, **kw: Any) -> FakeList:
        self.kube.calls.append(("list", res.__name__, kw))
        if self.kube.fail_lists:
            raise self.kube.fail_lists.pop(0)
        r = self.kube.resource(res)
        items = [msgspec.convert(o, res) for o in r.objects.values() if _selected(o, kw)]
        return FakeList(items, str(self.kube.rv))

    def watch(self, res: type, **kw: Any) -> AsyncIterator[tuple[str, Any]]:
        self.kube.calls.append(("watch", res.__name__, kw))
        return self._watch(res, kw)

    async def _watch(self, res: type, kw: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        if self.kube.fail_watches:
            raise self.kube.fail_watches.pop(0)
        last = int(kw["resource_version"])
        r = self.kube.resource(res)
        if last < r.compacted:
            raise api_error(410, "Expired", f"too old resource version: {last}")
        while True:
            if self.kube.fail_watches:
                raise self.kube.fail_watches.pop(0)
            for rv, kind, o in list(r.events):
                if rv > last:
                    last = rv
                    if _selected(o, kw):
                        yield kind, msgspec.convert(o, res)
            if self.kube.changed is None:
                self.kube.changed = asyncio.Event()
            self.kube.changed.clear()
            await self.kube.changed.wait()

    async def close(self) -> None:
        self.kube.clients_closed += 1


def _selected(o: dict[str, Any], kw: dict[str, Any]) -> bool:
    for path, want in (kw.get("fields") or {}).items():
        value: Any = o
        for part in path.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        if value != want:
            return False
    return True


def connect_error() -> httpx2.ConnectError:
    return httpx2.ConnectError("connection refused")


class LoopThread:
    """An event loop in a thread, as in the daemon: the test thread plays a worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the loop (writes to the fake API happen there, like the server)."""

        async def _do() -> None:
            fn(*args)

        self.run(_do())

    def close(self) -> None:
        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(_cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()
