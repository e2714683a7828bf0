"""Default routes inside a pod's network namespace, for both IP families with one code path.

pyroute2 is imported only here and only when a pod asks for a default-route change.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pymultus.cni.errors import IOFailure
from pymultus.netns.enter import in_netns


@dataclass(frozen=True)
class DefaultRoute:
    family: int  # socket.AF_INET or socket.AF_INET6
    ifname: str
    gateway: str


def family_of(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _iproute() -> Any:
    from pyroute2.iproute.linux import IPRoute  # noqa: PLC0415 - costly import, only when needed

    return IPRoute()


def default_routes(netns: str, family: int) -> list[DefaultRoute]:
    """The default routes of ``family`` in ``netns`` (main table)."""
    with in_netns(netns):
        ipr = _iproute()
    try:
        return _default_routes(ipr, family)
    finally:
        ipr.close()


def _default_routes(ipr: Any, family: int) -> list[DefaultRoute]:
    names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
    found = []
    for route in ipr.get_routes(family=family, table=254):
        if route["dst_len"] != 0 or route.get_attr("RTA_DST") not in (None, "0.0.0.0", "::"):
            continue
        oif = route.get_attr("RTA_OIF")
        found.append(DefaultRoute(family, names.get(oif, ""), route.get_attr("RTA_GATEWAY") or ""))
    return found


def replace_default_routes(
    netns: str, family: int, *, remove_on: set[str], add: list[tuple[str, str]]
) -> None:
    """Delete ``family`` default routes on the interfaces in ``remove_on``, then add
    ``(ifname, gateway)`` default routes. An already-present route is fine (idempotent)."""
    with in_netns(netns):
        ipr = _iproute()
    try:
        for route in _default_routes(ipr, family):
            if route.ifname in remove_on:
                _delete(ipr, route)
        for ifname, gateway in add:
            _add(ipr, family, ifname, gateway)
    finally:
        ipr.close()


def _delete(ipr: Any, route: DefaultRoute) -> None:
    dst = "0.0.0.0/0" if route.family == socket.AF_INET else "::/0"
    kwargs: dict[str, Any] = {"dst": dst, "family": route.family, "oif": _index(ipr, route.ifname)}
    if route.gateway:
        kwargs["gateway"] = route.gateway
    try:
        ipr.route("del", **kwargs)
    except Exception as exc:
        if getattr(exc, "code", None) != errno.ESRCH:
            raise IOFailure(f"cannot delete default route on {route.ifname}: {exc}") from exc


def _add(ipr: Any, family: int, ifname: str, gateway: str) -> None:
    dst = "0.0.0.0/0" if family == socket.AF_INET else "::/0"
    try:
        ipr.route("add", dst=dst, gateway=gateway, oif=_index(ipr, ifname), family=family)
    except Exception as exc:
        if getattr(exc, "code", None) != errno.EEXIST:
            raise IOFailure(f"cannot add default route via {gateway} on {ifname}: {exc}") from exc


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise IOFailure(f"interface {ifname} not found for a default-route change")
    return int(found[0])
