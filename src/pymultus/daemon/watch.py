"""List+watch reflectors: keep a local copy of one kind of API object current (row 58).

One :class:`Reflector` per resource runs as an asyncio task on the daemon's event loop: it
lists (in pages), then watches from the list's ``resourceVersion``, and applies each event to
a :class:`Store`. Asyncio tasks rather than threads because the daemon already runs a loop,
cancelling a task ends a blocked watch at once (a thread would have to wait for the next
byte), and two reflectors cost two small tasks instead of two OS threads. The core reads the
stores from worker threads: only the loop thread ever writes, every write is one dict
operation or the swap of a whole dict, and those are atomic under the GIL, so reads need no
lock.

What happens when things go wrong, the way client-go's reflector does it:

- a watch that ends normally (our deadline, the server's ``timeoutSeconds``) is started
  again from the last ``resourceVersion`` seen: no re-list;
- ``410 Gone`` / ``Expired`` (the version was compacted away) re-lists at once;
- no connection, 5xx, 429: the same step is retried after an exponential backoff with
  jitter (0.8 s doubling up to 30 s, client-go's numbers); a failure after progress (a
  list, an event) or after a healthy while starts again at 0.8 s, so an API server that
  restarts is followed again within one short backoff step of its return;
- ``401``: the shared client is rebuilt from the factory, which re-reads the kubeconfig
  (rotated per-node certificates, a rewritten token); the other reflector, whose stream the
  rebuild cut, goes again at once. In-cluster service-account tokens need no rebuild:
  lightkube's ``BearerTokenFileAuth`` (lightkube >= 1.0) re-reads the token file on a 401,
  like client-go's ``tokenFileAuth`` (Go Multus issue #852).

Watches ask for no bookmarks (lightkube's ``watch`` has no parameter for them), so an idle
watch that outlives the server's event history re-lists once through the 410 path.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import httpx2
import lightkube
import msgspec
from lightkube.core import resource as res
from lightkube.core.exceptions import ApiError, ConfigError

from pymultus.cni.errors import CniError
from pymultus.k8s.client import DEFAULT_TIMEOUT, FIELD_MANAGER, load_client

log = logging.getLogger(__name__)

Key = tuple[str, str]
V = TypeVar("V")
R = TypeVar("R", bound="Watched | WatchedGlobal")
ClientFactory = Callable[[], lightkube.AsyncClient]


class ObjectMeta(msgspec.Struct, kw_only=True):
    """The metadata fields the cache keeps (the API's spelling)."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resourceVersion: str = ""
    annotations: dict[str, str] | None = None


class Watched(res.NamespacedResourceG, msgspec.Struct, kw_only=True):
    """Base of the trimmed resource types the reflectors decode list and watch bodies into:
    a lightkube namespaced resource that is a msgspec Struct, so lightkube decodes straight
    into it and every field not declared is skipped without being built."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


class WatchedGlobal(res.GlobalResource, msgspec.Struct, kw_only=True):
    """``Watched`` for a cluster-scoped resource (ResourceSlices)."""

    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)


@dataclass(frozen=True)
class WatchTiming:
    """How the reflectors pace themselves; each default says why it is what it is."""

    #: Objects per list page: bounds the memory a list needs while a page is decoded.
    #: client-go uses 500; 100 keeps a page of large pods to a megabyte or two of JSON, and
    #: a node's pods (110 by default) still come in one or two requests.
    page_size: int = 100
    #: Seconds one watch request lives before we start a fresh one from the same version:
    #: client-go picks 5-10 minutes; a connection that died silently is noticed this late.
    watch_seconds: float = 300.0
    #: Backoff after a failure: client-go's reflector uses 0.8 s doubling up to 30 s.
    backoff_initial: float = 0.8
    backoff_max: float = 30.0


class Store(Generic[V]):
    """Objects by (namespace, name). Written only by the loop thread, read from any thread:
    a write is one dict operation or a swap of the whole dict, atomic under the GIL."""

    def __init__(self) -> None:
        self._items: dict[Key, V] = {}
        self.resource_version = ""
        #: Called on the loop thread with the key of every object that was written or
        #: deleted (hot-plug listens on the pods).
        self.on_change: Callable[[Key], None] | None = None

    def get(self, key: Key) -> V | None:
        return self._items.get(key)

    def replace(self, items: dict[Key, V], resource_version: str) -> None:
        old, self._items = self._items, items
        self.resource_version = resource_version
        if self.on_change is not None:
            for key in old.keys() | items.keys():
                self.on_change(key)

    def put(self, key: Key, value: V) -> None:
        self._items[key] = value
        if self.on_change is not None:
            self.on_change(key)

    def delete(self, key: Key) -> None:
        self._items.pop(key, None)
        if self.on_change is not None:
            self.on_change(key)

    def all_keys(self) -> list[Key]:
        return list(self._items)

    def values(self) -> list[V]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class WatchKind(Generic[R, V]):
    """One watched resource: its lightkube class (a trimmed msgspec Struct, so nothing the
    cache does not keep is ever built), the view stored per object, and field selectors."""

    name: str
    resource: type[R]
    view: Callable[[R], tuple[Key, V]]
    key: Callable[[R], Key]
    fields: dict[str, Any] | None = None
    #: ``lightkube.ALL_NS`` for namespaced resources; None for cluster-scoped ones.
    namespace: str | None = lightkube.ALL_NS
    #: A resource the cluster may not serve at all: its 404s are retried without warnings.
    optional: bool = False


class Connection:
    """The AsyncClient the reflectors share, built by the factory and rebuilt after a 401."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: lightkube.AsyncClient | None = None
        self.generation = 0

    @property
    def client(self) -> lightkube.AsyncClient:
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def rebuild(self, generation: int) -> None:
        """Replace the client of ``generation`` (once, however many reflectors saw the 401);
        the next ``client`` is a new one from the factory, with a new generation."""
        if generation == self.generation and self._client is not None:
            client, self._client = self._client, None
            self.generation += 1
            await client.close()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


#: What a list or watch can fail with that is worth another try.
_RETRIED = (
    httpx2.HTTPError,
    msgspec.DecodeError,
    msgspec.ValidationError,
    OSError,
    ConfigError,
    CniError,
)


def http_status(exc: BaseException) -> int:
    """The HTTP status of an API failure (also of a watch ERROR event), 0 without one."""
    if isinstance(exc, ApiError) and exc.status is not None:
        return int(exc.status.code or 0)
    response = getattr(exc, "response", None)
    if isinstance(exc, httpx2.HTTPStatusError) and response is not None:
        return int(response.status_code)
    return 0


@dataclass
class ReflectorStats:
    lists: int = 0
    relists: int = 0
    watches: int = 0
    events: int = 0
    errors: int = 0
    last_error: str = ""
    resource_version: str = ""


class Reflector(Generic[R, V]):
    """Lists then watches one resource into ``store`` until cancelled."""

    def __init__(
        self, kind: WatchKind[R, V], store: Store[V], conn: Connection, timing: WatchTiming
    ) -> None:
        self.kind = kind
        self.store = store
        self._conn = conn
        self._timing = timing
        self._rv: str | None = None
        #: Set once the first list is in the store: readiness waits for it.
        self.synced = threading.Event()
        self.stats = ReflectorStats()

    async def run(self) -> None:
        delay = self._timing.backoff_initial
        while True:
            started, progress = time.monotonic(), (self.stats.lists, self.stats.events)
            generation = self._conn.generation
            try:
                client = self._conn.client
                generation = self._conn.generation
                if self._rv is None:
                    await self._list(client)
                await self._watch(client)
                delay = self._timing.backoff_initial
                continue
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if generation != self._conn.generation:
                    continue  # the other reflector replaced the client (a 401): go again
                if not isinstance(e, _RETRIED):  # a bug must not stop the cache: log, retry
                    log.exception("%s reflector failed unexpectedly", self.kind.name)
                if not self._failed(e):
                    continue  # 410: re-list at once
                if http_status(e) == 401:
                    await self._conn.rebuild(generation)
            # A failure after things went well for a while starts the backoff afresh.
            healthy = time.monotonic() - started >= self._timing.backoff_max
            if healthy or progress != (self.stats.lists, self.stats.events):
                delay = self._timing.backoff_initial
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, self._timing.backoff_max)

    def _failed(self, exc: BaseException) -> bool:
        """Record a failure; False when it asks for a re-list (410) rather than a backoff."""
        self.stats.errors += 1
        status = http_status(exc)
        code = f" {status}" if status else ""
        self.stats.last_error = f"{type(exc).__name__}{code}: {exc}"
        if status == 410:
            log.info("%s watch expired at %s: listing again", self.kind.name, self._rv)
            self._rv = None
            return False
        if status == 404 and self.kind.optional:
            # An API the cluster does not serve (DRA before Kubernetes 1.34): retried quietly.
            log.debug("%s is not served: %s", self.kind.name, self.stats.last_error)
            return True
        log.warning("%s list/watch failed: %s", self.kind.name, self.stats.last_error)
        return True

    async def _list(self, client: lightkube.AsyncClient) -> None:
        resource: Any = self.kind.resource  # namespaced or cluster-scoped: one call for both
        listing = client.list(
            resource,
            namespace=self.kind.namespace,
            chunk_size=self._timing.page_size,
            fields=self.kind.fields,
        )
        items: dict[Key, V] = {}
        rv: str | None = None
        async for obj in listing:
            # The first page's version: later pages of the same list carry the same one.
            rv = rv or listing.resourceVersion
            key, view = self.kind.view(obj)
            items[key] = view
        rv = rv or listing.resourceVersion
        self.store.replace(items, rv)
        self._rv = self.stats.resource_version = rv
        self.stats.lists += 1
        self.stats.relists += self.synced.is_set()
        self.synced.set()
        log.debug("%s listed: %d objects at %s", self.kind.name, len(items), rv)

    async def _watch(self, client: lightkube.AsyncClient) -> None:
        """One watch from the current version; returns when our deadline ends it."""
        self.stats.watches += 1
        resource: Any = self.kind.resource
        stream = cast(
            AsyncGenerator[tuple[str, R], None],
            client.watch(
                resource,
                namespace=self.kind.namespace,
                fields=self.kind.fields,
                # The server's end comes after ours, so each watch is one request.
                server_timeout=int(self._timing.watch_seconds) + 60,
                resource_version=self._rv,
            ),
        )
        deadline = asyncio.timeout(self._timing.watch_seconds)
        try:
            async with deadline:
                async for event_type, obj in stream:
                    self._apply(event_type, obj)
        except TimeoutError:
            if not deadline.expired():
                raise
        finally:
            await stream.aclose()

    def _apply(self, event_type: str, obj: R) -> None:
        if event_type in ("ADDED", "MODIFIED"):
            key, view = self.kind.view(obj)
            self.store.put(key, view)
        elif event_type == "DELETED":
            self.store.delete(self.kind.key(obj))
        self.stats.events += event_type != "BOOKMARK"
        rv = obj.metadata.resourceVersion
        if rv:
            self._rv = self.store.resource_version = self.stats.resource_version = rv


def async_client_factory(
    kubeconfig: str | None, *, timeout: float = DEFAULT_TIMEOUT, config: Any = None
) -> ClientFactory | None:
    """A factory of lightkube ``AsyncClient``s with Go Multus's credential rules (row 49):
    ``kubeconfig`` if given, else in-cluster credentials, else ``None`` (standalone mode:
    no cache at all).

    ``config`` is the lightkube config already loaded for the same credentials (the live
    ``KubeApi``'s ``client.config``): the first client uses it, so the credentials are not
    read twice at startup. Every later call (a rebuild after a 401) reads them again, so a
    rotated kubeconfig or certificate is picked up. Unusable credentials raise
    ``InvalidConfigError`` naming ``kubeconfig`` now, not at the first request.
    """
    if config is None:
        probe = load_client(kubeconfig, timeout=timeout)
        if probe is None:
            return None
        config = probe.config
        probe.close()
    first: list[Any] = [config]

    def factory() -> lightkube.AsyncClient:
        if first:
            current = first.pop()
        else:
            sync = load_client(kubeconfig, timeout=timeout)
            if sync is None:
                raise ConfigError("the Kubernetes credentials are gone")
            current = sync.config
            sync.close()
        return lightkube.AsyncClient(
            config=current, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER
        )

    return factory
