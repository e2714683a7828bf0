"""The delegate cache ``<cniDir>/<containerID>``, byte-compatible with Go Multus (§5.2).

ADD writes the full delegate list before running any delegate; DEL reads it back, so a pod
added by Go Multus can be deleted by pymultus after an upgrade, and back.

Format: Go's ``json.Marshal`` of ``[]*DelegateNetConf``, one object per delegate in order::

    {"Conf":{…},"ConfList":{…},"Name":"ns/nad","ifnameRequest":"…","macRequest":"…",
     "infinibandGUIDRequest":"…","ipRequest":[…],"default-route":[…],
     "IsFilterV4Gateway":false,"IsFilterV6Gateway":false,"deviceID":"…","resourceName":"…",
     "Bytes":"<base64 of the exact delegate config>"}

``Conf`` and ``ConfList`` are libcni's partial views of the bytes (``core.delegate``):
``Conf`` (a ``PluginConf``) marshals its keys sorted and drops an empty ``dns``; ``ConfList``
keeps struct order; both omit empty fields, but ``ipam`` is always there. A single conf has
``"ConfList":{}``; a conflist loaded from a file has ``"Conf":{"ipam":{}}``. The request keys
are omitted when empty; ``default-route`` is kept when it is an empty list. DEL trusts only
``Bytes``; files without it (older writers) get their config rebuilt from the views.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from pymultus.cni import gojson, limits
from pymultus.cni.atomic import write_atomic
from pymultus.cni.env import validate_container_id
from pymultus.cni.errors import DecodeError, InvalidConfigError, IOFailure
from pymultus.cni.netconf import decode_object, go_field, remarshal
from pymultus.config.logging import typed_field
from pymultus.config.multus import object_field, str_list_field
from pymultus.core.delegate import (
    Delegate,
    GoNetConf,
    GoNetConfList,
    go_netconf,
    go_netconflist,
)

_EMPTY_CONF = b'{"ipam":{}}'
_EMPTY_LIST = b"{}"

# ---------------------------------------------------------------- encoding


def encode_delegates(delegates: Sequence[Delegate]) -> bytes:
    """The cache file's bytes, as Go Multus writes them (no trailing newline).

    Raises ``InvalidConfigError`` for a ``default_route`` entry that is not an IP, or a
    ``raw`` Go could not have parsed (never for delegates made by ``load_delegate``).
    """
    return gojson.marshal([_entry(d) for d in delegates])


def _entry(d: Delegate) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Conf": msgspec.Raw(_conf_json(d)),
        "ConfList": msgspec.Raw(_conflist_json(d)),
        "Name": d.name,
    }
    optional = (
        ("ifnameRequest", d.ifname_request),
        ("macRequest", d.mac_request),
        ("infinibandGUIDRequest", d.infiniband_guid_request),
        ("ipRequest", list(d.ip_requests)),
    )
    entry.update((key, value) for key, value in optional if value)
    if d.default_route is not None:
        entry["default-route"] = [go_ip_string(ip) for ip in d.default_route]
    entry["IsFilterV4Gateway"] = d.filter_v4_gateway
    entry["IsFilterV6Gateway"] = d.filter_v6_gateway
    entry.update(
        (k, v) for k, v in (("deviceID", d.device_id), ("resourceName", d.resource_name)) if v
    )
    entry["Bytes"] = base64.b64encode(d.raw).decode("ascii") if d.raw else None
    return entry


def _conf_json(d: Delegate) -> bytes:
    if d.list_only:
        return _EMPTY_CONF
    return netconf_json(go_netconf(decode_object(d.raw, "delegate config")))


def _conflist_json(d: Delegate) -> bytes:
    if not d.is_list:
        return _EMPTY_LIST
    return netconflist_json(go_netconflist(decode_object(d.raw, "delegate config list")))


def netconf_json(conf: GoNetConf) -> bytes:
    """libcni ``PluginConf.MarshalJSON``: omitempty fields, then a round trip through a Go
    map (keys sorted, numbers float64), then ``dns`` dropped when empty."""
    out: dict[str, Any] = {}
    for key, value in (("cniVersion", conf.cni_version), ("name", conf.name), ("type", conf.type)):
        if value:
            out[key] = value
    if conf.capabilities:
        out["capabilities"] = dict(conf.capabilities)
    out["ipam"] = {"type": conf.ipam_type} if conf.ipam_type else {}
    dns = conf.dns
    dns_out = {
        k: v
        for k, v in (
            ("nameservers", list(dns.nameservers)),
            ("domain", dns.domain),
            ("search", list(dns.search)),
            ("options", list(dns.options)),
        )
        if v
    }
    if dns_out:
        out["dns"] = dns_out
    if conf.prev_result:
        out["prevResult"] = dict(conf.prev_result)
    if conf.valid_attachments:
        out["cni.dev/valid-attachments"] = [
            {"containerID": cid, "ifname": ifname} for cid, ifname in conf.valid_attachments
        ]
    return remarshal(out)


def netconflist_json(conflist: GoNetConfList) -> bytes:
    """libcni ``NetConfList`` in struct order, empty fields omitted."""
    out: dict[str, Any] = {}
    if conflist.cni_version:
        out["cniVersion"] = conflist.cni_version
    if conflist.name:
        out["name"] = conflist.name
    if conflist.disable_check:
        out["disableCheck"] = True
    if conflist.disable_gc:
        out["disableGC"] = True
    if conflist.plugins:
        out["plugins"] = [msgspec.Raw(netconf_json(p)) for p in conflist.plugins]
    return gojson.marshal(out)


def go_ip_string(text: str) -> str:
    """An IP as Go's ``net.IP`` prints it (IPv4-mapped IPv6 as dotted quad, IPv6 compressed);
    "" stays "" (a nil IP)."""
    if not text:
        return ""
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise InvalidConfigError(f"invalid IP address {text!r}", field="default-route") from exc
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            raise InvalidConfigError(f"invalid IP address {text!r}", field="default-route")
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
    return str(addr)


# ---------------------------------------------------------------- decoding


def decode_delegates(data: bytes, *, path: str = "") -> list[Delegate]:
    """Everything Go writes (and ``null``, an empty cache). A file that is not such a JSON
    array, or whose entries do not parse, raises ``DecodeError`` ("cache corrupt")."""
    limits.check_json(data, field=path or "delegate cache", error=DecodeError)
    try:
        items = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"delegate cache is not valid JSON: {exc}", path=path or None) from exc
    if items is None:
        return []
    if not isinstance(items, list):
        raise DecodeError("delegate cache must be a JSON array", path=path or None)
    delegates = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidConfigError("entry must be an object", field=f"[{index}]")
            delegates.append(_delegate(item))
        except (InvalidConfigError, DecodeError) as exc:
            raise DecodeError(
                f"delegate cache entry {index} is invalid: {exc.msg}",
                field=exc.field,
                path=path or None,
            ) from exc
    return delegates


def _delegate(entry: Mapping[str, Any]) -> Delegate:
    conf = go_netconf(object_field(entry, "Conf") or {}, "Conf.")
    conflist = go_netconflist(object_field(entry, "ConfList") or {}, "ConfList.")
    is_list = bool(conflist.plugins)
    raw = _bytes(entry) or (netconflist_json(conflist) if is_list else netconf_json(conf))
    _, route = go_field(entry, "default-route")
    return Delegate(
        raw=raw,
        name=typed_field(entry, "Name", str, ""),
        is_list=is_list,
        ifname_request=typed_field(entry, "ifnameRequest", str, ""),
        mac_request=typed_field(entry, "macRequest", str, ""),
        infiniband_guid_request=typed_field(entry, "infinibandGUIDRequest", str, ""),
        ip_requests=str_list_field(entry, "ipRequest", ()),
        default_route=None if route is None else str_list_field(entry, "default-route", ()),
        filter_v4_gateway=typed_field(entry, "IsFilterV4Gateway", bool, False),
        filter_v6_gateway=typed_field(entry, "IsFilterV6Gateway", bool, False),
        device_id=typed_field(entry, "deviceID", str, ""),
        resource_name=typed_field(entry, "resourceName", str, ""),
        list_only=is_list and conf == GoNetConf(),
    )


def _bytes(entry: Mapping[str, Any]) -> bytes:
    """``Bytes``: standard base64 with padding; Go's decoder skips CR and LF."""
    text = typed_field(entry, "Bytes", str, "")
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidConfigError(f"Bytes is not base64: {exc}", field="Bytes") from exc


# ---------------------------------------------------------------- the file


def cache_path(cni_dir: str, container_id: str) -> str:
    """``<cniDir>/<containerID>``; the id is checked so it cannot leave ``cni_dir``."""
    return os.path.join(cni_dir, validate_container_id(container_id))


def save(cni_dir: str, container_id: str, delegates: Sequence[Delegate]) -> None:
    """Write the cache atomically (``cni.atomic``): a reader sees the old file or the whole
    new one, never a torn one. File 0600, directory 0700 when created (configs may hold
    credentials)."""
    path = cache_path(cni_dir, container_id)
    try:
        os.makedirs(cni_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot create {cni_dir}: {exc.strerror or exc}", path=path) from exc
    write_atomic(path, encode_delegates(delegates))


def load(cni_dir: str, container_id: str) -> list[Delegate] | None:
    """The cached delegates, or None when there is no cache file. ``DecodeError`` when the
    file is corrupt, ``IOFailure`` when it cannot be read."""
    path = cache_path(cni_dir, container_id)
    data = read_if_present(path, "delegate cache")
    return None if data is None else decode_delegates(data, path=path)


def read_if_present(path: str, what: str) -> bytes | None:
    """A file's bytes; None when it does not exist, ``IOFailure`` when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IOFailure(f"cannot read {what} {path}: {exc.strerror or exc}", path=path) from exc


def remove(cni_dir: str, container_id: str) -> None:
    """Delete the cache file; a file that is already gone is fine (DEL is idempotent)."""
    path = cache_path(cni_dir, container_id)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise IOFailure(
            f"cannot remove delegate cache {path}: {exc.strerror or exc}", path=path
        ) from exc
