"""The network-selection annotations: ``k8s.v1.cni.cncf.io/networks`` and the default-network one.

Both forms Go Multus reads are accepted: a comma list (``ns/name@ifname, other``) and a JSON
array of objects. The value is JSON when it holds any ``[``, ``{`` or ``"`` anywhere, as in Go.

Unlike Go Multus, which checks some fields here and leaves others to fail later (an empty name
at the NAD lookup, a bad interface name inside libcni after earlier delegates already ran), every
field is validated before this module returns: the core calls it before any delegate runs, so a
bad annotation never leaves half a pod behind. Each error names the annotation, the element
index and the field, e.g. ``k8s.v1.cni.cncf.io/networks[1].mac``, in both the message and
``field=``.

JSON keys match case-insensitively when there is no exact match, and ``null`` counts as "not
given", because that is how Go's ``encoding/json`` fills the struct Multus decodes into.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from pymultus.cni import limits
from pymultus.cni.env import validate_ifname
from pymultus.cni.errors import InvalidConfigError, InvalidEnvironmentError
from pymultus.cni.result import canonical_ip
from pymultus.k8s.objects import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Go's unicode.IsSpace: what strings.TrimSpace strips from comma-list items.
GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)
_INT64 = (-(2**63), 2**63 - 1)

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(_LABEL)
_SUBDOMAIN_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_MAX_LABEL = 63  # namespaces are DNS-1123 labels
_MAX_SUBDOMAIN = 253  # object names are DNS-1123 subdomains
_HEX2 = "[0-9a-fA-F]{2}"
_HEX4 = "[0-9a-fA-F]{4}"
_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})


class PortMapping(msgspec.Struct, frozen=True, omit_defaults=True):
    """One ``portMappings`` entry, encoded as Go's ``PortMapEntry`` (ports always, rest if set)."""

    hostPort: int
    containerPort: int
    protocol: str = ""
    hostIP: str = ""


class Bandwidth(msgspec.Struct, frozen=True):
    """The ``bandwidth`` request; like Go's ``BandwidthEntry`` every field is always encoded."""

    ingressRate: int = 0
    ingressBurst: int = 0
    egressRate: int = 0
    egressBurst: int = 0


@dataclass(frozen=True)
class NetworkSelection:
    """One validated element of a selection annotation, its namespace already filled in.

    ``ips`` and ``mac`` keep the annotation's spelling (Go forwards the strings as given);
    ``default_route`` holds gateways in Go's canonical ``net.IP`` form (it is ``[]net.IP`` in Go),
    ``None`` when the key was absent and ``()`` when it was an empty list.
    """

    name: str
    namespace: str
    interface: str = ""
    ips: tuple[str, ...] = ()
    mac: str = ""
    infiniband_guid: str = ""
    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: Bandwidth | None = None
    cni_args: Mapping[str, Any] | None = None
    default_route: tuple[str, ...] | None = None
    device_id: str = ""


# --------------------------------------------------------------------------- value checks


def _parse_ip(text: str) -> IPAddress | None:
    """Go's ``net.ParseIP``: dotted IPv4 without leading zeros or IPv6, no zone; else None."""
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_ip_or_cidr(text: str) -> bool:
    """What Multus accepts in ``ips``: ``net.ParseCIDR`` when there is a "/", else ``ParseIP``."""
    addr, slash, prefix = text.partition("/")
    parsed = _parse_ip(addr)
    if parsed is None:
        return False
    if not slash:
        return True
    return prefix.isascii() and prefix.isdigit() and int(prefix) <= parsed.max_prefixlen


def is_valid_mac(text: str) -> bool:
    """Go's ``net.ParseMAC``: 6, 8 or 20 bytes as ``aa:bb..``, ``aa-bb..`` or ``aabb.ccdd..``."""
    if len(text) < 14:
        return False
    if text[2] in ":-":
        sep = re.escape(text[2])
        return any(re.fullmatch(f"{_HEX2}(?:{sep}{_HEX2}){{{n - 1}}}", text) for n in (6, 8, 20))
    return any(re.fullmatch(rf"{_HEX4}(?:\.{_HEX4}){{{n // 2 - 1}}}", text) for n in (6, 8, 20))


def _quote(value: str) -> str:
    return msgspec.json.encode(value).decode()


def _fail(path: str, problem: str) -> InvalidConfigError:
    return InvalidConfigError(f"{path}: {problem}", field=path)


def _check_name(path: str, value: str) -> None:
    if not value:
        raise _fail(path, "is required and must not be empty")
    if len(value) > _MAX_SUBDOMAIN or not _SUBDOMAIN_RE.fullmatch(value):
        raise _fail(
            path,
            f"{_quote(value)} is not a valid object name (lower-case DNS-1123 subdomain: "
            "a-z, 0-9, '-' and '.', starting and ending with a letter or digit)",
        )


def _check_namespace(path: str, value: str) -> None:
    if len(value) > _MAX_LABEL or not _LABEL_RE.fullmatch(value):
        raise _fail(
            path,
            f"{_quote(value)} is not a valid namespace (lower-case DNS-1123 label: a-z, 0-9 "
            "and '-', starting and ending with a letter or digit, at most 63 characters)",
        )


def _check_interface(path: str, value: str) -> None:
    """libcni's ``ValidateInterfaceName``, up front instead of at that delegate's turn."""
    try:
        validate_ifname(value, field=path)
    except InvalidEnvironmentError as err:
        details = f" ({err.details})" if err.details and err.details != value else ""
        raise _fail(path, f"{err.msg}{details}: {_quote(value)}") from err


# --------------------------------------------------------------------------- comma form


def _parse_comma_item(item: str, path: str, namespace: str) -> NetworkSelection:
    """``[namespace/]name[@ifname]``, each part trimmed, as Multus's parsePodNetworkObjectName."""
    item = item.strip(GO_SPACES)
    if not item:
        raise _fail(f"{path}.name", "empty list item: a network name is required")
    slash_parts = item.split("/")
    if len(slash_parts) > 2:
        raise _fail(path, f'{_quote(item)} has more than one "/"')
    ns = slash_parts[0].strip(GO_SPACES) if len(slash_parts) == 2 else ""
    at_parts = slash_parts[-1].split("@")
    if len(at_parts) > 2:
        raise _fail(path, f'{_quote(item)} has more than one "@"')
    name = at_parts[0].strip(GO_SPACES)
    ifname = at_parts[1].strip(GO_SPACES) if len(at_parts) == 2 else ""
    if ns:
        _check_namespace(f"{path}.namespace", ns)
    _check_name(f"{path}.name", name)
    if ifname:
        _check_interface(f"{path}.interface", ifname)
    return NetworkSelection(name=name, namespace=ns or namespace, interface=ifname)


# --------------------------------------------------------------------------- JSON form

_JSON_KEYS = (
    "name",
    "namespace",
    "ips",
    "mac",
    "infiniband-guid",
    "interface",
    "interfaceRequest",
    "portMappings",
    "bandwidth",
    "deviceID",
    "cni-args",
    "default-route",
)
_PORT_KEYS = ("hostPort", "containerPort", "protocol", "hostIP")
_BANDWIDTH_KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")


def _fold_equal(a: str, b: str) -> bool:
    """Go's ``bytes.EqualFold`` on a key: rune by rune, simple case folding."""
    return len(a) == len(b) and all(
        x == y or x.casefold() == y.casefold() for x, y in zip(a, b, strict=True)
    )


def _known_keys(obj: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Map JSON keys onto ``keys`` the way encoding/json does: exact, else case-insensitive.

    Unknown keys are dropped (Go ignores them); ``null`` values are skipped (Go leaves the
    field at its zero value); a later duplicate wins.
    """
    known: dict[str, Any] = {}
    for key, value in obj.items():
        match = key if key in keys else next((k for k in keys if _fold_equal(key, k)), None)
        if match is not None and value is not None:
            known[match] = value
    return known


def _string(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, not {_json_type(value)}")
    return value


def _string_list(path: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _fail(path, f"must be a list of strings, not {_json_type(value)}")
    return [_string(f"{path}[{i}]", item) for i, item in enumerate(value)]


def _integer(path: str, value: Any, low: int = _INT64[0], high: int = _INT64[1]) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(path, f"must be an integer, not {_json_type(value)}")
    if not low <= value <= high:
        raise _fail(path, f"{value} is out of range ({low}..{high})")
    return value


def _object(path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"must be an object, not {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _ips(path: str, value: Any) -> tuple[str, ...]:
    ips = _string_list(path, value)
    for i, ip in enumerate(ips):
        if not is_ip_or_cidr(ip):
            raise _fail(f"{path}[{i}]", f"{_quote(ip)} is not a valid IP address or CIDR")
    return tuple(ips)


def _mac(path: str, value: Any, what: str) -> str:
    mac = _string(path, value)
    if mac and not is_valid_mac(mac):
        raise _fail(path, f"{_quote(mac)} is not a valid {what}")
    return mac


def _gateways(path: str, value: Any) -> tuple[str, ...]:
    gateways = []
    for i, text in enumerate(_string_list(path, value)):
        if _parse_ip(text) is None:
            raise _fail(f"{path}[{i}]", f"{_quote(text)} is not a valid IP address")
        gateways.append(canonical_ip(text, f"{path}[{i}]"))
    return tuple(gateways)


def _port_mapping(path: str, value: Any) -> PortMapping:
    fields = _known_keys(_object(path, value), _PORT_KEYS)
    for key in ("hostPort", "containerPort"):
        if key not in fields:
            raise _fail(f"{path}.{key}", "is required")
    protocol = _string(f"{path}.protocol", fields.get("protocol", ""))
    if protocol and protocol.lower() not in _PROTOCOLS:
        raise _fail(f"{path}.protocol", f"{_quote(protocol)} is not one of TCP, UDP, SCTP")
    host_ip = _string(f"{path}.hostIP", fields.get("hostIP", ""))
    if host_ip and _parse_ip(host_ip) is None:
        raise _fail(f"{path}.hostIP", f"{_quote(host_ip)} is not a valid IP address")
    return PortMapping(
        hostPort=_integer(f"{path}.hostPort", fields["hostPort"], 1, 65535),
        containerPort=_integer(f"{path}.containerPort", fields["containerPort"], 1, 65535),
        protocol=protocol,
        hostIP=host_ip,
    )


def _port_mappings(path: str, value: Any) -> tuple[PortMapping, ...]:
    if not isinstance(value, list):
        raise _fail(path, f"must be a list of objects, not {_json_type(value)}")
    return tuple(_port_mapping(f"{path}[{i}]", item) for i, item in enumerate(value))


def _bandwidth(path: str, value: Any) -> Bandwidth:
    fields = _known_keys(_object(path, value), _BANDWIDTH_KEYS)
    rates = {key: _integer(f"{path}.{key}", fields.get(key, 0), 0) for key in _BANDWIDTH_KEYS}
    return Bandwidth(**rates)


def _json_element(path: str, value: Any, namespace: str) -> NetworkSelection:
    """One JSON array element, every field type- and value-checked."""
    f = _known_keys(_object(path, value), _JSON_KEYS)
    name = _string(f"{path}.name", f.get("name", ""))
    _check_name(f"{path}.name", name)
    ns = _string(f"{path}.namespace", f.get("namespace", ""))
    if ns:
        _check_namespace(f"{path}.namespace", ns)
    interface = _string(f"{path}.interface", f.get("interface", ""))
    if interface:
        _check_interface(f"{path}.interface", interface)
    else:  # the pre-3.2 alias, used only when "interface" is empty
        interface = _string(f"{path}.interfaceRequest", f.get("interfaceRequest", ""))
        if interface:
            _check_interface(f"{path}.interfaceRequest", interface)
    return NetworkSelection(
        name=name,
        namespace=ns or namespace,
        interface=interface,
        ips=_ips(f"{path}.ips", f["ips"]) if "ips" in f else (),
        mac=_mac(f"{path}.mac", f.get("mac", ""), "MAC address"),
        infiniband_guid=_mac(f"{path}.infiniband-guid", f.get("infiniband-guid", ""), "GUID"),
        port_mappings=_port_mappings(f"{path}.portMappings", f.get("portMappings", [])),
        bandwidth=_bandwidth(f"{path}.bandwidth", f["bandwidth"]) if "bandwidth" in f else None,
        cni_args=_object(f"{path}.cni-args", f["cni-args"]) if "cni-args" in f else None,
        default_route=(
            _gateways(f"{path}.default-route", f["default-route"]) if "default-route" in f else None
        ),
        device_id=_string(f"{path}.deviceID", f.get("deviceID", "")),
    )


def _decode_json_list(annotation: str, value: str) -> list[Any]:
    try:
        decoded = msgspec.json.decode(value.encode("utf-8", "surrogatepass"))
    except (
        msgspec.DecodeError,
        msgspec.ValidationError,
        UnicodeEncodeError,
        UnicodeDecodeError,
    ) as err:
        raise _fail(annotation, f"is not valid JSON: {err}") from err
    if not isinstance(decoded, list):
        raise _fail(annotation, f"must be a JSON list of objects, not {_json_type(decoded)}")
    return decoded


# --------------------------------------------------------------------------- public API


def _parse(annotation: str, value: str, namespace: str) -> list[NetworkSelection]:
    limits.check_json(value, field=annotation, max_bytes=limits.MAX_ANNOTATION_BYTES)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # lone surrogates: JSON escapes no Kubernetes writes
        raise _fail(annotation, f"is not valid UTF-8 at character {err.start}") from None
    if any(ch in value for ch in '[{"'):
        items = _decode_json_list(annotation, value)
        selections = [
            _json_element(f"{annotation}[{i}]", item, namespace) for i, item in enumerate(items)
        ]
    else:
        selections = [
            _parse_comma_item(item, f"{annotation}[{i}]", namespace)
            for i, item in enumerate(value.split(","))
        ]
    _check_unique_interfaces(annotation, selections)
    return selections


def _check_unique_interfaces(annotation: str, selections: Sequence[NetworkSelection]) -> None:
    """Two explicit requests for one name would fail at the second ADD; refuse it up front."""
    seen: dict[str, int] = {}
    for i, sel in enumerate(selections):
        if sel.interface in seen:
            raise _fail(
                f"{annotation}[{i}].interface",
                f"interface name {_quote(sel.interface)} is already requested by "
                f"{annotation}[{seen[sel.interface]}]",
            )
        if sel.interface:
            seen[sel.interface] = i


def parse_networks_annotation(value: str, pod_namespace: str) -> list[NetworkSelection]:
    """Parse ``k8s.v1.cni.cncf.io/networks``; an empty value means no secondary networks."""
    if value == "":
        return []
    return _parse(NETWORKS_ANNOTATION, value, pod_namespace)


def parse_default_network_annotation(value: str, multus_namespace: str) -> NetworkSelection:
    """Parse ``v1.multus-cni.io/default-network``: exactly one network, namespace defaulting
    to Multus's own (the cluster network's NAD lives there)."""
    if value == "":
        raise _fail(DEFAULT_NETWORK_ANNOTATION, "is empty: it must name exactly one network")
    selections = _parse(DEFAULT_NETWORK_ANNOTATION, value, multus_namespace)
    if len(selections) != 1:
        raise _fail(
            DEFAULT_NETWORK_ANNOTATION,
            f"must name exactly one network, it names {len(selections)}",
        )
    return selections[0]


def check_gateways(
    selections: Iterable[NetworkSelection], annotation: str = NETWORKS_ANNOTATION
) -> None:
    """At most one IPv4 and one IPv6 ``default-route`` gateway across all selections.

    Multus's ``CheckGatewayConfig``: an IPv4-mapped IPv6 address counts as IPv4, as ``To4()``
    says in Go. The error names the element that brought the second gateway of a family.
    """
    first: dict[int, tuple[int, str]] = {}
    for i, sel in enumerate(selections):
        for gateway in sel.default_route or ():
            family = 6 if ":" in gateway else 4  # canonical text: IPv4-mapped is dotted
            if family in first:
                where, other = first[family]
                path = f"{annotation}[{i}].default-route"
                raise _fail(
                    path,
                    f"multus does not support ECMP for default-route: IPv{family} gateway "
                    f"{gateway} given after {other} (in {annotation}[{where}])",
                )
            first[family] = (i, gateway)
