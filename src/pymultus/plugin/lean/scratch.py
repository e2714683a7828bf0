"""The delegate cache ``<cniDir>/<containerID>`` (``core.scratch``, with ``core.delegate``'s
Go views of each config): written atomically by ADD, read back and removed by DEL, byte for
byte as the full path does; and DEL's removal of the attachment record (``core.record``; the
thin plugin never writes one).
"""

from __future__ import annotations

import binascii

from pymultus.plugin.lean import addrs, js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.cnicache import write_atomic
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.model import Delegate
from pymultus.plugin.lean.quirks import exact_keys, folded, go_keeps, has_surrogate
from pymultus.plugin.lean.request import MAX_CONFIG_BYTES, valid_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

RECORD_SUBDIR = "pymultus-records"
_EMPTY_CONF = b'{"ipam":{}}'
_EMPTY_LIST = b"{}"
_CONF_KEYS = (
    "cniVersion",
    "name",
    "type",
    "capabilities",
    "ipam",
    "dns",
    "prevResult",
    "cni.dev/valid-attachments",
)
_LIST_KEYS = ("cniVersion", "name", "disableCheck", "disableGC", "plugins")
_DNS_LISTS = ("nameservers", "search", "options")
_CACHE_KEYS = frozenset(
    (
        "Conf",
        "ConfList",
        "Name",
        "ifnameRequest",
        "macRequest",
        "ipRequest",
        "default-route",
        "IsFilterV4Gateway",
        "IsFilterV6Gateway",
        "Bytes",
    )
)


_CONF_FOLDED = folded(*_CONF_KEYS)
_LIST_FOLDED = folded(*_LIST_KEYS)
_DNS_FOLDED = folded("nameservers", "domain", "search", "options")
_IPAM_FOLDED = folded("type")
_ATTACHMENT_FOLDED = folded("containerID", "ifname")


def _typed(obj: dict[str, Any], key: str, kind: type) -> Any:
    """``obj[key]`` when present with the JSON type Go wants (None when absent); null or
    another type is the full path's (it keeps the zero value or reports the error)."""
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, kind):
        raise Unhandled(f"{key} is not a {kind.__name__}")
    return value


def _str_list(obj: dict[str, Any], key: str) -> list[str]:
    value = _typed(obj, key, list) or []
    if not all(isinstance(item, str) for item in value):
        raise Unhandled(f"{key} is not a list of strings")
    return value


def conf_view(obj: dict[str, Any]) -> bytes:
    """``scratch.netconf_json(go_netconf(obj))``: libcni's ``PluginConf`` as Go marshals it
    (keys sorted, empty fields and an empty ``dns`` left out, ``ipam`` always there)."""
    exact_keys(obj, _CONF_FOLDED)
    out: dict[str, Any] = {}
    for key in ("cniVersion", "name", "type"):
        if _typed(obj, key, str):
            out[key] = obj[key]
    capabilities = _typed(obj, "capabilities", dict) or {}
    if not all(isinstance(flag, bool) for flag in capabilities.values()):
        raise Unhandled("capabilities is not a map of booleans")
    if capabilities:
        out["capabilities"] = capabilities
    ipam = _typed(obj, "ipam", dict) or {}
    exact_keys(ipam, _IPAM_FOLDED)
    out["ipam"] = {"type": ipam["type"]} if _typed(ipam, "type", str) else {}
    dns = _dns_view(_typed(obj, "dns", dict) or {})
    if dns:
        out["dns"] = dns
    prev = _typed(obj, "prevResult", dict)
    if prev:
        if not go_keeps(prev):
            raise Unhandled("a number Go would rewrite")
        out["prevResult"] = prev
    attachments = _attachments(obj)
    if attachments:
        out["cni.dev/valid-attachments"] = attachments
    return js.sorted_compact(out)


def _dns_view(dns: dict[str, Any]) -> dict[str, Any]:
    exact_keys(dns, _DNS_FOLDED)
    out: dict[str, Any] = {}
    for key in ("nameservers", "domain", "search", "options"):
        value = _str_list(dns, key) if key in _DNS_LISTS else _typed(dns, key, str)
        if value:
            out[key] = value
    return out


def _attachments(obj: dict[str, Any]) -> list[dict[str, str]]:
    items = _typed(obj, "cni.dev/valid-attachments", list) or []
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise Unhandled("cni.dev/valid-attachments holds a non-object")
        exact_keys(item, _ATTACHMENT_FOLDED)
        out.append(
            {"containerID": _typed(item, "containerID", str) or "",
             "ifname": _typed(item, "ifname", str) or ""}
        )  # fmt: skip
    return out


def conflist_view(obj: dict[str, Any]) -> bytes:
    """``scratch.netconflist_json(go_netconflist(obj))``: libcni's ``NetConfList`` in struct
    order, empty fields left out, each plugin as ``conf_view``."""
    exact_keys(obj, _LIST_FOLDED)
    fields: list[tuple[str, bytes]] = []
    for key in ("cniVersion", "name"):
        if _typed(obj, key, str):
            fields.append((key, js.marshal(obj[key])))
    for key in ("disableCheck", "disableGC"):
        if _typed(obj, key, bool):
            fields.append((key, b"true"))
    plugins = _typed(obj, "plugins", list) or []
    if not all(isinstance(plugin, dict) for plugin in plugins):
        raise Unhandled("plugins holds a non-object")
    if plugins:
        fields.append(("plugins", b"[" + b",".join(conf_view(p) for p in plugins) + b"]"))
    return _object(fields)


def _object(fields: Sequence[tuple[str, bytes]]) -> bytes:
    """A compact JSON object of already encoded values, in the given order."""
    return b"{" + b",".join(js.marshal(key) + b":" + value for key, value in fields) + b"}"


def _check_shape(d: Delegate) -> None:
    """What ``load_delegate``/``load_delegate_list`` and libcni's loaders accept, narrowed to
    the plain shapes: a conf with a ``type``, or a list of plugins that each have one; either
    with a network name libcni takes (the full path finds a bad one after writing the cache)."""
    conf = d.conf
    if not isinstance(conf, dict) or not isinstance(d.raw, bytes) or not d.raw:
        raise Unhandled("a delegate without config bytes")
    if b"\\u" in d.raw and has_surrogate(conf):
        raise Unhandled("a lone surrogate in the config")
    if not valid_name(_typed(conf, "name", str) or ""):
        raise Unhandled("a network name libcni refuses")
    if not d.is_list:
        if d.list_only or "plugins" in conf or not _typed(conf, "type", str):
            raise Unhandled("a single config without a type")
        return
    plugins = _typed(conf, "plugins", list)
    if not plugins or "type" in conf:
        raise Unhandled("a list without plugins")
    for plugin in plugins:
        if not isinstance(plugin, dict) or not _typed(plugin, "type", str):
            raise Unhandled("a plugin without a type")


def _requests(d: Delegate) -> list[tuple[str, bytes]]:
    """The request keys of a cache entry, omitted when empty (``default-route`` kept when it
    is an empty list), addresses of ``default-route`` as Go's ``net.IP`` prints them."""
    fields: list[tuple[str, bytes]] = []
    for key, value in (("ifnameRequest", d.ifname_request), ("macRequest", d.mac_request)):
        if not isinstance(value, str):
            raise Unhandled(f"{key} is not a string")
        if value:
            fields.append((key, js.marshal(value)))
    ips, route = d.ip_requests, d.default_route
    if not isinstance(ips, tuple) or not all(isinstance(ip, str) for ip in ips):
        raise Unhandled("ipRequest is not a list of strings")
    if ips:
        fields.append(("ipRequest", js.marshal(list(ips))))
    if route is not None:
        if not isinstance(route, tuple) or not all(isinstance(ip, str) for ip in route):
            raise Unhandled("default-route is not a list of strings")
        texts = [addrs.ip_text(ip) for ip in route]
        if None in texts:
            raise Unhandled("default-route holds a non-address")
        fields.append(("default-route", js.marshal(texts)))
    return fields


def _entry(d: Delegate) -> bytes:
    """One ``DelegateNetConf`` as Go marshals it (``scratch._entry``)."""
    _check_shape(d)
    if not isinstance(d.name, str):
        raise Unhandled("a delegate name that is not a string")
    conf = _EMPTY_CONF if d.list_only else conf_view(d.conf)
    conflist = conflist_view(d.conf) if d.is_list else _EMPTY_LIST
    fields = [("Conf", conf), ("ConfList", conflist), ("Name", js.marshal(d.name))]
    fields += _requests(d)
    fields += [("IsFilterV4Gateway", b"false"), ("IsFilterV6Gateway", b"false")]
    fields.append(("Bytes", b'"' + binascii.b2a_base64(d.raw, newline=False) + b'"'))
    return _object(fields)


def check_delegate(d: Delegate) -> None:
    """``Unhandled`` unless the lean path writes this delegate's cache entry exactly as the
    full path does: a plain conf (a ``type``) or conflist (a ``name`` and typed plugins) whose
    Go view keys are spelled exactly and typed as Go wants them (no nulls), whose
    ``prevResult`` holds no float or integer past 2^53, and whose ``default-route`` entries
    are addresses. Call it for every delegate before anything is written or run."""
    _entry(d)


def encode_delegates(delegates: Sequence[Delegate]) -> bytes:
    """``scratch.encode_delegates``: the cache file's bytes (no trailing newline);
    ``Unhandled`` as ``check_delegate``."""
    return b"[" + b",".join(_entry(d) for d in delegates) + b"]"


def check_container_id(container_id: str) -> None:
    """``Unhandled`` for a container id libcni refuses (the full path reports it)."""
    if not container_id or not valid_name(container_id):
        raise Unhandled("a container id libcni refuses")


def _checked_id(container_id: str) -> str:
    """``cni.env.validate_container_id`` as an error after a side effect."""
    if not container_id:
        raise LeanError(3, "missing containerID")
    if not valid_name(container_id):
        raise LeanError(4, "invalid characters in containerID", container_id)
    return container_id


def cache_path(cni_dir: str, container_id: str) -> str:
    """``scratch.cache_path``: ``<cniDir>/<containerID>`` (``LeanError`` for a bad id)."""
    return os.path.join(cni_dir, _checked_id(container_id))


def save(cni_dir: str, container_id: str, delegates: Sequence[Delegate]) -> None:
    """``scratch.save``: the cache written atomically, file 0600, directory 0700 when
    created. ``Unhandled`` (nothing written) for a delegate ``check_delegate`` refuses or a
    bad container id; ``LeanError`` (code 5, the full path's message) when the write fails."""
    check_container_id(container_id)
    write(cni_dir, container_id, encode_delegates(delegates))


def write(cni_dir: str, container_id: str, data: bytes) -> None:
    """The encoded cache (``encode_delegates``) written as ``save`` writes it; the container
    id must have passed ``check_container_id``."""
    path = cache_path(cni_dir, container_id)
    try:
        os.makedirs(cni_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise LeanError(5, f"cannot create {cni_dir}: {exc.strerror or exc}") from None
    write_atomic(path, data)


def load(cni_dir: str, container_id: str) -> list[Delegate] | None:
    """``scratch.load``: the cached delegates, None when there is no cache file.

    Only a file the lean path would have written byte for byte is read (each entry with
    ``Bytes`` and only the keys the lean path writes, its config a plain one); anything else
    (unreadable, corrupt, Go's gateway filters, device IDs, an older writer's file) raises
    ``Unhandled``: the full path's DEL then deals with it."""
    check_container_id(container_id)
    path = os.path.join(cni_dir, container_id)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unhandled(f"cannot read the delegate cache: {exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise Unhandled("delegate cache too large")
    items = js.loads(data)
    if not isinstance(items, list):
        raise Unhandled("the delegate cache is not a list")
    delegates = [_cached_delegate(item) for item in items]
    if encode_delegates(delegates) != data:
        raise Unhandled("the delegate cache is not as the lean path writes it")
    return delegates


def _cached_delegate(entry: Any) -> Delegate:
    """One entry as ``scratch._delegate`` reads it; ``load`` then checks that writing the
    result again gives the same bytes, so no field can be read otherwise than there."""
    if not isinstance(entry, dict) or not _CACHE_KEYS.issuperset(entry):
        raise Unhandled("a cache entry with keys the lean path does not write")
    strings = [entry.get(k, "") for k in ("Name", "ifnameRequest", "macRequest", "Bytes")]
    conf_list = entry.get("ConfList")
    if not all(isinstance(s, str) for s in strings) or not isinstance(conf_list, dict):
        raise Unhandled("a cache entry of unexpected types")
    if entry.get("IsFilterV4Gateway") is not False or entry.get("IsFilterV6Gateway") is not False:
        raise Unhandled("a cache entry with gateway filters")
    name, ifname, mac, encoded = strings
    try:
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise Unhandled("Bytes is not base64") from None
    is_list = bool(conf_list.get("plugins"))
    route = entry.get("default-route")
    return Delegate(
        raw,
        js.loads_object(raw),
        name,
        is_list=is_list,
        list_only=is_list and entry.get("Conf") == {"ipam": {}},
        ifname_request=ifname,
        mac_request=mac,
        ip_requests=_cached_list(entry.get("ipRequest", [])),
        default_route=None if route is None else _cached_list(route),
    )


def _cached_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Unhandled("a cached list that is not of strings")
    return tuple(value)


def remove(cni_dir: str, container_id: str) -> None:
    """``scratch.remove``: a file already gone is fine; ``LeanError`` (code 5) otherwise."""
    path = cache_path(cni_dir, container_id)
    exc = _unlink(path)
    if exc is not None:
        raise LeanError(5, f"cannot remove delegate cache {path}: {exc.strerror or exc}")


def _unlink(path: str) -> OSError | None:
    """``os.unlink``'s error, but for a file already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc
    return None


def record_path(cni_dir: str, container_id: str) -> str:
    """``record.record_path``: ``<cniDir>/pymultus-records/<containerID>.json``."""
    return os.path.join(cni_dir, RECORD_SUBDIR, _checked_id(container_id) + ".json")


def record_remove(cni_dir: str, container_id: str) -> None:
    """``record.remove`` (DEL's last step; the thin plugin never writes a record, its
    ``Deps.keep_records`` is False). Only a missing file is ignored there: any other OS error
    reaches the plugin's boundary as an internal error (code 999), and so it does here."""
    exc = _unlink(record_path(cni_dir, container_id))
    if exc is not None:
        raise LeanError(999, f"internal error: {type(exc).__name__}: {exc}")
