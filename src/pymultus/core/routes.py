"""Default-route policy (behaviour §5.3), one code path for both IP families.

After every delegate of an ADD has run, per IP family: when some attachment asked for a
``default-route`` of that family (a gateway of the family, or an empty list, which asks for
both), the default routes of that family are removed from every attachment that did not ask,
and from a requester that named gateways; the requested gateways are then added on the
requester's interface, and libcni's cached results are rewritten to match (keys sorted, as Go
Multus re-encodes them), so a later CHECK compares against what the kernel has.

Differences from Go Multus (docs/compatibility.md):

- only the requested family is touched (Go deletes both families' default routes of every
  other attachment, whichever family was asked for);
- a kernel default route with a zero destination is matched (Go stopped matching it after a
  netlink bump, so its deletion silently does nothing and its addition hits EEXIST, PR #1552;
  golden case 02 shows the kernel unchanged);
- ``"default-route": []`` makes that attachment the default for both families with the routes
  its own IPAM gave, instead of removing every default route of the pod (issue #1011).

The IsFilterV4/V6 flags of the delegates are Go's (they are only recorded in the delegate
cache); what happens here is decided from the requests themselves.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import msgspec

from pymultus.cni import cache
from pymultus.cni.convert import convert, parse_result, result_version, to_current
from pymultus.cni.result import Route
from pymultus.core.delegate import Delegate
from pymultus.netns import routes as netns_routes

_FAMILIES = ((4, socket.AF_INET, "0.0.0.0/0"), (6, socket.AF_INET6, "::/0"))


class Attached(msgspec.Struct, frozen=True):
    """An attachment that ADD made: enough to change its routes and its cached result."""

    delegate: Delegate
    network_name: str  # libcni network name (cache key)
    ifname: str


class FamilyPlan(msgspec.Struct, frozen=True):
    """What to do for one IP family: interfaces losing their default routes, routes to add."""

    remove_on: frozenset[str]
    add: tuple[tuple[str, str], ...]  # (ifname, gateway)


def needs_routes(attached: Sequence[Attached]) -> bool:
    return any(a.delegate.default_route is not None for a in attached)


def gateways_of(delegate: Delegate, version: int) -> list[str]:
    return [gw for gw in delegate.default_route or () if (":" in gw) == (version == 6)]


def asks_for(delegate: Delegate, version: int) -> bool:
    """True when the attachment wants to be the default of this family."""
    wanted = delegate.default_route
    return wanted is not None and (not wanted or bool(gateways_of(delegate, version)))


def plan_family(attached: Sequence[Attached], version: int) -> FamilyPlan:
    """The route changes of one family; nothing when no attachment asks for it."""
    if not any(asks_for(a.delegate, version) for a in attached):
        return FamilyPlan(frozenset(), ())
    remove_on = frozenset(
        a.ifname
        for a in attached
        if not asks_for(a.delegate, version) or gateways_of(a.delegate, version)
    )
    add = tuple((a.ifname, gw) for a in attached for gw in gateways_of(a.delegate, version))
    return FamilyPlan(remove_on, add)


def apply(netns: str, container_id: str, cache_dir: str, attached: Sequence[Attached]) -> None:
    for version, family, default_dst in _FAMILIES:
        plan = plan_family(attached, version)
        if not plan.remove_on and not plan.add:
            continue
        netns_routes.replace_default_routes(
            netns, family, remove_on=set(plan.remove_on), add=list(plan.add)
        )
        for a in attached:
            gateways = [gw for ifname, gw in plan.add if ifname == a.ifname]
            if a.ifname in plan.remove_on or gateways:
                _rewrite_cache(
                    cache_dir,
                    container_id,
                    a,
                    default_dst=default_dst,
                    remove=a.ifname in plan.remove_on,
                    gateways=gateways,
                )


def _rewrite_cache(
    cache_dir: str,
    container_id: str,
    a: Attached,
    *,
    default_dst: str,
    remove: bool,
    gateways: list[str],
) -> None:
    entry = cache.read(cache_dir, a.network_name, container_id, a.ifname)
    if entry is None or not entry.result:
        return
    original = parse_result(entry.result)
    current = to_current(original)
    kept = [r for r in current.routes if not (remove and _is_default(r, default_dst))]
    current.routes = kept + [Route(dst=default_dst, gw=gw) for gw in gateways]
    updated = convert(current, result_version(original))
    cache.write(
        cache_dir,
        type(entry).for_result(
            updated,
            container_id=entry.container_id,
            ifname=entry.ifname,
            network_name=entry.network_name,
            config=entry.config,
            netns=entry.netns,
            cni_args=entry.cni_args,
            capability_args=entry.capability_args,
        ),
        sort_keys=True,
    )


def _is_default(route: Route, default_dst: str) -> bool:
    """A default route of ``default_dst``'s family (any spelling: ``::0/0``, ``0.0.0.0/0``)."""
    try:
        net = ipaddress.ip_network(route.dst, strict=False)
    except ValueError:
        return False
    return net.prefixlen == 0 and (net.version == 6) == (":" in default_dst)
