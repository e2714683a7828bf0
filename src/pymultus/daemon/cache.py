"""The thick daemon's watch cache of this node's pods and all NADs, and how the core's pod
and NAD lookups use it (behaviour rows 50, 58; §10).

It is the daemon's ``PodSource`` and ``NadSource`` (``core.deps``):

- **Pods** of this node only (field selector ``spec.nodeName=<node>``), **NADs** of every
  namespace, each kept current by a list+watch reflector (``daemon.watch``).
- **Trimmed** at decode time: the list and watch bodies are decoded straight into small
  msgspec Structs holding only the fields Multus reads, so managedFields, the pod spec and
  status, and unread annotations are never built as Python objects. A pod keeps only the
  annotations in :data:`KEPT_POD_ANNOTATIONS`; what is stored are the core's frozen ``Pod``
  and ``Nad`` views, shared by every reader.
- **Pod lookup**: the cache; on ADD a pod not (yet) there, or there with another UID than the
  runtime's, is looked for again every 50 ms for up to 2.5 s (Go's informer values: the
  kubelet may run the ADD before our watch has delivered the pod); then one live GET. On
  DEL a miss in a synced cache means the pod is gone (no API call for every DEL of a deleted
  pod); an unsynced cache asks the API once.
- **NAD lookup**: the cache; on a miss one live GET, so a NAD created a moment ago is found
  before its watch event arrives. The live answer is not stored: the watch stays the only
  writer, so a concurrent DELETED event cannot be undone by it.

Call ``get_pod``/``get_nad`` from worker threads (the core's): the ADD retry sleeps there
while the event loop keeps the cache current.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgspec
from lightkube.core import resource as res

from pymultus.cni.errors import InvalidConfigError
from pymultus.daemon.slices import SliceCache
from pymultus.daemon.watch import (
    ClientFactory,
    Connection,
    Key,
    Reflector,
    Store,
    Watched,
    WatchKind,
    WatchTiming,
)
from pymultus.k8s.client import KubeApi
from pymultus.k8s.dra import NO_CLAIMS, PodClaims, pod_claims
from pymultus.k8s.objects import (
    CONFIG_SOURCE_ANNOTATION,
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    RESOURCE_NAME_ANNOTATION,
    Nad,
    Pod,
)
from pymultus.k8s.refs import PodRef
from pymultus.k8s.resources import NAD_GROUP, NAD_KIND, NAD_PLURAL, NAD_VERSION

log = logging.getLogger(__name__)

#: The pod annotations Multus reads (selection, default network, static-pod check); the
#: rest (``last-applied-configuration`` can be kilobytes) is not kept.
KEPT_POD_ANNOTATIONS = frozenset(
    {NETWORKS_ANNOTATION, DEFAULT_NETWORK_ANNOTATION, CONFIG_SOURCE_ANNOTATION}
)
_NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})
_WATCH_VERBS = ["get", "global_list", "global_watch", "list", "watch"]


# --- trimmed wire types: only what the views need is ever decoded ------------------------


class _PodSpec(msgspec.Struct, kw_only=True):
    nodeName: str = ""
    resourceClaims: list[dict[str, Any]] | None = None
    hostNetwork: bool = False


class _PodStatus(msgspec.Struct, kw_only=True):
    """Only the DRA claim fields: the rest of a pod's status is never built."""

    resourceClaimStatuses: list[dict[str, Any]] | None = None
    extendedResourceClaimStatus: dict[str, Any] | None = None


class _NadSpec(msgspec.Struct, kw_only=True):
    config: str | None = None


class CachedPod(Watched, kw_only=True):
    """A pod as the cache decodes it from list and watch bodies."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef("", "v1", "Pod"), plural="pods", verbs=_WATCH_VERBS
    )
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)
    status: _PodStatus = msgspec.field(default_factory=_PodStatus)


class CachedNad(Watched, kw_only=True):
    """A NetworkAttachmentDefinition as the cache decodes it."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef(NAD_GROUP, NAD_VERSION, NAD_KIND),
        plural=NAD_PLURAL,
        verbs=_WATCH_VERBS,
    )
    spec: _NadSpec = msgspec.field(default_factory=_NadSpec)


def _key(obj: CachedPod | CachedNad) -> Key:
    return (sys.intern(obj.metadata.namespace), obj.metadata.name)


def kept_annotations(annotations: Mapping[str, str] | None) -> Mapping[str, str]:
    """Only the annotations Multus reads; one shared empty mapping for the many pods that
    have none of them."""
    if not annotations:
        return _NO_ANNOTATIONS
    kept = {k: v for k, v in annotations.items() if k in KEPT_POD_ANNOTATIONS}
    return kept or _NO_ANNOTATIONS


def pod_view(obj: CachedPod) -> tuple[Key, Pod]:
    key = _key(obj)
    meta = obj.metadata
    pod = Pod(
        namespace=key[0],
        name=meta.name,
        uid=meta.uid,
        annotations=kept_annotations(meta.annotations),
        node_name=sys.intern(obj.spec.nodeName),
        resource_version=meta.resourceVersion,
        claims=_claims(obj),
        host_network=obj.spec.hostNetwork,
    )
    return key, pod


def _claims(obj: CachedPod) -> PodClaims:
    """The pod's DRA claims; the shared empty value for the many pods without any."""
    spec, status = obj.spec, obj.status
    if not (
        spec.resourceClaims or status.resourceClaimStatuses or status.extendedResourceClaimStatus
    ):
        return NO_CLAIMS
    return pod_claims(
        {"resourceClaims": spec.resourceClaims},
        {
            "resourceClaimStatuses": status.resourceClaimStatuses,
            "extendedResourceClaimStatus": status.extendedResourceClaimStatus,
        },
    )


def nad_view(obj: CachedNad) -> tuple[Key, Nad]:
    key = _key(obj)
    annotations = obj.metadata.annotations or {}
    nad = Nad(
        namespace=key[0],
        name=obj.metadata.name,
        config=obj.spec.config or "",
        resource_name=annotations.get(RESOURCE_NAME_ANNOTATION, ""),
    )
    return key, nad


def trimmed_pod(raw: Mapping[str, Any]) -> Pod:
    """A pod from a live GET, trimmed like the cached ones, so both look the same."""
    pod = Pod.from_dict(raw)
    return msgspec.structs.replace(pod, annotations=kept_annotations(pod.annotations))


@dataclass(frozen=True)
class LookupPolicy:
    """How long an ADD waits for the cache before asking the API (Go's thick values, row 50:
    the informer is polled every 50 ms for at most 2.5 s)."""

    add_retry_interval: float = 0.05
    add_retry_timeout: float = 2.5


class WatchCache:
    """Pods of ``node_name`` and all NADs, kept current by list+watch; see the module doc."""

    def __init__(
        self,
        client_factory: ClientFactory,
        *,
        node_name: str,
        live_api: KubeApi | None = None,
        timing: WatchTiming | None = None,
        lookup: LookupPolicy | None = None,
    ) -> None:
        if not node_name:
            raise InvalidConfigError(
                "the node name (MULTUS_NODE_NAME) is empty: the pod cache would hold the "
                "unscheduled pods instead of this node's",
                field="MULTUS_NODE_NAME",
            )
        self.node_name = node_name
        self._live = live_api
        self._lookup = lookup or LookupPolicy()
        self._conn = Connection(client_factory)
        timing = timing or WatchTiming()
        self.pods: Store[Pod] = Store()
        self.nads: Store[Nad] = Store()
        pod_kind = WatchKind("pods", CachedPod, pod_view, _key, {"spec.nodeName": node_name})
        self._pod_reflector = Reflector(pod_kind, self.pods, self._conn, timing)
        self._nad_reflector = Reflector(
            WatchKind("nads", CachedNad, nad_view, _key), self.nads, self._conn, timing
        )
        #: ResourceSlices for DRA devices; not part of ``synced`` (see ``daemon.slices``).
        self.slices = SliceCache(self._conn, node_name, timing)
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_thread: int | None = None
        self._live_gets = {"pods": 0, "nads": 0}

    # --- lifecycle (on the event loop) ----------------------------------------------------

    async def start(self) -> None:
        """Start listing and watching; returns at once (see ``wait_synced``)."""
        if self._tasks:
            return
        self._loop_thread = threading.get_ident()
        for reflector in (self._pod_reflector, self._nad_reflector):
            name = f"watch-{reflector.kind.name}"
            self._tasks.append(asyncio.create_task(reflector.run(), name=name))
        self._tasks += self.slices.tasks()

    async def stop(self) -> None:
        """Stop the reflectors and close the client; the stores keep their last state."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._conn.close()

    @property
    def synced(self) -> bool:
        """Both first lists are in: the daemon may report ready."""
        return self._pod_reflector.synced.is_set() and self._nad_reflector.synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        """Block (not on the loop thread) until synced or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        for reflector in (self._pod_reflector, self._nad_reflector):
            if not reflector.synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    async def wait_synced_async(self, timeout: float, interval: float = 0.05) -> bool:
        """``wait_synced`` for the event loop (Go waits up to 20 s at startup, row 58)."""
        deadline = time.monotonic() + timeout
        while not self.synced:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)
        return True

    # --- lookups (from worker threads) ----------------------------------------------------

    def get_pod(self, ref: PodRef, *, for_add: bool) -> Pod | None:
        """The pod: cache, then (ADD) short retries, then one live GET; see the module doc.
        Raises ``TryAgainLaterError`` when the live GET cannot reach the API server."""
        pod = self._cached_pod(ref)
        if pod is not None:
            return pod
        if not for_add:
            return None if self._pod_reflector.synced.is_set() else self._live_pod(ref)
        if threading.get_ident() != self._loop_thread:  # waiting on the loop would stall it
            deadline = time.monotonic() + self._lookup.add_retry_timeout
            while time.monotonic() < deadline:
                time.sleep(self._lookup.add_retry_interval)
                pod = self._cached_pod(ref)
                if pod is not None:
                    return pod
        return self._live_pod(ref)

    def get_nad(self, namespace: str, name: str) -> Nad | None:
        """The NAD from the cache, else from one live GET (a NAD created just now)."""
        nad = self.nads.get((namespace, name))
        if nad is not None or self._live is None:
            return nad
        self._live_gets["nads"] += 1
        raw = self._live.get_nad(namespace, name)
        return Nad.from_dict(raw) if raw is not None else None

    def _cached_pod(self, ref: PodRef) -> Pod | None:
        """The cached pod unless it is another incarnation than the runtime's (a pod deleted
        and created again under the same name, whose new version the watch has not brought
        yet); static pods have a UID of their own in the API and are taken as they are."""
        pod = self.pods.get((ref.namespace, ref.name))
        if pod is None or not ref.uid or pod.uid in ("", ref.uid) or pod.is_static:
            return pod
        return None

    def _live_pod(self, ref: PodRef) -> Pod | None:
        if self._live is None:
            return None
        self._live_gets["pods"] += 1
        raw = self._live.get_pod(ref)
        return trimmed_pod(raw) if raw is not None else None

    def stats(self) -> dict[str, Any]:
        """Counts, resourceVersions and list/watch counters, for metrics and debugging."""
        out: dict[str, Any] = {"synced": self.synced, "node": self.node_name}
        for reflector in (self._pod_reflector, self._nad_reflector):
            name = reflector.kind.name
            out[name] = {"count": len(reflector.store), **dataclasses.asdict(reflector.stats)}
            out[name]["live_gets"] = self._live_gets[name]
        out["resourceslices"] = self.slices.stats()
        return out
