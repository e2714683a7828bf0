"""Which delegates a pod gets, the lean way: ``core.resolve.plan`` for the common shapes.

The cluster network is a ``clusterNetwork`` file (``.conflist`` without a subdirectory of
extra plugins, or a single ``.conf``) or ``delegates[0]``, then the other static ``delegates``
(without clusterNetwork), then one NAD per element of the pod's
``k8s.v1.cni.cncf.io/networks`` annotation (comma list of ``[ns/]name[@ifname]``, or a JSON
list of ``{"name", "namespace", "interface", "ips", "mac"}`` objects). A default-network
annotation, ``defaultNetworks``, device resources, ``default-route``/``cni-args``/port
mapping/bandwidth requests, an isolation decision and NADs without ``spec.config`` are
``Unhandled``: the full path plans those pods.
"""

from __future__ import annotations

from pymultus.plugin.lean import addrs, js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import Unhandled
from pymultus.plugin.lean.model import Delegate
from pymultus.plugin.lean.quirks import go_keeps
from pymultus.plugin.lean.request import MAX_CONFIG_BYTES, VERSIONS, valid_ifname, valid_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from pymultus.plugin.lean.request import Conf

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
RESOURCE_NAME = "k8s.v1.cni.cncf.io/resourceName"
CONFIG_SOURCE = "kubernetes.io/config.source"
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_HEX = frozenset("0123456789abcdefABCDEF")
_JSON_KEYS = frozenset({"name", "namespace", "interface", "ips", "mac"})


class Selection:
    """One element of the networks annotation, its namespace filled in."""

    __slots__ = ("interface", "ips", "mac", "name", "namespace")

    def __init__(
        self,
        name: str,
        namespace: str,
        interface: str,
        ips: tuple[str, ...] = (),
        mac: str = "",
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.interface = interface
        self.ips = ips
        self.mac = mac


# ---------------------------------------------------------------- the cluster network


def master(conf: Conf) -> Delegate:
    """The cluster network: the ``clusterNetwork`` file, else ``delegates[0]``."""
    if conf.cluster_network:
        return _cluster_file(conf.cluster_network)
    return static(conf.delegates[0])


def statics(conf: Conf) -> list[Delegate]:
    """``delegates[1:]``, attached after the cluster network when there is no clusterNetwork
    (``core.resolve.plan``: Go reads them only then)."""
    return [] if conf.cluster_network else [static(obj) for obj in conf.delegates[1:]]


def static(obj: dict[str, Any]) -> Delegate:
    """``core.resolve.static_delegate``: the element re-marshalled as Go passes it on (keys
    sorted), named by its own ``name``."""
    raw = remarshal(obj)
    return _delegate(raw, js.loads_object(raw), obj.get("name", ""))


def _delegate(raw: bytes, obj: dict[str, Any], name: str, ifname_request: str = "") -> Delegate:
    """``core.delegate.load_delegate`` of checked bytes: a conflist when there is no type."""
    is_list = "type" not in obj
    if is_list:
        _check_list(obj)
    else:
        _check_plugin(obj)
        if not isinstance(obj.get("name"), str) or not valid_name(obj["name"]):
            raise Unhandled("a config name the full path judges")
        if obj.get("cniVersion", "") not in VERSIONS:
            raise Unhandled("a config cniVersion the lean path does not run")
    if not isinstance(name, str) or not name:
        raise Unhandled("a delegate without a name")
    return Delegate(raw, obj, name, is_list=is_list, ifname_request=ifname_request)


def _cluster_file(path: str) -> Delegate:
    """``clusterNetwork`` as a file: cached re-marshalled, run as libcni loads the file."""
    if os.path.isdir(path) or not os.path.isfile(path):
        raise Unhandled("clusterNetwork is not a file")
    with open(path, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    obj = js.loads_object(data)
    if path.endswith(".conflist"):
        _check_list(obj)
        if os.path.exists(os.path.join(os.path.dirname(path), obj["name"])):
            raise Unhandled("a subdirectory of extra plugins")
        run = data
        cached = remarshal(obj)
    else:
        _check_plugin(obj)
        if not isinstance(obj.get("name", ""), str) or not valid_name(obj.get("name", "")):
            raise Unhandled("a cluster network without a valid name")
        wrapped = {"cniVersion": obj.get("cniVersion", ""), "name": obj["name"], "plugins": [obj]}
        run = cached = remarshal(wrapped)
        obj = js.loads_object(cached)
        _check_list(obj)
    return Delegate(cached, obj, obj["name"], is_list=True, list_only=True, run_raw=run)


def remarshal(obj: dict[str, Any]) -> bytes:
    """``netconf.remarshal`` for values Go keeps as they are (no floats, no int beyond 2**53)."""
    if not go_keeps(obj):
        raise Unhandled("numbers Go would round")
    return js.sorted_compact(obj)


def _check_list(obj: dict[str, Any]) -> None:
    """A conflist libcni and Go's views read without a question."""
    if not {"cniVersion", "name", "plugins"} <= set(obj) or "cniVersions" in obj:
        raise Unhandled("a conflist without cniVersion, name or plugins, or with cniVersions")
    if obj["cniVersion"] not in VERSIONS or not isinstance(obj["name"], str):
        raise Unhandled("a conflist version or name the lean path does not run")
    if not valid_name(obj["name"]) or "loadOnlyInlinedPlugins" in obj:
        raise Unhandled("a conflist name or key the full path judges")
    for key in ("disableCheck", "disableGC"):
        if not isinstance(obj.get(key, False), bool):
            raise Unhandled(f"{key} that is not a boolean")
    plugins = obj["plugins"]
    if not isinstance(plugins, list) or not plugins:
        raise Unhandled("plugins is not a non-empty list")
    for plugin in plugins:
        _check_plugin(plugin)


def _check_plugin(obj: Any) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str) or not obj["type"]:
        raise Unhandled("a plugin config without a type")
    if "plugins" in obj or not valid_name(obj["type"]):
        raise Unhandled("a plugin config the full path judges")
    if obj.get("cniVersion", VERSIONS[-1]) not in VERSIONS:
        raise Unhandled("a plugin cniVersion the lean path does not run")
    for key in ("ipam", "dns", "capabilities", "args", "runtimeConfig"):
        if not isinstance(obj.get(key, {}), dict):
            raise Unhandled(f"{key} that is not an object")
    if "prevResult" in obj:
        raise Unhandled("a prevResult in a delegate config")


# ---------------------------------------------------------------- the pod's networks


def selections(pod: dict[str, Any], conf: Conf) -> list[Selection]:
    """The networks annotation of ``pod``, checked as the full path checks it."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    namespace = meta.get("namespace", "")
    if annotations.get(DEFAULT_NETWORK):
        raise Unhandled("a default-network annotation")
    value = annotations.get(NETWORKS, "")
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > 256 << 10:
        raise Unhandled("an annotation the full path judges")
    if not value.strip():
        found: list[Selection] = []
    elif any(c in value for c in '[{"'):
        found = [_json_item(item, namespace) for item in _json_list(value)]
    else:
        found = [_comma_item(item, namespace) for item in value.split(",")]
    _check_found(found, namespace, conf)
    return found


def _check_found(found: list[Selection], namespace: str, conf: Conf) -> None:
    interfaces = [s.interface for s in found if s.interface]
    if len(set(interfaces)) != len(interfaces):
        raise Unhandled("one interface requested twice")
    if conf.isolation and any(s.namespace != namespace for s in found):
        raise Unhandled("a cross-namespace network under isolation")


def _comma_item(item: str, namespace: str) -> Selection:
    item = item.strip(" \t")
    ns, slash, rest = item.rpartition("/")
    name, at, ifname = rest.partition("@")
    if "/" in ns or "@" in ifname or (slash and not _label(ns)):
        raise Unhandled("a comma item the full path judges")
    if not _subdomain(name) or (at and not valid_ifname(ifname)):
        raise Unhandled("a comma item the full path judges")
    return Selection(name, ns or namespace, ifname)


def _json_list(value: str) -> list[Any]:
    items = js.loads(value)
    if not isinstance(items, list):
        raise Unhandled("a JSON annotation that is not a list")
    return items


def _json_item(item: Any, namespace: str) -> Selection:
    keys = set(item) if isinstance(item, dict) else set()
    if not isinstance(item, dict) or not {"name"} <= keys <= _JSON_KEYS:
        raise Unhandled("a JSON element with keys the lean path does not run")
    name, ns, ifname = item["name"], item.get("namespace", ""), item.get("interface", "")
    mac, ips = item.get("mac", ""), item.get("ips", [])
    if not all(isinstance(v, str) for v in (name, ns, ifname, mac)):
        raise Unhandled("a JSON element field of another type")
    if not _subdomain(name) or (ns and not _label(ns)) or (ifname and not valid_ifname(ifname)):
        raise Unhandled("a JSON element the full path judges")
    if not isinstance(ips, list) or not all(isinstance(ip, str) and _ip_or_cidr(ip) for ip in ips):
        raise Unhandled("ips the full path judges")
    if mac and not _plain_mac(mac):
        raise Unhandled("a mac the full path judges")
    return Selection(name, ns or namespace, ifname, tuple(ips), mac)


def _ip_or_cidr(text: str) -> bool:
    """``k8s.selection.is_ip_or_cidr``: an address, or one with a prefix within its family."""
    address, slash, prefix = text.partition("/")
    parsed = addrs.parse_ip(address)
    if parsed is None:
        return False
    if not slash:
        return True
    return prefix.isascii() and prefix.isdigit() and int(prefix) <= (32 if parsed[0] == 4 else 128)


def _plain_mac(text: str) -> bool:
    """Six hex pairs joined by colons: one of the forms ``net.ParseMAC`` reads."""
    pairs = text.split(":")
    return len(pairs) == 6 and all(len(p) == 2 and _HEX.issuperset(p) for p in pairs)


def _label(value: str) -> bool:
    """A DNS-1123 label (namespaces)."""
    return (
        0 < len(value) <= 63
        and _LABEL_CHARS.issuperset(value)
        and value[0] != "-"
        and value[-1] != "-"
    )


def _subdomain(value: str) -> bool:
    """A DNS-1123 subdomain (object names)."""
    return 0 < len(value) <= 253 and all(_label(part) for part in value.split("."))


# ---------------------------------------------------------------- NADs


def from_nad(nad: dict[str, Any], sel: Selection) -> Delegate:
    """``core.resolve._from_nad`` for a NAD with a ``spec.config`` and no device resource."""
    meta = nad.get("metadata") or {}
    if (meta.get("annotations") or {}).get(RESOURCE_NAME):
        raise Unhandled("a NAD with a device resource")
    config = (nad.get("spec") or {}).get("config", "") or ""
    if not isinstance(config, str) or not config.strip():
        raise Unhandled("a NAD without spec.config")
    raw = config.encode("utf-8", "surrogatepass")
    obj = js.loads_object(raw)
    if not obj.get("name"):
        obj["name"] = meta.get("name", "")
        raw = remarshal(obj)
    name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    d = _delegate(raw, obj, name, sel.interface)
    d.ip_requests, d.mac_request = sel.ips, sel.mac
    return d


def secondaries(
    conf: Conf, pod: dict[str, Any], get_nad: Callable[[str, str], dict[str, Any] | None]
) -> list[Delegate]:
    """The delegates of the pod's networks annotation, in order (the cluster network is
    ``master``); ``Unhandled`` before anything was changed."""
    found = []
    for sel in selections(pod, conf):
        nad = get_nad(sel.namespace, sel.name)
        if nad is None:
            raise Unhandled("a missing NAD (the full path reports it and sends the event)")
        found.append(from_nad(nad, sel))
    return found
