"""The ``k8s.v1.cni.cncf.io/network-status`` annotation, byte-exact with Go Multus.

Go Multus builds the entries with the NAD client v1.7.6 (``CreateNetworkStatuses``) and writes
each one with ``json.MarshalIndent(entry, "", "    ")``, joined as ``"[" + ",".join + "]"``.
Tools parse this annotation, and a drop-in must not change a byte of it, quirks included:

* IPs lose their prefix length; ``default`` appears only when true; ``dns`` always appears
  (``{}`` when empty); ``mtu`` only when non-zero;
* ``gateway`` lists the gateway of every default route, and a default route without a gateway
  gives the literal string ``<nil>`` (Go prints a nil ``net.IP`` that way), escaped as
  ``\\u003cnil\\u003e``;
* a result with exactly one interface gives one entry with all IPs; any other result gives one
  entry per sandbox interface, IPs by interface index, unindexed IPs on the last entry, and no
  entry at all when no interface has a sandbox.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from pymultus.cni import gojson, limits
from pymultus.cni.errors import DecodeError
from pymultus.cni.result import DNS, IPConfig, Result, Route, canonical_cidr, canonical_ip
from pymultus.k8s.devinfo import DeviceInfo, device_info_from_mapping
from pymultus.k8s.objects import STATUS_ANNOTATION

NIL_IP = "<nil>"  # how Go prints a nil net.IP, e.g. a default route without "gw"


class DNSStatus(msgspec.Struct, omit_defaults=True):
    nameservers: list[str] = msgspec.field(default_factory=list)
    domain: str = ""
    search: list[str] = msgspec.field(default_factory=list)
    options: list[str] = msgspec.field(default_factory=list)


class NetworkStatus(msgspec.Struct, omit_defaults=True):
    """One status entry; fields in the NAD client's order.

    ``dns`` has a Struct default, which msgspec never omits: that is what keeps ``"dns": {}``
    in every entry, as Go's ``omitempty`` on a struct field does.
    """

    name: str
    interface: str = ""
    ips: list[str] = msgspec.field(default_factory=list)
    mac: str = ""
    mtu: int = 0
    default: bool = False
    dns: DNSStatus = msgspec.field(default_factory=DNSStatus)
    device_info: DeviceInfo | None = msgspec.field(default=None, name="device-info")
    gateway: list[str] = msgspec.field(default_factory=list)


def statuses_for_result(
    result: Result,
    network_name: str,
    is_default: bool,
    device_info: Mapping[str, Any] | DeviceInfo | None = None,
) -> list[NetworkStatus]:
    """The entries for one delegate's (1.x) result, as ``CreateNetworkStatuses`` makes them."""
    dev = device_info_from_mapping(device_info) if isinstance(device_info, Mapping) else device_info
    if len(result.interfaces) == 1:
        return [_single_entry(result, network_name, is_default, dev)]
    return _per_interface_entries(result, network_name, is_default, dev)


def _single_entry(
    result: Result, name: str, is_default: bool, dev: DeviceInfo | None
) -> NetworkStatus:
    """One interface: all IPs, whatever their index; interface fields only with a sandbox."""
    entry = NetworkStatus(name=name, default=is_default, dns=_dns(result.dns), device_info=dev)
    for iface in result.interfaces:
        if iface.sandbox:
            entry.interface, entry.mac, entry.mtu = iface.name, iface.mac, iface.mtu
    entry.ips = [_bare_ip(ip, i) for i, ip in enumerate(result.ips)]
    entry.gateway = _default_gateways(result.routes)
    return entry


def _per_interface_entries(
    result: Result, name: str, is_default: bool, dev: DeviceInfo | None
) -> list[NetworkStatus]:
    """Zero or several interfaces: one entry per sandbox interface, IPs by index."""
    gateways = _default_gateways(result.routes)
    gw_index = _gateway_interface_index(result.ips) if is_default else -1
    entries: list[NetworkStatus] = []
    by_index: dict[int, NetworkStatus] = {}
    marked = False
    for i, iface in enumerate(result.interfaces):
        if not iface.sandbox:
            continue
        # The master's flag goes to the interface of the first IP with a gateway, or, when no
        # IP has both, to the first sandbox interface. An index naming a host-side interface
        # leaves every entry unmarked, as in Go.
        mark = is_default and not marked and gw_index in (i, -1)
        marked = marked or mark
        entry = NetworkStatus(
            name=name,
            interface=iface.name,
            mac=iface.mac,
            mtu=iface.mtu,
            default=mark,
            dns=_dns(result.dns),
            device_info=dev,
            gateway=list(gateways),
        )
        entries.append(entry)
        by_index[i] = entry
    for i, ip in enumerate(result.ips):
        if ip.interface is None:
            target = entries[-1] if entries else None
        else:
            target = by_index.get(ip.interface)
        if target is not None:
            target.ips.append(_bare_ip(ip, i))
    return entries


def _gateway_interface_index(ips: Sequence[IPConfig]) -> int:
    for ip in ips:
        if ip.gateway and ip.interface is not None:
            return ip.interface
    return -1


def _dns(dns: DNS | None) -> DNSStatus:
    if dns is None:
        return DNSStatus()
    return DNSStatus(
        nameservers=list(dns.nameservers),
        domain=dns.domain,
        search=list(dns.search),
        options=list(dns.options),
    )


def _bare_ip(ip: IPConfig, index: int) -> str:
    """The address without its prefix length, printed as Go's ``net.IP.String()``."""
    return canonical_cidr(ip.address, f"ips[{index}].address").partition("/")[0]


def _default_gateways(routes: Sequence[Route]) -> list[str]:
    """Gateways of routes to 0.0.0.0, ::, or no destination (``isDefaultRoute`` in Go).

    libcni keeps the destination's address as written (not masked) and Go compares only that
    address, so ``0.0.0.0/8`` counts as a default route and ``0.0.0.5/0`` does not. A route
    without a gateway gives ``<nil>``.
    """
    gateways = []
    for i, route in enumerate(routes):
        if not route.dst or _is_zero_address(canonical_cidr(route.dst, f"routes[{i}].dst")):
            gateways.append(canonical_ip(route.gw or "", f"routes[{i}].gw") or NIL_IP)
    return gateways


def _is_zero_address(cidr: str) -> bool:
    return int(ipaddress.ip_address(cidr.partition("/")[0])) == 0


def render_network_status(entries: Sequence[NetworkStatus]) -> str:
    """The annotation value: each entry indented by 4 spaces, joined with "," inside [ ]."""
    return "[" + ",".join(gojson.marshal_indent(e).decode() for e in entries) + "]"


_status_decoder = msgspec.json.Decoder(list[NetworkStatus])


def parse_network_status(value: str) -> list[NetworkStatus]:
    """Read an annotation back (ours or one Go Multus wrote)."""
    limits.check_json(value, field=STATUS_ANNOTATION, max_bytes=limits.MAX_ANNOTATION_BYTES)
    try:
        return _status_decoder.decode(value.encode("utf-8", "surrogatepass"))
    except (
        msgspec.DecodeError,
        msgspec.ValidationError,
        UnicodeEncodeError,
        UnicodeDecodeError,
    ) as err:
        raise DecodeError(
            f"{STATUS_ANNOTATION}: invalid network-status: {err}", field=STATUS_ANNOTATION
        ) from err
