"""CNI results of every spec version: typed msgspec Structs, parsing and Go-exact encoding.

libcni has three result types, and so do we (a *family* is the set of versions one type serves):

=========  ===========================  ===================================================
family     versions                     shape (libcni package)
=========  ===========================  ===================================================
``0.2``    0.1.0, 0.2.0                 ``ip4``/``ip6`` with their own routes (``types/020``)
``0.4``    0.3.0, 0.3.1, 0.4.0          interfaces, ips with ``version`` (``types/040``)
``1.0``    1.0.0                        like 0.4 without ``version`` (``types/100``)
``1.1``    1.1.0                        1.0 plus interface ``mtu``/``socketPath``/``pciID``
                                        and route ``mtu``/``advmss``/``priority``/``table``/
                                        ``scope``
=========  ===========================  ===================================================

Field order and omission follow libcni's Go structs, so encoding a Struct gives the bytes Go
gives: ``dns`` is always written by the 0.x types (``"dns": {}`` when empty) and omitted when
empty by the 1.x type, whose ``MarshalJSON`` goes through a map and therefore sorts keys at every
level. Parsing checks every address the way Go's ``net.ParseCIDR``/``net.ParseIP`` would (and
writes them back in Go's canonical text), so a bad result fails here with a ``DecodeError``
naming the field instead of surprising a later step. Conversion between versions lives in
``pymultus.cni.convert``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypeAlias

import msgspec

from pymultus.cni import gojson, limits
from pymultus.cni.errors import DecodeError, InternalError
from pymultus.cni.version import require_known

# --- the 1.x family (types/100); also the current, "to_current" form ----------------------


class Route(msgspec.Struct, omit_defaults=True):
    """A route. ``gw`` is None when the plugin gave none (Go encodes that nil IP as ``<nil>``).

    Every family uses this type (libcni shares ``types.Route`` too); ``mtu``, ``advmss``,
    ``priority``, ``table`` and ``scope`` exist only from 1.1.0 and conversion to an older
    version drops them.
    """

    dst: str
    gw: str | None = None
    mtu: int = 0
    advmss: int = 0
    priority: int = 0
    table: int | None = None
    scope: int | None = None


class DNS(msgspec.Struct, omit_defaults=True):
    nameservers: list[str] = msgspec.field(default_factory=list)
    domain: str = ""
    search: list[str] = msgspec.field(default_factory=list)
    options: list[str] = msgspec.field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


class Interface(msgspec.Struct, omit_defaults=True):
    name: str
    mac: str = ""
    mtu: int = 0
    sandbox: str = ""
    socketPath: str = ""
    pciID: str = ""


class IPConfig(msgspec.Struct, omit_defaults=True):
    interface: int | None = None
    address: str = ""
    gateway: str = ""


class Result(msgspec.Struct, omit_defaults=True):
    """A 1.0.0/1.1.0 result: the "current" form every older result converts to.

    ``dns`` is None when empty, because Go omits an empty ``dns`` from 1.x results.
    """

    cniVersion: str = ""
    interfaces: list[Interface] = msgspec.field(default_factory=list)
    ips: list[IPConfig] = msgspec.field(default_factory=list)
    routes: list[Route] = msgspec.field(default_factory=list)
    dns: DNS | None = None


# --- the 0.3.0/0.3.1/0.4.0 family (types/040) ---------------------------------------------


class Interface040(msgspec.Struct, omit_defaults=True):
    name: str
    mac: str = ""
    sandbox: str = ""


class IPConfig040(msgspec.Struct, omit_defaults=True):
    """An address; ``version`` is "4" or "6". Some plugins (Debian's loopback at 0.3.x) leave
    it out; parsing then fills it in from the address."""

    version: str = ""
    interface: int | None = None
    address: str = ""
    gateway: str = ""


class Result040(msgspec.Struct, omit_defaults=True):
    cniVersion: str = ""
    interfaces: list[Interface040] = msgspec.field(default_factory=list)
    ips: list[IPConfig040] = msgspec.field(default_factory=list)
    routes: list[Route] = msgspec.field(default_factory=list)
    dns: DNS = msgspec.field(default_factory=DNS)


# --- the 0.1.0/0.2.0 family (types/020) ---------------------------------------------------


class IPConfig020(msgspec.Struct, omit_defaults=True):
    ip: str
    gateway: str = ""
    routes: list[Route] = msgspec.field(default_factory=list)


class Result020(msgspec.Struct, omit_defaults=True):
    """A 0.1.0/0.2.0 result. ``cniVersion`` may be empty: such results predate the field."""

    cniVersion: str = ""
    ip4: IPConfig020 | None = None
    ip6: IPConfig020 | None = None
    dns: DNS = msgspec.field(default_factory=DNS)


AnyResult: TypeAlias = Result | Result040 | Result020


class Family(StrEnum):
    """One result type of libcni and the spec versions it serves."""

    V020 = "0.2"
    V040 = "0.4"
    V100 = "1.0"
    V110 = "1.1"


_FAMILY_OF_VERSION = {
    "0.1.0": Family.V020,
    "0.2.0": Family.V020,
    "0.3.0": Family.V040,
    "0.3.1": Family.V040,
    "0.4.0": Family.V040,
    "1.0.0": Family.V100,
    "1.1.0": Family.V110,
}
_TYPE_OF_FAMILY: dict[Family, type[AnyResult]] = {
    Family.V020: Result020,
    Family.V040: Result040,
    Family.V100: Result,
    Family.V110: Result,
}


def family_of(version: str) -> Family:
    """The family of a spec version; ``IncompatibleVersionError`` for an unknown one."""
    return _FAMILY_OF_VERSION[require_known(version)]


_VERSION_WHEN_UNSET: dict[type[AnyResult], str] = {
    Result020: "0.1.0",
    Result040: "0.4.0",
    Result: "1.1.0",
}


def result_version(result: AnyResult) -> str:
    """The spec version of ``result``.

    An unset ``cniVersion`` means 0.1.0 for a 0.1.0/0.2.0 result (the spec's rule for a
    missing version) and the newest version of its type otherwise (libcni's ``GetAsVersion``).
    """
    return result.cniVersion or _VERSION_WHEN_UNSET[type(result)]


def result_family(result: AnyResult) -> Family:
    """The family of ``result``'s version; ``InternalError`` if its type cannot hold it."""
    family = family_of(result_version(result))
    if not isinstance(result, _TYPE_OF_FAMILY[family]):
        raise InternalError(
            f"a {type(result).__name__} cannot be a CNI {result.cniVersion} result",
            field="cniVersion",
        )
    return family


def has_interfaces_or_ips(result: AnyResult) -> bool:
    """True when the result reports anything attached (Multus skips results that don't)."""
    if isinstance(result, Result020):
        return result.ip4 is not None or result.ip6 is not None
    return bool(result.interfaces or result.ips)


# --- parsing ------------------------------------------------------------------------------


class _Peek(msgspec.Struct):
    cniVersion: str = ""


_PATH_RE = re.compile(r" - at `\$\.?(.*)`$")


def _decode_error(exc: Exception) -> DecodeError:
    text = str(exc)
    match = _PATH_RE.search(text)
    field = match.group(1) if match and match.group(1) else None
    return DecodeError(f"invalid CNI result: {text}", field=field)


def _decode(data: bytes, kind: type[Any]) -> Any:
    limits.check_json(data, field="result", error=DecodeError)
    try:
        return msgspec.json.decode(data, type=kind)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise _decode_error(exc) from exc


def parse_result(data: bytes, version: str | None = None) -> AnyResult:
    """Decode a plugin's result, in the type of its version.

    The JSON's own ``cniVersion`` decides the type, as in libcni's ``invoke``; ``version``
    (the config's version) stands in when the JSON has none, and is then written into the
    result (libcni's ``fixupResultVersion``). Without either the result is 0.1.0.

    Raises ``DecodeError`` (code 6) for bytes that are not a valid result of that version,
    naming the bad field, and ``IncompatibleVersionError`` (code 1) for an unknown version.
    """
    own = _decode(data, _Peek).cniVersion
    chosen = own or version or ""
    family = family_of(chosen)
    result: AnyResult = _decode(data, _TYPE_OF_FAMILY[family])
    if not own and version:
        result.cniVersion = require_known(version)
    _canonicalize(result)
    return result


def _fail(field: str, msg: str) -> DecodeError:
    return DecodeError(f"invalid CNI result: {field}: {msg}", field=field)


def _parse_ip(text: str, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if "%" in text:  # Python takes IPv6 zones, Go's net.ParseIP does not
        raise _fail(field, f"invalid IP address {text!r}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _fail(field, f"invalid IP address {text!r}") from None


def canonical_ip(text: str, field: str) -> str:
    """``text`` as Go's ``net.IP`` prints it ("" stays ""); ``DecodeError`` if not an IP."""
    if not text:
        return ""
    addr = _parse_ip(text, field)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)  # Go prints an IPv4-mapped address in dotted form
    return str(addr)


def canonical_cidr(text: str, field: str) -> str:
    """``text`` ("ip/len", host bits kept) as Go's ``types.IPNet`` prints it.

    IPv4-mapped IPv6 prefixes are refused: Go would print them as an IPv4 address with an
    IPv6 prefix length, which nothing can parse again.
    """
    ip_text, slash, length = text.partition("/")
    if not slash or not length.isascii() or not length.isdigit() or len(length) > 6:
        raise _fail(field, f"invalid CIDR address {text!r}")
    addr = _parse_ip(ip_text, field)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise _fail(field, f"IPv4-mapped IPv6 prefix {text!r} is not supported")
    if int(length) > addr.max_prefixlen:
        raise _fail(field, f"invalid CIDR address {text!r}")
    return f"{addr}/{int(length)}"


def ip_version(cidr: str) -> str:
    """ "4" or "6" for a canonical address or CIDR (what libcni derives from ``To4()``)."""
    return "6" if ":" in cidr else "4"


def _canonical_routes(routes: list[Route], path: str) -> None:
    for i, route in enumerate(routes):
        route.dst = canonical_cidr(route.dst, f"{path}[{i}].dst")
        route.gw = canonical_ip(route.gw or "", f"{path}[{i}].gw") or None


def _canonical_ips(ips: Sequence[IPConfig | IPConfig040]) -> None:
    for i, ipc in enumerate(ips):
        ipc.address = canonical_cidr(ipc.address, f"ips[{i}].address")
        ipc.gateway = canonical_ip(ipc.gateway, f"ips[{i}].gateway")


def _canonical_020(result: Result020) -> None:
    for key, ipc, want in (("ip4", result.ip4, "4"), ("ip6", result.ip6, "6")):
        if ipc is None:
            continue
        ipc.ip = canonical_cidr(ipc.ip, f"{key}.ip")
        if ip_version(ipc.ip) != want:
            raise _fail(f"{key}.ip", f"{ipc.ip} is not an IPv{want} address")
        ipc.gateway = canonical_ip(ipc.gateway, f"{key}.gateway")
        _canonical_routes(ipc.routes, f"{key}.routes")


def _check_versions(ips: list[IPConfig040]) -> None:
    for i, ipc in enumerate(ips):
        if not ipc.version:
            ipc.version = ip_version(ipc.address)
        if ipc.version not in ("4", "6"):
            raise _fail(f"ips[{i}].version", f'must be "4" or "6", not {ipc.version!r}')
        if ipc.version != ip_version(ipc.address):
            raise _fail(f"ips[{i}].version", f"{ipc.version!r} does not match {ipc.address}")


def _canonicalize(result: AnyResult) -> None:
    """Check every address and rewrite it in Go's text; drop an empty 1.x ``dns``."""
    if isinstance(result, Result020):
        _canonical_020(result)
        return
    _canonical_ips(result.ips)
    _canonical_routes(result.routes, "routes")
    if isinstance(result, Result040):
        _check_versions(result.ips)
    elif result.dns is not None and result.dns.is_empty():
        result.dns = None


# --- encoding -----------------------------------------------------------------------------


def encode_result(
    result: AnyResult, *, indent: bool = False, sort_keys: bool | None = None
) -> bytes:
    """The bytes Go writes for ``result``: ``json.Marshal``, or ``MarshalIndent`` (4 spaces).

    ``sort_keys=None`` (the default) does what libcni does: a 1.x result is written with keys
    sorted at every level (its ``MarshalJSON`` goes through a map, as Go Multus's output and the
    libcni cache show), a 0.x result in struct order. ``True``/``False`` force either order,
    e.g. ``True`` for a 0.x result stored in libcni's cache, whose ``result`` is a map.
    """
    if isinstance(result, Result) and result.dns is not None and result.dns.is_empty():
        result = msgspec.structs.replace(result, dns=None)
    if sort_keys is None:
        sort_keys = isinstance(result, Result)
    data = gojson.sorted_compact(result) if sort_keys else gojson.marshal(result)
    return msgspec.json.format(data, indent=4) if indent else data
