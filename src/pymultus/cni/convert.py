"""Conversion of CNI results between spec versions, following libcni's converters.

A registry keyed by ``(from_family, to_family)`` holds one function per neighbouring pair of
the chain ``0.2 - 0.4 - 1.0 - 1.1``; any other pair walks the chain (libcni does the same: 0.2
reaches 1.x through 0.4, and 1.x reaches 0.2 through 0.4). Versions of one family differ only
in ``cniVersion``.

What each step keeps (libcni ``types/020``, ``types/040``, ``types/100``):

- 0.2 -> 0.4: ``ip4`` then ``ip6`` become ``ips`` with ``version`` and no ``interface``; their
  routes are concatenated (ip4's first); no interfaces are created. Lossless.
- 0.4 -> 0.2: the first ``ips`` entry of each version becomes ``ip4``/``ip6`` (later ones are
  dropped, as libcni does); each route goes to the address of its destination's family, or is
  dropped when there is none; interfaces and ``interface`` indices are dropped. A result without
  any address cannot be expressed: ``IncompatibleVersionError``.
- 0.4 -> 1.0: ``version`` is dropped. Lossless (``version`` follows from the address).
- 1.0 -> 0.4: ``version`` is set from the address family. Lossless.
- 1.0 -> 1.1: only ``cniVersion`` changes.
- 1.1 -> 1.0: interface ``mtu``/``socketPath``/``pciID`` and route ``mtu``/``advmss``/
  ``priority``/``table``/``scope`` are dropped: a 1.0.0 result must not carry them.

Every step builds new objects: a conversion never shares mutable parts with its input, except
that converting to the very same version returns the input itself (as libcni does).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from pymultus.cni.errors import IncompatibleVersionError
from pymultus.cni.result import (
    DNS,
    AnyResult,
    Family,
    Interface,
    Interface040,
    IPConfig,
    IPConfig020,
    IPConfig040,
    Result,
    Result020,
    Result040,
    Route,
    encode_result,
    family_of,
    has_interfaces_or_ips,
    ip_version,
    parse_result,
    result_family,
    result_version,
)
from pymultus.cni.version import require_known

__all__ = [
    "CHAIN",
    "REGISTRY",
    "AnyResult",
    "Converter",
    "Family",
    "convert",
    "encode_result",
    "family_of",
    "has_interfaces_or_ips",
    "parse_result",
    "result_family",
    "result_version",
    "to_current",
]

Converter = Callable[[AnyResult, str], AnyResult]
"""Takes a result of the registered source family and the exact target version."""

CHAIN: tuple[Family, ...] = (Family.V020, Family.V040, Family.V100, Family.V110)
"""Families in spec order; a registered converter links each pair of neighbours."""

_CANONICAL_VERSION = {
    Family.V020: "0.2.0",
    Family.V040: "0.4.0",
    Family.V100: "1.0.0",
    Family.V110: "1.1.0",
}

REGISTRY: dict[tuple[Family, Family], Converter] = {}


def _register(source: Family, target: Family) -> Callable[[Converter], Converter]:
    def add(fn: Converter) -> Converter:
        if (source, target) in REGISTRY:
            raise RuntimeError(f"converter {source}->{target} registered twice")
        REGISTRY[(source, target)] = fn
        return fn

    return add


def convert(result: AnyResult, to_version: str) -> AnyResult:
    """``result`` as a result of spec version ``to_version``.

    Raises ``IncompatibleVersionError`` (code 1) for an unknown version, or when the result
    cannot be expressed in that version (a 0.1.0/0.2.0 result needs at least one address);
    ``InternalError`` for a hand-built result whose type cannot hold its ``cniVersion``.
    """
    to_version = require_known(to_version)
    source, target = result_family(result), family_of(to_version)
    if result.cniVersion == to_version:
        return result
    if source == target:
        return msgspec.structs.replace(_copy(result), cniVersion=to_version)
    for step_from, step_to in _steps(source, target):
        version = to_version if step_to == target else _CANONICAL_VERSION[step_to]
        result = REGISTRY[(step_from, step_to)](result, version)
    return result


def to_current(result: AnyResult) -> Result:
    """The 1.x form of ``result``: unchanged if it is 1.0.0 or 1.1.0, else converted to 1.0.0."""
    if isinstance(result, Result):
        return result
    current = convert(result, "1.0.0")
    assert isinstance(current, Result)  # the 1.0 family's converters build Result
    return current


def _steps(source: Family, target: Family) -> list[tuple[Family, Family]]:
    """The neighbouring pairs walked from ``source`` to ``target`` along ``CHAIN``."""
    i, j = CHAIN.index(source), CHAIN.index(target)
    step = 1 if j > i else -1
    return [(CHAIN[k], CHAIN[k + step]) for k in range(i, j, step)]


def _copy(result: AnyResult) -> AnyResult:
    """A deep copy (Structs of plain data round-trip through builtins exactly)."""
    return msgspec.convert(msgspec.to_builtins(result), type(result))


def _copy_dns(dns: DNS | None) -> DNS:
    if dns is None:
        return DNS()
    return DNS(list(dns.nameservers), dns.domain, list(dns.search), list(dns.options))


def _dns_1x(dns: DNS) -> DNS | None:
    return None if dns.is_empty() else _copy_dns(dns)


def _legacy_route(route: Route) -> Route:
    """A route as versions before 1.1.0 know it: destination and gateway only."""
    return Route(dst=route.dst, gw=route.gw)


@_register(Family.V020, Family.V040)
def _from_020_to_040(result: AnyResult, to_version: str) -> AnyResult:
    assert isinstance(result, Result020)
    ips: list[IPConfig040] = []
    routes: list[Route] = []
    for version, ipc in (("4", result.ip4), ("6", result.ip6)):
        if ipc is not None:
            ips.append(IPConfig040(version=version, address=ipc.ip, gateway=ipc.gateway))
            routes.extend(_legacy_route(r) for r in ipc.routes)
    return Result040(cniVersion=to_version, ips=ips, routes=routes, dns=_copy_dns(result.dns))


@_register(Family.V040, Family.V020)
def _from_040_to_020(result: AnyResult, to_version: str) -> AnyResult:
    assert isinstance(result, Result040)
    first: dict[str, IPConfig020] = {}
    for ipc in result.ips:
        if ipc.version not in first:
            first[ipc.version] = IPConfig020(ip=ipc.address, gateway=ipc.gateway)
    if not first:
        raise IncompatibleVersionError(
            f"cannot convert a result without IP addresses to CNI version {to_version}",
            field="ips",
        )
    for route in result.routes:
        owner = first.get(ip_version(route.dst))
        if owner is not None:
            owner.routes.append(_legacy_route(route))
    return Result020(
        cniVersion=to_version, ip4=first.get("4"), ip6=first.get("6"), dns=_copy_dns(result.dns)
    )


@_register(Family.V040, Family.V100)
def _from_040_to_100(result: AnyResult, to_version: str) -> AnyResult:
    assert isinstance(result, Result040)
    return _as_100(result, to_version)


def _as_100(result: Result040 | Result, to_version: str) -> Result:
    """A 1.0.0 result from a 0.4-family or 1.1.0 one: only the fields 1.0.0 has."""
    return Result(
        cniVersion=to_version,
        interfaces=[
            Interface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in result.interfaces
        ],
        ips=[IPConfig(i.interface, i.address, i.gateway) for i in result.ips],
        routes=[_legacy_route(r) for r in result.routes],
        dns=_dns_1x(result.dns) if result.dns is not None else None,
    )


@_register(Family.V100, Family.V040)
def _from_100_to_040(result: AnyResult, to_version: str) -> AnyResult:
    assert isinstance(result, Result)
    return Result040(
        cniVersion=to_version,
        interfaces=[Interface040(i.name, i.mac, i.sandbox) for i in result.interfaces],
        ips=[
            IPConfig040(ip_version(i.address), i.interface, i.address, i.gateway)
            for i in result.ips
        ],
        routes=[_legacy_route(r) for r in result.routes],
        dns=_copy_dns(result.dns),
    )


@_register(Family.V100, Family.V110)
def _from_100_to_110(result: AnyResult, to_version: str) -> AnyResult:
    assert isinstance(result, Result)
    return msgspec.structs.replace(_copy(result), cniVersion=to_version)


@_register(Family.V110, Family.V100)
def _from_110_to_100(result: AnyResult, to_version: str) -> AnyResult:
    assert isinstance(result, Result)
    return _as_100(result, to_version)
