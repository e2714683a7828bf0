"""Default-route policy (behaviour §5.3), one code path for both IP families.

After every delegate of an ADD has run: for each family that some attachment asked a
``default-route`` for, the default routes of that family are removed from every attachment
that did not ask for it (and from the requester itself when it named gateways), the requested
gateways are added on the requester's interface, and libcni's cached results are rewritten to
match, so a later CHECK compares against what the kernel has.

Differences from Go Multus (docs/compatibility.md): only the requested family is touched (Go
deletes both families), a kernel default route with a zero destination is matched (Go's
netlink bump stopped matching it, PR #1552), and ``"default-route": []`` keeps the delegate's
own default routes instead of removing all of them (issue #1011).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from pymultus.cni import cache
from pymultus.cni.convert import convert, parse_result, result_version, to_current
from pymultus.cni.result import Route
from pymultus.core.delegate import Delegate
from pymultus.netns import routes as netns_routes

_FAMILIES = ((4, socket.AF_INET, "0.0.0.0/0"), (6, socket.AF_INET6, "::/0"))


@dataclass(frozen=True)
class Attached:
    """An attachment that ADD made: enough to change its routes and its cached result."""

    delegate: Delegate
    network_name: str  # libcni network name (cache key)
    ifname: str


def needs_routes(attached: Sequence[Attached]) -> bool:
    return any(a.delegate.filter_v4_gateway or a.delegate.filter_v6_gateway for a in attached)


def apply(netns: str, container_id: str, cache_dir: str, attached: Sequence[Attached]) -> None:
    for version, family, default_dst in _FAMILIES:
        remove_on, add = _changes(attached, version)
        if not remove_on and not add:
            continue
        netns_routes.replace_default_routes(netns, family, remove_on=remove_on, add=add)
        for a in attached:
            gateways = [gw for ifname, gw in add if ifname == a.ifname]
            if a.ifname in remove_on or gateways:
                _rewrite_cache(
                    cache_dir,
                    container_id,
                    a,
                    default_dst=default_dst,
                    remove=a.ifname in remove_on,
                    gateways=gateways,
                )


def _changes(attached: Sequence[Attached], version: int) -> tuple[set[str], list[tuple[str, str]]]:
    remove_on: set[str] = set()
    add: list[tuple[str, str]] = []
    for a in attached:
        d = a.delegate
        gateways = [gw for gw in d.default_route or () if (":" in gw) == (version == 6)]
        filtered = d.filter_v4_gateway if version == 4 else d.filter_v6_gateway
        if filtered or gateways:
            remove_on.add(a.ifname)
        add += [(a.ifname, gw) for gw in gateways]
    return remove_on, add


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
    routes = [r for r in current.routes if not (remove and _is_default(r, default_dst))]
    routes += [Route(dst=default_dst, gw=gw) for gw in gateways]
    current.routes = routes
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
    )


def _is_default(route: Route, default_dst: str) -> bool:
    """A default route of ``default_dst``'s family (any spelling: ``::0/0``, ``0.0.0.0/0``)."""
    try:
        net = ipaddress.ip_network(route.dst, strict=False)
    except ValueError:
        return False
    return net.prefixlen == 0 and (net.version == 6) == (":" in default_dst)
