"""The thick daemon's DRA source: ResourceSlices from a watch cache, claims from the API.

Two list+watch reflectors keep the slices this node can use: those published for it
(``spec.nodeName=<node>``) and those tied to no node (``spec.nodeName=``: ``nodeSelector``,
``allNodes`` or per-device node selection), so an ADD whose devices are all there lists no
slices. Each slice is kept
as the ``k8s.dra.IndexedSlice`` view: driver, pool, generation and the network attributes
of its devices.

ResourceClaims are read with one GET each per ADD (``k8s.dra_api.ApiClaims``): a pod's
generated claims are created just before it starts, so a claim cache would mostly miss and
need a GET anyway, and it would hold every claim of the cluster.

The slice cache is not part of the daemon's readiness: on a cluster that does not serve
``resource.k8s.io/v1`` its reflectors back off and retry, and until they have listed, each
lookup asks the API as the thin plugin does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import msgspec
from lightkube.core import resource as res

from pymultus.daemon.watch import (
    Connection,
    Key,
    Reflector,
    Store,
    WatchedGlobal,
    WatchKind,
    WatchTiming,
)
from pymultus.k8s.dra import IndexedSlice
from pymultus.k8s.dra_api import ApiClaims, ApiDra
from pymultus.k8s.resources import DRA_GROUP, DRA_VERSION


class _Pool(msgspec.Struct, kw_only=True):
    name: str = ""
    generation: int = 0


class _Device(msgspec.Struct, kw_only=True):
    name: str = ""
    attributes: dict[str, dict[str, Any]] | None = None


class _SliceSpec(msgspec.Struct, kw_only=True):
    driver: str = ""
    nodeName: str | None = None
    pool: _Pool = msgspec.field(default_factory=_Pool)
    devices: list[_Device] | None = None


class CachedSlice(WatchedGlobal, kw_only=True):
    """A ResourceSlice as the cache decodes it: nothing but what the index reads."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef(DRA_GROUP, DRA_VERSION, "ResourceSlice"),
        plural="resourceslices",
        verbs=["list", "watch"],
    )
    spec: _SliceSpec = msgspec.field(default_factory=_SliceSpec)


def _key(obj: CachedSlice) -> Key:
    return ("", obj.metadata.name)


def slice_view(obj: CachedSlice) -> tuple[Key, IndexedSlice]:
    return _key(obj), IndexedSlice.from_dict({"spec": msgspec.to_builtins(obj.spec)})


@dataclass
class SliceCache:
    """This node's and the node-independent ResourceSlices, kept by two reflectors."""

    conn: Connection
    node_name: str
    timing: WatchTiming = field(default_factory=WatchTiming)

    def __post_init__(self) -> None:
        self.local: Store[IndexedSlice] = Store()
        self.shared: Store[IndexedSlice] = Store()
        self._reflectors = [
            self._reflector("slices-node", self.local, self.node_name),
            self._reflector("slices-shared", self.shared, ""),
        ]

    def _reflector(
        self, name: str, store: Store[IndexedSlice], node: str
    ) -> Reflector[CachedSlice, IndexedSlice]:
        fields = {"spec.nodeName": node}
        kind = WatchKind(name, CachedSlice, slice_view, _key, fields, namespace=None, optional=True)
        return Reflector(kind, store, self.conn, self.timing)

    def tasks(self) -> list[asyncio.Task[None]]:
        """Start the reflectors on the running loop."""
        return [asyncio.create_task(r.run(), name=f"watch-{r.kind.name}") for r in self._reflectors]

    @property
    def synced(self) -> bool:
        return all(r.synced.is_set() for r in self._reflectors)

    def slices(self, driver: str) -> list[IndexedSlice]:
        """The driver's slices of this node and of none."""
        stores = (self.local, self.shared)
        return [s for store in stores for s in store.values() if s.driver == driver]

    def stats(self) -> dict[str, Any]:
        return {
            r.kind.name: {"count": len(r.store), "synced": r.synced.is_set()}
            for r in self._reflectors
        }


@dataclass
class CachedDra(ApiClaims):
    """The daemon's ``DraApi``: claims by GET; slices from the cache, and from one LIST of
    the driver's slices only when an allocated device is not in the cache (a slice
    published a moment ago, or a device that is no network device: Go lists on every ADD).
    The API is asked as the thin plugin does while the cache has not listed yet, or for a
    pod of another node."""

    cache: SliceCache | None = None

    def slices(self, node_name: str, driver: str, *, local_only: bool) -> list[IndexedSlice]:
        cache = self.cache
        live = ApiDra(self.api)
        if cache is None or not cache.synced or node_name != cache.node_name:
            return live.slices(node_name, driver, local_only=local_only)
        if local_only:
            return cache.slices(driver)
        # A miss in the cache: every slice of the driver, the node's own ones included.
        return live.list_slices(driver, {"spec.driver": driver})
