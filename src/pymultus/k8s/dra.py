"""Dynamic Resource Allocation: the devices a pod's ResourceClaims give NADs with a
``resourceName`` (``resource.k8s.io/v1``, Go Multus master's ``pkg/draclient``).

For each claim of the pod, its allocation (``status.allocation.devices.results``: driver,
pool, device) is looked up in the ResourceSlices, and a device that carries the attributes
``k8s.cni.cncf.io/resourceName`` and ``k8s.cni.cncf.io/deviceID`` adds that deviceID under
that resourceName to the pod's resource map (``k8s.resourcemap``), next to the kubelet's
device-plugin IDs; the map sorts every entry, and NADs take them in that order, as Go does.

Where this differs from Go on purpose (``dra.md`` §6):

- claims named directly in ``spec.resourceClaims[].resourceClaimName`` count, not only the
  template-generated ones of ``status.resourceClaimStatuses`` (gap 1);
- the extended-resource claim (``status.extendedResourceClaimStatus``) contributes the
  devices that carry the mapping's resourceName and skips the rest, so a GPU through an
  extended resource never fails an ADD (gap 2);
- slices published with ``nodeSelector``/``allNodes`` (no ``spec.nodeName``) are searched
  too (gap 3); of a pool split over generations only the newest counts, and shares of one
  device (``shareID``) give its ID once (gap 4); int and version attributes are read as
  text (gap 5).

Where the claims and slices come from is a :class:`DraApi`: thin mode reads the API per ADD
(``k8s.dra_api``), the thick daemon keeps slices in a watch cache (``daemon.slices``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

import msgspec

from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError

log = logging.getLogger(__name__)

DEVICE_ID_ATTRIBUTE = "k8s.cni.cncf.io/deviceID"
RESOURCE_NAME_ATTRIBUTE = "k8s.cni.cncf.io/resourceName"
#: Go's wording before every DRA error: ``failed to get resourceMap from DRA client: ...``.
ERROR_PREFIX = "failed to get resourceMap from DRA client"

#: (driver, pool, device): how an allocation result names a device.
DeviceKey = tuple[str, str, str]


# ---------------------------------------------------------------- the pod's claims


class RequestMapping(msgspec.Struct, frozen=True):
    """One ``extendedResourceClaimStatus.requestMappings[]`` entry."""

    container_name: str
    resource_name: str
    request_name: str


class PodClaims(msgspec.Struct, frozen=True):
    """The ResourceClaim objects of a pod, by name, in the order they are read: those of
    ``status.resourceClaimStatuses`` (Go's order), then those ``spec.resourceClaims`` names
    directly; and the extended-resource claim with its request mappings."""

    names: tuple[str, ...] = ()
    extended_claim: str = ""
    mappings: tuple[RequestMapping, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.names or self.extended_claim)


NO_CLAIMS = PodClaims()


def _entries(value: Any) -> list[Mapping[str, Any]]:
    return [e for e in value if isinstance(e, Mapping)] if isinstance(value, list) else []


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def pod_claims(spec: Mapping[str, Any] | None, status: Mapping[str, Any] | None) -> PodClaims:
    """The claims of a pod from its ``spec`` and ``status`` (raw JSON; odd shapes are
    ignored, as the API server never sends them)."""
    spec, status = spec or {}, status or {}
    names: list[str] = []
    for entry in _entries(status.get("resourceClaimStatuses")):
        name = _str(entry, "resourceClaimName")
        if not name:
            log.debug("resource claim %r has no ResourceClaim (yet): skipped", entry.get("name"))
        elif name not in names:
            names.append(name)
    for entry in _entries(spec.get("resourceClaims")):
        name = _str(entry, "resourceClaimName")
        if name and name not in names:
            names.append(name)
    ext = status.get("extendedResourceClaimStatus")
    ext = ext if isinstance(ext, Mapping) else {}
    mappings = tuple(
        RequestMapping(_str(m, "containerName"), _str(m, "resourceName"), _str(m, "requestName"))
        for m in _entries(ext.get("requestMappings"))
    )
    return PodClaims(tuple(names), _str(ext, "resourceClaimName"), mappings)


# ---------------------------------------------------------------- slices


class SliceDevice(msgspec.Struct, frozen=True):
    """What a slice says of one device: its network attributes ("" when absent)."""

    device_id: str
    resource_name: str


def attribute_text(attributes: Any, name: str) -> str:
    """A device attribute as text: ``string``, ``version`` or ``int`` (Go reads only
    ``string``; a deviceID published as a number is still one); "" when absent."""
    attr = attributes.get(name) if isinstance(attributes, Mapping) else None
    if not isinstance(attr, Mapping):
        return ""
    for kind in ("string", "version"):
        value = attr.get(kind)
        if isinstance(value, str):
            return value
    value = attr.get("int")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def slice_devices(obj: Mapping[str, Any]) -> tuple[str, str, int, dict[str, SliceDevice]]:
    """(driver, pool, pool generation, {device name: its network attributes}) of one
    ResourceSlice; only devices with a deviceID are kept (Go's rule)."""
    spec = obj.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    pool = spec.get("pool")
    pool = pool if isinstance(pool, Mapping) else {}
    generation = pool.get("generation")
    devices: dict[str, SliceDevice] = {}
    for dev in _entries(spec.get("devices")):
        attrs = dev.get("attributes")
        device_id = attribute_text(attrs, DEVICE_ID_ATTRIBUTE)
        if device_id and _str(dev, "name"):
            devices[_str(dev, "name")] = SliceDevice(
                device_id, attribute_text(attrs, RESOURCE_NAME_ATTRIBUTE)
            )
    gen = generation if isinstance(generation, int) else 0
    return _str(spec, "driver"), _str(pool, "name"), gen, devices


class IndexedSlice(msgspec.Struct, frozen=True):
    """A slice as the index needs it (what the daemon's cache keeps per slice)."""

    driver: str
    pool: str
    generation: int
    node_name: str
    devices: Mapping[str, SliceDevice]

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> IndexedSlice:
        driver, pool, generation, devices = slice_devices(obj)
        spec = obj.get("spec")
        node = _str(spec, "nodeName") if isinstance(spec, Mapping) else ""
        return cls(driver, pool, generation, node, devices)


def index_slices(slices: Iterable[IndexedSlice]) -> dict[DeviceKey, SliceDevice]:
    """``(driver, pool, device) -> attributes`` over slices; of a pool published in several
    generations (a driver replacing its slices), only the newest generation counts."""
    slices = list(slices)
    newest: dict[tuple[str, str], int] = {}
    for s in slices:
        key = (s.driver, s.pool)
        newest[key] = max(newest.get(key, s.generation), s.generation)
    index: dict[DeviceKey, SliceDevice] = {}
    for s in slices:
        if s.generation == newest[(s.driver, s.pool)]:
            for name, dev in s.devices.items():
                index[(s.driver, s.pool, name)] = dev
    return index


# ---------------------------------------------------------------- where claims come from


class DraApi(Protocol):
    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The ResourceClaim as raw JSON; None when it does not exist. Raises
        ``TryAgainLaterError`` when the API server cannot answer."""
        ...

    def slices(self, node_name: str, driver: str, *, local_only: bool) -> list[IndexedSlice]:
        """The ResourceSlices of ``driver``: with ``local_only`` those published for
        ``node_name`` (a cache may add the node-independent ones it holds); without, every
        one of the driver (asked only when a device was not among the first)."""
        ...


class SliceQueries:
    """``DraApi.slices`` as Go Multus's draclient asks, over a client's ``list_slices``: the
    node's slices of a driver, then (only for a device not among them) its slices tied to no
    node (``spec.nodeName=``: ``nodeSelector``/``allNodes`` pools)."""

    def list_slices(self, driver: str, fields: dict[str, Any]) -> list[IndexedSlice]:
        """One LIST of ResourceSlices with the field selector ``fields``."""
        raise NotImplementedError

    def slices(self, node_name: str, driver: str, *, local_only: bool) -> list[IndexedSlice]:
        """``local_only``: the node's slices; else those of no node (``spec.nodeName=``)."""
        if not node_name and not local_only:
            return []  # without a node the first list already had them all
        fields: dict[str, Any] = {"spec.driver": driver}
        if node_name:
            fields = {"spec.nodeName": node_name if local_only else "", **fields}
        return self.list_slices(driver, fields)


class DraPod(Protocol):
    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def node_name(self) -> str: ...

    @property
    def claims(self) -> PodClaims: ...


class Result(msgspec.Struct, frozen=True):
    """One ``status.allocation.devices.results[]`` entry."""

    request: str
    driver: str
    pool: str
    device: str

    @property
    def key(self) -> DeviceKey:
        return (self.driver, self.pool, self.device)


def allocation_results(claim: Mapping[str, Any], name: str) -> list[Result]:
    """The allocated devices of a claim, each once (shares of one device are one device).

    No allocation: ``TryAgainLaterError`` naming the claim (the kubelet runs no sandbox
    before its claims are prepared, and it retries the ADD); a malformed one:
    ``InvalidConfigError`` naming the claim and the field."""
    status = claim.get("status")
    alloc = status.get("allocation") if isinstance(status, Mapping) else None
    devices = alloc.get("devices") if isinstance(alloc, Mapping) else None
    results = devices.get("results") if isinstance(devices, Mapping) else None
    if not results:  # absent, null, or [] (which arrives as absent over protobuf in Go)
        raise TryAgainLaterError(
            f"{ERROR_PREFIX}: claim {name} has no device allocation", field=_RESULTS
        )
    if not isinstance(results, list):
        raise _malformed(name, _RESULTS, "is not a list")
    found: dict[DeviceKey, Result] = {}
    for i, entry in enumerate(results):
        if not isinstance(entry, Mapping):
            raise _malformed(name, f"{_RESULTS}[{i}]", "is not an object")
        values = []
        for key in ("request", "driver", "pool", "device"):
            value = entry.get(key)
            if not isinstance(value, str) or (key != "request" and not value):
                raise _malformed(name, f"{_RESULTS}[{i}].{key}", "is missing or not a string")
            values.append(value)
        result = Result(*values)
        found.setdefault(result.key, result)
    return list(found.values())


_RESULTS = "status.allocation.devices.results"


def _malformed(claim: str, path: str, why: str) -> InvalidConfigError:
    return InvalidConfigError(
        f"{ERROR_PREFIX}: claim {claim} has a malformed allocation: {path} {why}", field=path
    )


class _Lookup(msgspec.Struct):
    """One map build: each claim read once, each driver's slices listed once (Go's caches,
    which live as long as one build); the driver's other slices (of this node or of none:
    ``nodeSelector``/``allNodes`` pools) only when a device is not among the first."""

    api: DraApi
    pod: DraPod
    claims: dict[str, Mapping[str, Any]] = msgspec.field(default_factory=dict)
    local: dict[str, dict[DeviceKey, SliceDevice]] = msgspec.field(default_factory=dict)
    wide: dict[str, dict[DeviceKey, SliceDevice]] = msgspec.field(default_factory=dict)

    def claim(self, name: str) -> Mapping[str, Any]:
        if name not in self.claims:
            found = self.api.get_claim(self.pod.namespace, name)
            if found is None:
                raise CniError(
                    f'{ERROR_PREFIX}: resourceclaims.resource.k8s.io "{name}" not found',
                    field="status.resourceClaimStatuses",
                    pod=f"{self.pod.namespace}/{self.pod.name}",
                )
            self.claims[name] = found
        return self.claims[name]

    def device(self, result: Result) -> SliceDevice | None:
        driver = result.driver
        if driver not in self.local:
            slices = self.api.slices(self.pod.node_name, driver, local_only=True)
            self.local[driver] = index_slices(slices)
        found = self.local[driver].get(result.key)
        if found is not None:
            return found
        if driver not in self.wide:
            slices = self.api.slices(self.pod.node_name, driver, local_only=False)
            node = self.pod.node_name
            self.wide[driver] = index_slices(s for s in slices if s.node_name in ("", node))
        return self.wide[driver].get(result.key)


def add_dra_devices(pod: DraPod, api: DraApi, into: MutableMapping[str, list[str]]) -> None:
    """Add the deviceIDs of the pod's claims to ``into`` (resourceName -> IDs)."""
    claims = pod.claims
    if not claims:
        return  # no request at all for a pod without claims
    lookup = _Lookup(api, pod)
    for name in claims.names:
        _add_claim(lookup, name, into)
    if claims.extended_claim:
        _add_extended(lookup, claims.extended_claim, claims.mappings, into)


def _add_claim(lookup: _Lookup, name: str, into: MutableMapping[str, list[str]]) -> None:
    added = 0
    for result in allocation_results(lookup.claim(name), name):
        dev = _network_device(lookup, name, result)
        if dev is not None:
            into.setdefault(dev.resource_name, []).append(dev.device_id)
            added += 1
    if not added:
        log.info("claim %s gives no network device (no %s attribute)", name, _BOTH)


_BOTH = f"{DEVICE_ID_ATTRIBUTE}/{RESOURCE_NAME_ATTRIBUTE}"


def _network_device(lookup: _Lookup, claim: str, result: Result) -> SliceDevice | None:
    """The device's attributes, or None (logged) for one that is not a network device."""
    dev = lookup.device(result)
    where = f"device {result.driver}/{result.pool}/{result.device} of claim {claim}"
    if dev is None:
        log.info("%s: in no ResourceSlice with attribute %s: skipped", where, DEVICE_ID_ATTRIBUTE)
        return None
    if not dev.resource_name:
        log.info("%s: no attribute %s: skipped", where, RESOURCE_NAME_ATTRIBUTE)
        return None
    return dev


def _add_extended(
    lookup: _Lookup,
    name: str,
    mappings: Sequence[RequestMapping],
    into: MutableMapping[str, list[str]],
) -> None:
    """Extended resources backed by DRA: each mapping's request contributes the devices whose
    resourceName attribute is the mapping's resource; others (a GPU) are skipped."""
    by_request: dict[str, list[Result]] = {}
    for result in allocation_results(lookup.claim(name), name):
        by_request.setdefault(result.request, []).append(result)
    for mapping in mappings:
        for result in by_request.get(mapping.request_name, []):
            dev = _network_device(lookup, name, result)
            if dev is None:
                continue
            if dev.resource_name != mapping.resource_name:
                log.info(
                    "device %s/%s/%s of claim %s: attribute %s is %r, not the extended "
                    "resource %r: skipped",
                    *result.key,
                    name,
                    RESOURCE_NAME_ATTRIBUTE,
                    dev.resource_name,
                    mapping.resource_name,
                )
                continue
            into.setdefault(mapping.resource_name, []).append(dev.device_id)
