"""CNI results as ``cni.result`` and ``cni.convert`` see them: a decoded result checked and
canonicalised (``parse_object``: ``parse_result``'s checks), converted between spec versions
(``convert``), encoded (``encode_result``). ``output`` reads a plugin's bytes into one.

A result here is a plain dict shaped as ``msgspec.to_builtins`` of the full path's Struct:
keys in struct order, default values left out. Its ``cniVersion`` names its type (absent only
for a 0.1.0 result). Every address is in the full path's canonical text (``addrs``).
"""

from __future__ import annotations

from pymultus.plugin.lean import addrs, js
from pymultus.plugin.lean.errors import LeanError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Result = dict[str, Any]

ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
#: Spec version -> result family (``cni.result.Family``).
FAMILY = {
    "0.1.0": "0.2",
    "0.2.0": "0.2",
    "0.3.0": "0.4",
    "0.3.1": "0.4",
    "0.4.0": "0.4",
    "1.0.0": "1.0",
    "1.1.0": "1.1",
}

# ================================================================ parsing

# A field's kind: "s" str, "s?" str|null, "i" int, "i?" int|null; ("l", kind) a list;
# ("o", fields) an object, ("o?", fields) an object or null. A "!" after a name: required.
_DNS = (
    ("nameservers", ("l", "s")),
    ("domain", "s"),
    ("search", ("l", "s")),
    ("options", ("l", "s")),
)
_ROUTE = (
    ("dst!", "s"),
    ("gw", "s?"),
    ("mtu", "i"),
    ("advmss", "i"),
    ("priority", "i"),
    ("table", "i?"),
    ("scope", "i?"),
)
_IFACE_1X = (
    ("name!", "s"),
    ("mac", "s"),
    ("mtu", "i"),
    ("sandbox", "s"),
    ("socketPath", "s"),
    ("pciID", "s"),
)
_IP_1X = (("interface", "i?"), ("address", "s"), ("gateway", "s"))
_IFACE_040 = (("name!", "s"), ("mac", "s"), ("sandbox", "s"))
_IP_040 = (("version", "s"), ("interface", "i?"), ("address", "s"), ("gateway", "s"))
_IP_020 = (("ip!", "s"), ("gateway", "s"), ("routes", ("l", ("o", _ROUTE))))
_SCHEMAS: dict[str, Any] = {
    "1.x": (
        ("cniVersion", "s"),
        ("interfaces", ("l", ("o", _IFACE_1X))),
        ("ips", ("l", ("o", _IP_1X))),
        ("routes", ("l", ("o", _ROUTE))),
        ("dns", ("o?", _DNS)),
    ),
    "0.4": (
        ("cniVersion", "s"),
        ("interfaces", ("l", ("o", _IFACE_040))),
        ("ips", ("l", ("o", _IP_040))),
        ("routes", ("l", ("o", _ROUTE))),
        ("dns", ("o", _DNS)),
    ),
    "0.2": (
        ("cniVersion", "s"),
        ("ip4", ("o?", _IP_020)),
        ("ip6", ("o?", _IP_020)),
        ("dns", ("o", _DNS)),
    ),
}
_EXPECTED = {"s": "str", "s?": "str | null", "i": "int", "i?": "int | null"}
_DEFAULTS: dict[Any, Any] = {"s": "", "s?": None, "i": 0, "i?": None}
_OUT_OF_RANGE = "out of range"


class _Invalid(Exception):
    """A msgspec validation error: its text and where (``$.ips[0].address``)."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self.text = text if path == "$" else f"{text} - at `{path}`"


def _json_kind(value: Any) -> str:
    """msgspec's name for a JSON value's type; integers beyond 64 bits are floats to it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        if -(2**63) <= value < 2**64:
            return "int"
        try:
            return "float" if float(value) not in (float("inf"), float("-inf")) else _OUT_OF_RANGE
        except OverflowError:
            return _OUT_OF_RANGE
    if isinstance(value, float):
        return "float" if value not in (float("inf"), float("-inf")) else _OUT_OF_RANGE
    if isinstance(value, str):
        return "str"
    return "array" if isinstance(value, list) else "object"


def _mismatch(expected: str, value: Any, path: str) -> _Invalid:
    kind = _json_kind(value)
    if kind == _OUT_OF_RANGE:
        return _Invalid("Number out of range", path)
    return _Invalid(f"Expected `{expected}`, got `{kind}`", path)


def _value(value: Any, kind: Any, path: str) -> Any:
    """``value`` checked as msgspec decodes a field of ``kind``."""
    if isinstance(kind, str):
        nullable = kind.endswith("?")
        if value is None and nullable:
            return None
        want = int if kind[0] == "i" else str
        if isinstance(value, want) and not isinstance(value, bool):
            return value
        raise _mismatch(_EXPECTED[kind], value, path)
    shape, inner = kind
    if shape == "l":
        if not isinstance(value, list):
            raise _mismatch("array", value, path)
        return [_value(item, inner, f"{path}[{i}]") for i, item in enumerate(value)]
    if value is None and shape == "o?":
        return None
    if not isinstance(value, dict):
        raise _mismatch("object | null" if shape == "o?" else "object", value, path)
    return _struct(value, inner, path)


def _struct(obj: dict[str, Any], fields: tuple[tuple[str, Any], ...], path: str) -> Result:
    """An object decoded into a Struct (unknown keys ignored, in document order), then
    ``to_builtins`` with ``omit_defaults``: struct order, defaults left out (a Struct-valued
    field with a default, ``dns`` of the 0.x results, is always written)."""
    kinds = {name.rstrip("!"): kind for name, kind in fields}
    found = {key: _value(value, kinds[key], f"{path}.{key}") for key, value in obj.items()
             if key in kinds}  # fmt: skip
    out: Result = {}
    for name, kind in fields:
        key = name.rstrip("!")
        if key not in found:
            if name.endswith("!"):
                raise _Invalid(f"Object missing required field `{key}`", path)
            if kind[0] == "o":  # ("o", ...): the Struct default
                out[key] = {}
            continue
        value = found[key]
        if name.endswith("!") or not _is_default(value, kind):
            out[key] = value
    return out


def _is_default(value: Any, kind: Any) -> bool:
    if isinstance(kind, str):
        default = _DEFAULTS[kind]
        return value is None if default is None else bool(value == default)
    if kind[0] == "l":
        return not value
    return value is None  # "o?" (None) or "o" (never None)


def require_known(version: str) -> str:
    """``cni.version.require_known``: ``LeanError`` code 1 for a version not spoken."""
    if (version or "0.1.0") not in FAMILY:
        raise LeanError(
            1, f"unsupported CNI version {version!r}; supported: {', '.join(ALL_VERSIONS)}"
        )
    return version or "0.1.0"


def parse_object(obj: Any, version: str | None) -> Result:
    """``parse_result`` of a document ``js`` decoded already (a cached result): msgspec's
    two decodes (the version peek, then the typed one), then the addresses."""
    try:
        return _checked(obj, version)
    except _Invalid as exc:
        raise LeanError(6, f"invalid CNI result: {exc.text}") from None


def _checked(obj: Any, version: str | None) -> Result:
    if not isinstance(obj, dict):
        raise _mismatch("object", obj, "$")
    own = _value(obj.get("cniVersion", ""), "s", "$.cniVersion") if "cniVersion" in obj else ""
    chosen = own or version or ""
    family = FAMILY[require_known(chosen)]
    result = _struct(obj, _SCHEMAS["1.x" if family[0] == "1" else family], "$")
    if not own and version:
        result = {"cniVersion": require_known(version), **result}
    _canonicalize(result, family)
    return result


def _canonicalize(result: Result, family: str) -> None:
    """``cni.result._canonicalize``: addresses in Go's text; an empty 1.x ``dns`` dropped."""
    if family == "0.2":
        for key, want in (("ip4", "4"), ("ip6", "6")):
            ipc = result.get(key)
            if ipc is not None:
                ipc["ip"] = addrs.canonical_cidr(ipc["ip"], f"{key}.ip")
                if addrs.family(ipc["ip"]) != want:
                    raise addrs.result_error(
                        f"{key}.ip", f"{ipc['ip']} is not an IPv{want} address"
                    )
                _canonical_gateway(ipc, f"{key}.gateway")
                _canonical_routes(ipc.get("routes", []), f"{key}.routes")
        return
    ips = result.get("ips", [])
    for i, ipc in enumerate(ips):
        ipc["address"] = addrs.canonical_cidr(ipc.get("address", ""), f"ips[{i}].address")
        _canonical_gateway(ipc, f"ips[{i}].gateway")
    _canonical_routes(result.get("routes", []), "routes")
    if family == "0.4":
        if ips:
            result["ips"] = [_with_ip_version(ipc, i) for i, ipc in enumerate(ips)]
    elif result.get("dns") == {}:
        del result["dns"]


def _canonical_gateway(ipc: Result, field: str) -> None:
    if "gateway" in ipc:
        ipc["gateway"] = addrs.canonical_ip(ipc["gateway"], field)


def _canonical_routes(routes: list[Result], path: str) -> None:
    for i, route in enumerate(routes):
        route["dst"] = addrs.canonical_cidr(route["dst"], f"{path}[{i}].dst")
        if "gw" in route:
            gw = addrs.canonical_ip(route["gw"], f"{path}[{i}].gw")
            if gw:
                route["gw"] = gw
            else:
                del route["gw"]


def _with_ip_version(ipc: Result, i: int) -> Result:
    """``cni.result._check_versions``: a missing ``version`` comes from the address."""
    version = ipc.get("version", "")
    if not version:
        return {"version": addrs.family(ipc["address"]), **ipc}
    if version not in ("4", "6"):
        raise addrs.result_error(f"ips[{i}].version", f'must be "4" or "6", not {version!r}')
    if version != addrs.family(ipc["address"]):
        raise addrs.result_error(
            f"ips[{i}].version", f"{version!r} does not match {ipc['address']}"
        )
    return ipc


# ================================================================ conversion


def result_version(result: Result) -> str:
    """``cni.result.result_version`` of a parsed or converted result."""
    return result.get("cniVersion") or "0.1.0"


def _family(result: Result) -> str:
    return FAMILY[result_version(result)]


_CHAIN = ("0.2", "0.4", "1.0", "1.1")
_CANONICAL_VERSION = {"0.2": "0.2.0", "0.4": "0.4.0", "1.0": "1.0.0", "1.1": "1.1.0"}


def convert(result: Result, to_version: str) -> Result:
    """``cni.convert.convert``: ``result`` in spec version ``to_version``, along libcni's
    chain 0.2 - 0.4 - 1.0 - 1.1. ``LeanError`` code 1 for an unknown version or for a result
    without addresses going to 0.1.0/0.2.0."""
    to_version = require_known(to_version)
    source, target = _family(result), FAMILY[to_version]
    if result.get("cniVersion", "") == to_version:
        return result
    if source == target:
        return _with_version(result, to_version)
    i, j = _CHAIN.index(source), _CHAIN.index(target)
    step = 1 if j > i else -1
    for k in range(i, j, step):
        to = _CHAIN[k + step]
        result = _STEPS[(_CHAIN[k], to)](
            result, to_version if to == target else _CANONICAL_VERSION[to]
        )
    return result


def to_current(result: Result) -> Result:
    """``cni.convert.to_current``: a 1.x result as it is, any other converted to 1.0.0."""
    return result if _family(result)[0] == "1" else convert(result, "1.0.0")


def _with_version(result: Result, version: str) -> Result:
    return {"cniVersion": version, **{k: v for k, v in result.items() if k != "cniVersion"}}


def _legacy_route(route: Result) -> Result:
    """A route as versions before 1.1.0 know it: ``dst`` and ``gw``."""
    return {k: route[k] for k in ("dst", "gw") if k in route}


def _copy_dns(dns: Result | None) -> Result:
    return dict(dns) if dns else {}


def put(out: Result, key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is its field's default ("" or empty list or None)."""
    if value is not None and value not in ("", []):
        out[key] = value


def _020_to_040(result: Result, version: str) -> Result:
    ips: list[Result] = []
    routes: list[Result] = []
    for ip_version, key in (("4", "ip4"), ("6", "ip6")):
        ipc = result.get(key)
        if ipc is not None:
            ip = {"version": ip_version}
            put(ip, "address", ipc["ip"])
            put(ip, "gateway", ipc.get("gateway", ""))
            ips.append(ip)
            routes += [_legacy_route(r) for r in ipc.get("routes", [])]
    out: Result = {"cniVersion": version}
    put(out, "ips", ips)
    put(out, "routes", routes)
    out["dns"] = _copy_dns(result.get("dns"))
    return out


def _040_to_020(result: Result, version: str) -> Result:
    first: dict[str, Result] = {}
    routes: dict[str, list[Result]] = {"4": [], "6": []}
    for ipc in result.get("ips", []):
        if ipc.get("version", "") not in first:
            first[ipc.get("version", "")] = ipc
    if not first:
        raise LeanError(1, f"cannot convert a result without IP addresses to CNI version {version}")
    for route in result.get("routes", []):
        family = addrs.family(route["dst"])
        if family in first:
            routes[family].append(_legacy_route(route))
    out: Result = {"cniVersion": version}
    for family, key in (("4", "ip4"), ("6", "ip6")):
        if family in first:
            ip = {"ip": first[family].get("address", "")}
            put(ip, "gateway", first[family].get("gateway", ""))
            put(ip, "routes", routes[family])
            out[key] = ip
    out["dns"] = _copy_dns(result.get("dns"))
    return out


def _to_100(result: Result, version: str) -> Result:
    """``convert._as_100``: only the fields 1.0.0 has."""
    out: Result = {"cniVersion": version}
    put(out, "interfaces", [_iface(i) for i in result.get("interfaces", [])])
    put(out, "ips", [_ip_1x(i) for i in result.get("ips", [])])
    put(out, "routes", [_legacy_route(r) for r in result.get("routes", [])])
    if result.get("dns"):
        out["dns"] = dict(result["dns"])
    return out


def _100_to_040(result: Result, version: str) -> Result:
    out: Result = {"cniVersion": version}
    put(out, "interfaces", [_iface(i) for i in result.get("interfaces", [])])
    ips = [
        {"version": addrs.family(i.get("address", "")), **_ip_1x(i)} for i in result.get("ips", [])
    ]
    put(out, "ips", ips)
    put(out, "routes", [_legacy_route(r) for r in result.get("routes", [])])
    out["dns"] = _copy_dns(result.get("dns"))
    return out


def _iface(iface: Result) -> Result:
    """An interface with ``name``, ``mac`` and ``sandbox`` only (0.4 and 1.0.0)."""
    return {k: iface[k] for k in ("name", "mac", "sandbox") if k in iface}


def _ip_1x(ipc: Result) -> Result:
    return {k: ipc[k] for k in ("interface", "address", "gateway") if k in ipc}


_STEPS: dict[tuple[str, str], Callable[[Result, str], Result]] = {
    ("0.2", "0.4"): _020_to_040,
    ("0.4", "0.2"): _040_to_020,
    ("0.4", "1.0"): _to_100,
    ("1.0", "0.4"): _100_to_040,
    ("1.0", "1.1"): _with_version,
    ("1.1", "1.0"): _to_100,
}

# ================================================================ encoding


def _sorted(value: Any) -> Any:
    """Keys sorted at every level (Go's map order)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def encode_result(result: Result, *, indent: bool = False, sort_keys: bool | None = None) -> bytes:
    """``cni.result.encode_result``: a 1.x result with keys sorted at every level (libcni's
    ``MarshalJSON`` goes through a map) and without an empty ``dns``, a 0.x one in struct
    order (``sort_keys`` forces either); compact, or indented by 4 spaces."""
    one_x = _family(result)[0] == "1"
    if one_x and result.get("dns") == {}:
        result = {k: v for k, v in result.items() if k != "dns"}
    if sort_keys is None:
        sort_keys = one_x
    if sort_keys:
        result = _sorted(result)
    return js.marshal_indent(result) if indent else js.marshal(result)
