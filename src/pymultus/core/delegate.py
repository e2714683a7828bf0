"""One delegate of a Multus call: the exact config bytes plus what the pod asked for.

Also how Go Multus *sees* a delegate config: Go unmarshals the bytes into libcni's
``types.NetConf`` (and ``types.NetConfList`` for a conflist). Those partial views decide
whether a delegate is a conflist and what its name is (``LoadDelegateNetConf``), and they are
written into the delegate cache next to the bytes (``core.scratch``). Plugin-specific keys are
not part of the views; they survive only in ``raw``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import msgspec

from pymultus.cni.errors import InvalidConfigError
from pymultus.cni.netconf import decode_object, go_field
from pymultus.config.logging import typed_field
from pymultus.config.multus import bool_map_field, object_field, str_list_field

#: Parsed configs kept by their bytes (a few hundred bytes each): NADs and files of a node.
PARSED_CACHE = 1024


class Delegate(msgspec.Struct, frozen=True):
    """A delegate as the core runs it and as the delegate cache stores it.

    ``name`` is the status name: ``ns/nad`` for a NAD, the CNI name for files and static
    delegates. ``default_route`` None means "no request"; an empty tuple is the annotation's
    ``"default-route": []`` (Go removes every default route then). ``list_only`` is True when
    Go loaded the conflist with ``LoadDelegateNetConfList`` alone (clusterNetwork or
    defaultNetworks given as a file or directory, the auxiliary chain): its cached ``Conf``
    view is then empty.
    """

    raw: bytes
    name: str
    is_list: bool
    ifname_request: str = ""
    mac_request: str = ""
    infiniband_guid_request: str = ""
    ip_requests: tuple[str, ...] = ()
    default_route: tuple[str, ...] | None = None
    filter_v4_gateway: bool = False
    filter_v6_gateway: bool = False
    device_id: str = ""
    resource_name: str = ""
    list_only: bool = False


# ---------------------------------------------------------------- Go's partial views


class GoDNS(msgspec.Struct, frozen=True):
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


class GoNetConf(msgspec.Struct, frozen=True):
    """libcni ``types.PluginConf`` (alias ``NetConf``): the keys Go parses from any config."""

    cni_version: str = ""
    name: str = ""
    type: str = ""
    capabilities: Mapping[str, bool] = msgspec.field(default_factory=dict)
    ipam_type: str = ""
    dns: GoDNS = GoDNS()
    prev_result: Mapping[str, Any] | None = None
    valid_attachments: tuple[tuple[str, str], ...] = ()  # (containerID, ifname)


class GoNetConfList(msgspec.Struct, frozen=True):
    """libcni ``types.NetConfList``."""

    cni_version: str = ""
    name: str = ""
    disable_check: bool = False
    disable_gc: bool = False
    plugins: tuple[GoNetConf, ...] = ()


def go_netconf(obj: Mapping[str, Any], prefix: str = "") -> GoNetConf:
    """Unmarshal a decoded config into ``types.NetConf`` with Go's rules (keys ignoring case,
    null keeps the zero value, wrong JSON types are errors naming ``prefix + key``)."""
    ipam = object_field(obj, "ipam", prefix) or {}
    dns = object_field(obj, "dns", prefix) or {}
    dns_prefix = f"{prefix}dns."
    return GoNetConf(
        cni_version=typed_field(obj, "cniVersion", str, "", prefix),
        name=typed_field(obj, "name", str, "", prefix),
        type=typed_field(obj, "type", str, "", prefix),
        capabilities=bool_map_field(obj, "capabilities", prefix),
        ipam_type=typed_field(ipam, "type", str, "", f"{prefix}ipam."),
        dns=GoDNS(
            nameservers=str_list_field(dns, "nameservers", (), dns_prefix),
            domain=typed_field(dns, "domain", str, "", dns_prefix),
            search=str_list_field(dns, "search", (), dns_prefix),
            options=str_list_field(dns, "options", (), dns_prefix),
        ),
        prev_result=object_field(obj, "prevResult", prefix),
        valid_attachments=_valid_attachments(obj, prefix),
    )


def go_netconflist(obj: Mapping[str, Any], prefix: str = "") -> GoNetConfList:
    """Unmarshal a decoded config into ``types.NetConfList`` (``disableCheck`` must be a real
    boolean here: Go Multus parses with plain ``encoding/json``, not libcni's lenient reader)."""
    found, plugins = go_field(obj, "plugins")
    where = f"{prefix}plugins"
    if not found or plugins is None:
        plugins = []
    if not isinstance(plugins, list):
        raise InvalidConfigError(f"{where} must be a list, got {plugins!r}", field=where)
    views = []
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise InvalidConfigError(
                f"{where}[{index}] must be an object, got {plugin!r}", field=f"{where}[{index}]"
            )
        views.append(go_netconf(plugin, f"{where}[{index}]."))
    return GoNetConfList(
        cni_version=typed_field(obj, "cniVersion", str, "", prefix),
        name=typed_field(obj, "name", str, "", prefix),
        disable_check=typed_field(obj, "disableCheck", bool, False, prefix),
        disable_gc=typed_field(obj, "disableGC", bool, False, prefix),
        plugins=tuple(views),
    )


def _valid_attachments(obj: Mapping[str, Any], prefix: str) -> tuple[tuple[str, str], ...]:
    found, value = go_field(obj, "cni.dev/valid-attachments")
    where = f"{prefix}cni.dev/valid-attachments"
    if not found or value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidConfigError(f"{where} must be a list of objects", field=where)
    return tuple(
        (
            typed_field(item, "containerID", str, "", f"{where}[{index}]."),
            typed_field(item, "ifname", str, "", f"{where}[{index}]."),
        )
        for index, item in enumerate(value)
    )


# ---------------------------------------------------------------- loading like Go Multus


def load_delegate(raw: bytes, *, name: str | None = None, prefix: str = "") -> Delegate:
    """``LoadDelegateNetConf``: a config without ``type`` must be a conflist whose first
    plugin has one. ``name`` (e.g. ``ns/nad``) replaces the config's own name; ``prefix``
    (e.g. ``delegates[0].``) is put before field names in errors.

    Pure in its arguments and the ``Delegate`` is immutable: a NAD or file that did not change
    is parsed once, not on every ADD (issue #7)."""
    return _load_delegate(bytes(raw), name, prefix)


@functools.lru_cache(maxsize=PARSED_CACHE)
def _load_delegate(raw: bytes, name: str | None, prefix: str) -> Delegate:
    obj = decode_object(raw, "delegate config")
    conf = go_netconf(obj, prefix)
    if conf.type:
        return Delegate(raw=raw, name=conf.name if name is None else name, is_list=False)
    conflist = _checked_list(obj, prefix)
    return Delegate(raw=raw, name=conflist.name if name is None else name, is_list=True)


@functools.lru_cache(maxsize=PARSED_CACHE)
def load_delegate_list(raw: bytes, *, prefix: str = "") -> Delegate:
    """``LoadDelegateNetConfList`` alone, as Go loads a clusterNetwork or defaultNetworks
    file or directory: always a conflist, named after it, with an empty cached ``Conf``."""
    conflist = _checked_list(decode_object(bytes(raw), "delegate config list"), prefix)
    return Delegate(raw=bytes(raw), name=conflist.name, is_list=True, list_only=True)


def _checked_list(obj: Mapping[str, Any], prefix: str) -> GoNetConfList:
    conflist = go_netconflist(obj, prefix)
    if not conflist.plugins:
        raise InvalidConfigError(
            "delegate must have the 'type' or 'plugin' field", field=f"{prefix}type"
        )
    if not conflist.plugins[0].type:
        raise InvalidConfigError(
            "a plugin delegate must have the 'type' field", field=f"{prefix}plugins[0].type"
        )
    return conflist
