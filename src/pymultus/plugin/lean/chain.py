"""libcni for one network, the lean way: ``core.delegates`` + ``cni.chain`` for the configs
the lean path takes, byte for byte.

Per plugin, stdin is the plugin's config with the network's ``name`` and ``cniVersion``, the
``prevResult`` (converted to the network's version, in its own encoding) and the
``runtimeConfig`` of the capabilities the plugin declares, keys sorted as Go re-marshals them
(``chain.CNIConfig._stdin``). ADD runs the plugins in order and writes libcni's cache file;
a failing plugin (or cache write) makes it DEL the plugins that ran, last first, best effort.
DEL gives every plugin, last first, the cached result (0.4.0 on) and removes the cache only
when all of them succeeded. Errors carry the full path's codes, messages and list prefixes.

What the lean path does not take is ``Unhandled`` before any plugin runs (``check``,
``runtime_for``); a plugin's output is read by ``output.parse_result``; running it is
``spawn``'s, libcni's cache ``cnicache``'s.
"""

from __future__ import annotations

from pymultus.plugin.lean import cnicache, js
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.quirks import exact_keys, folded, go_keeps
from pymultus.plugin.lean.request import MAX_CONFIG_BYTES, VERSIONS, valid_ifname, valid_name
from pymultus.plugin.lean.results import convert, encode_result
from pymultus.plugin.lean.spawn import lookup, plugin_env, run_plugin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from pymultus.plugin.lean.model import Call, Delegate

#: Keys ``netconf`` reads from a plugin config ignoring case (Go's struct fields).
_PLUGIN_KEYS = folded("type", "name", "cniVersion", "capabilities", "ipam", "dns")
_IPAM_KEYS = folded("type")
_LIST_BOOLS = ("disableCheck", "disableGC", "loadOnlyInlinedPlugins")


# ================================================================ runtime


class Runtime:
    """``cni.chain.RuntimeConf``: one attachment's arguments."""

    __slots__ = ("args", "capability_args", "container_id", "ifname", "netns")

    def __init__(
        self,
        container_id: str,
        netns: str,
        ifname: str,
        args: Sequence[tuple[str, str]] = (),
        capability_args: dict[str, Any] | None = None,
    ) -> None:
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args: list[tuple[str, str]] = list(args)
        self.capability_args: dict[str, Any] = dict(capability_args or {})


def runtime_for(
    call: Call,
    delegate: Delegate,
    ifname: str,
    *,
    is_master: bool,
    runtime_config: dict[str, Any] | None = None,
    conf: Any = None,
) -> Runtime:
    """``core.runtime.runtime_conf`` (thin mode, no device): Multus's K8S args then the
    runtime's CNI_ARGS, ``MAC``/``IP`` from the requests; capability args: the config's
    ``runtimeConfig`` for the cluster network (``conf.runtime_config`` when ``conf`` is
    given), ``ips``/``mac`` from the requests for the others. Port mappings, bandwidth,
    InfiniBand GUIDs and devices of a selection are not lean delegates (``resolve``)."""
    args = _args(call, delegate)
    if conf is not None:
        runtime_config = conf.runtime_config
    caps: dict[str, Any] = {}
    if is_master:
        caps = dict(runtime_config or {})
    else:
        if delegate.ip_requests:
            caps["ips"] = list(delegate.ip_requests)
        if delegate.mac_request:
            caps["mac"] = delegate.mac_request
    rt = Runtime(call.container_id, call.netns, ifname, args, caps)
    check_runtime(rt)
    return rt


def _args(call: Call, delegate: Delegate) -> list[tuple[str, str]]:
    """``runtime_conf``'s CNI_ARGS: Multus's K8S ones, the runtime's, the requests'."""
    pairs = call.pairs
    found = dict(pairs)
    infra = found.get("K8S_POD_INFRA_CONTAINER_ID", "") or call.container_id
    args = [
        ("IgnoreUnknown", "true"),
        ("K8S_POD_NAMESPACE", found.get("K8S_POD_NAMESPACE", "")),
        ("K8S_POD_NAME", found.get("K8S_POD_NAME", "")),
        ("K8S_POD_INFRA_CONTAINER_ID", infra),
        ("K8S_POD_UID", found.get("K8S_POD_UID", "")),
        *pairs,
    ]
    if delegate.mac_request:
        args.append(("MAC", delegate.mac_request))
    if delegate.ip_requests:
        args.append(("IP", ",".join(delegate.ip_requests)))
    return args


def check_runtime(rt: Runtime) -> None:
    """What ``PluginEnv``/the cache would refuse or re-marshal differently: ``Unhandled``."""
    for key, val in rt.args:
        if not key or "=" in key or ";" in key or ";" in val:
            raise Unhandled("a CNI_ARGS pair libcni cannot pass on")
    if not go_keeps(rt.capability_args):
        raise Unhandled("capability args with floats or huge integers")
    _encodable(rt.capability_args)


# ================================================================ the network


class _Plugin:
    """One plugin of a network: its config (decoded), ``type``, ``name`` and capabilities."""

    __slots__ = ("caps", "conf", "name", "type")

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.type: str = conf["type"]
        self.name: str = conf.get("name") or ""
        self.caps: dict[str, bool] = conf.get("capabilities") or {}

    def describe(self) -> str:
        """libcni's ``pluginDescription``: ``type="bridge" name="net"``."""
        out = f"type={js.marshal_text(self.type)}"
        return out + (f" name={js.marshal_text(self.name)}" if self.name else "")


class Net:
    """``chain._Net``: what a verb needs of a list or of a single config."""

    __slots__ = ("config", "is_list", "name", "plugins", "version")

    def __init__(
        self, name: str, version: str, plugins: list[_Plugin], config: bytes, *, is_list: bool
    ) -> None:
        self.name = name
        self.version = version
        self.plugins = plugins
        self.config = config  # the bytes ADD caches
        self.is_list = is_list


def check_plugin(obj: dict[str, Any]) -> None:
    """``netconf._conf_from_obj`` accepts it, reading it as the lean path does."""
    exact_keys(obj, _PLUGIN_KEYS)
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        raise Unhandled("a plugin without a string type")
    if "/" in kind or "\0" in kind or kind in (".", ".."):
        raise Unhandled("an invalid plugin name")
    for key in ("name", "cniVersion"):
        if not isinstance(obj.get(key, ""), (str, type(None))):
            raise Unhandled(f"a plugin {key} that is not a string")
    caps = obj.get("capabilities")
    if caps is not None and (
        not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values())
    ):
        raise Unhandled("capabilities that are not booleans")
    for key in ("ipam", "dns"):
        if not isinstance(obj.get(key), (dict, type(None))):
            raise Unhandled(f"a plugin {key} that is not an object")
    ipam = obj.get("ipam")
    if isinstance(ipam, dict):
        exact_keys(ipam, _IPAM_KEYS)
        if not isinstance(ipam.get("type", ""), (str, type(None))):
            raise Unhandled("an ipam type that is not a string")


def net_of(raw: bytes, obj: dict[str, Any], *, is_list: bool, wrapped: bool = False) -> Net:
    """``netconf.conflist_from_bytes`` (``is_list``) or ``conf_from_bytes``; ``wrapped``:
    a single config run as libcni's one-plugin list (``load_any``, a leftover's DEL)."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise Unhandled("a config over the size limit")
    if not go_keeps(obj):
        raise Unhandled("a config with floats or huge integers")
    _encodable(obj)
    if not is_list:
        check_plugin(obj)
        net = Net(
            obj.get("name") or "", obj.get("cniVersion") or "", [_Plugin(obj)], raw, is_list=wrapped
        )
    else:
        net = _list_of(raw, obj)
    if net.version not in VERSIONS:
        raise Unhandled(f"CNI version {net.version!r} is the full path's")
    if not valid_name(net.name):
        raise Unhandled("a network name the full path reports on")
    return net


def _list_of(raw: bytes, obj: dict[str, Any]) -> Net:
    name, version, plugins = obj.get("name"), obj.get("cniVersion", ""), obj.get("plugins")
    if not isinstance(name, str) or not isinstance(version, str) or "cniVersions" in obj:
        raise Unhandled("a list name or version the full path reads")
    for key in _LIST_BOOLS:
        value = obj.get(key, False)
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            raise Unhandled(f"a list {key} the full path reports on")
    if not isinstance(plugins, list) or not plugins:
        raise Unhandled("a list without plugins")
    for item in plugins:
        if not isinstance(item, dict):
            raise Unhandled("a plugin that is not an object")
        check_plugin(item)
    return Net(name, version, [_Plugin(p) for p in plugins], raw, is_list=True)


_NETS: dict[int, tuple[Delegate, Net]] = {}


def _net(delegate: Delegate) -> Net:
    """``resolve.net_of``: what libcni runs for the delegate (``run_raw``)."""
    hit = _NETS.get(id(delegate))
    if hit is not None and hit[0] is delegate:
        return hit[1]
    net = net_of(delegate.run_raw, delegate.conf, is_list=delegate.is_list)
    _NETS[id(delegate)] = (delegate, net)
    return net


def check(delegate: Delegate, bin_path: Sequence[str] | None = None) -> None:
    """``Unhandled`` unless ``add``/``delete`` run this delegate exactly as the full path
    would; with ``bin_path``, every plugin binary must be there too (a missing one is the
    full path's to report). No side effect: call it for every delegate first."""
    net = _net(delegate)
    if bin_path is not None:
        for plugin in net.plugins:
            if not bin_path or lookup(plugin.type, bin_path) is None:
                raise Unhandled(f"plugin {plugin.type!r} is not in the bin path")


def network_name(delegate: Delegate) -> str:
    """``core.delegates.network_name``: the CNI name libcni caches by."""
    return _net(delegate).name


def _encodable(obj: Any) -> None:
    js.sorted_compact(obj)  # Unhandled for what it cannot write (lone surrogates...)


# ================================================================ the verbs


def _stdin(net: Net, plugin: _Plugin, prev: dict[str, Any] | None, rt: Runtime) -> bytes:
    """``CNIConfig._stdin``: name, version, prevResult and runtimeConfig injected, keys
    sorted (``netconf.inject``); the prevResult keeps its own encoding (``msgspec.Raw``)."""
    config = dict(plugin.conf)
    config["name"] = net.name
    config["cniVersion"] = net.version
    raw = b""
    if prev is not None:
        config["prevResult"] = None
        raw = encode_result(convert(prev, net.version))
    selected = runtime_config(plugin, rt.capability_args)
    if selected:
        config["runtimeConfig"] = selected
    parts = []
    for key in sorted(config):
        value = raw if key == "prevResult" and prev is not None else js.sorted_compact(config[key])
        parts.append(js.sorted_compact(key) + b":" + value)
    return b"{" + b",".join(parts) + b"}"


def runtime_config(plugin: _Plugin, capability_args: dict[str, Any]) -> dict[str, Any]:
    """``chain.runtime_config``: the declared capabilities, matched exactly or ignoring case."""
    folded = {key.casefold(): key for key in capability_args}
    selected: dict[str, Any] = {}
    for capability, enabled in plugin.caps.items():
        if not enabled:
            continue
        key = capability if capability in capability_args else folded.get(capability.casefold())
        if key is not None:
            selected[capability] = capability_args[key]
    return selected


def _exec(
    command: str,
    net: Net,
    plugin: _Plugin,
    prev: dict[str, Any] | None,
    rt: Runtime,
    *,
    bin_path: Sequence[str],
    timeout: float,
) -> bytes:
    environ = plugin_env(command, rt, bin_path)
    stdin = _stdin(net, plugin, prev, rt)
    return run_plugin(plugin.type, stdin, environ, bin_path, timeout=timeout)


def _context(net: Net, exc: LeanError, prefix: str) -> LeanError:
    """Lists prefix a plugin's error as libcni does; a single config's error is its own."""
    return exc.prefixed(prefix) if net.is_list else exc


def _check_add(net: Net, rt: Runtime) -> None:
    """``CNIConfig._add``'s name checks, and what ``runtime_for`` checks: ``Unhandled``."""
    if not valid_name(rt.container_id) or not valid_ifname(rt.ifname):
        raise Unhandled("a container id or interface name the full path reports on")
    check_runtime(rt)


def add(
    delegate: Delegate,
    rt: Runtime,
    *,
    bin_path: Sequence[str],
    cache_dir: str,
    timeout: float,
) -> tuple[dict[str, Any], bytes]:
    """``delegates.add``: every plugin in order, each given the previous result; then the
    result cache. Returns the last plugin's result (in its own version, as the full path's
    ``AnyResult`` encodes) and ``encode_result`` of it. A failing plugin or cache write
    DELs the plugins that ran, last first, before its error is raised. ``Unhandled`` only
    before the first plugin runs."""
    from pymultus.plugin.lean.output import parse_result  # noqa: PLC0415 - ADD's: not for DEL

    net = _net(delegate)
    _check_add(net, rt)
    result: dict[str, Any] | None = None
    for index, plugin in enumerate(net.plugins):
        try:
            out = _exec("ADD", net, plugin, result, rt, bin_path=bin_path, timeout=timeout)
            result = parse_result(out, net.version)
        except LeanError as exc:
            _rollback(net, net.plugins[: index + 1], result, rt, bin_path=bin_path, timeout=timeout)
            raise _context(net, exc, f"plugin {plugin.describe()} failed (add): ") from None
    assert result is not None
    try:
        cnicache.write(cache_dir, net.name, net.config, rt, result)
    except LeanError as exc:
        _rollback(net, net.plugins, result, rt, bin_path=bin_path, timeout=timeout)
        prefix = f"failed to set network {js.marshal_text(net.name)} cached result: "
        raise exc.prefixed(prefix) from None
    return result, encode_result(result)


def _rollback(
    net: Net,
    ran: Sequence[_Plugin],
    last: dict[str, Any] | None,
    rt: Runtime,
    *,
    bin_path: Sequence[str],
    timeout: float,
) -> None:
    """``CNIConfig._rollback``: DEL of the plugins that ran, last first, errors dropped."""
    for plugin in reversed(ran):
        try:
            _exec("DEL", net, plugin, last, rt, bin_path=bin_path, timeout=timeout)
        except LeanError:
            continue


def delete(
    delegate: Delegate,
    rt: Runtime,
    *,
    bin_path: Sequence[str],
    cache_dir: str,
    timeout: float,
) -> None:
    """``delegates.delete``: DEL to every plugin, last first, best effort."""
    del_net(_net(delegate), rt, bin_path, cache_dir, timeout)


def del_net(net: Net, rt: Runtime, bin_path: Sequence[str], cache_dir: str, timeout: float) -> None:
    """``CNIConfig._del`` (a delegate's, or a leftover's): the cached result as prevResult
    from 0.4.0 (an unreadable cache is dropped for a list, an error for a single config);
    every plugin gets its DEL; the first error is raised mentioning the others; the cache
    goes when all succeeded."""
    prev = None
    if net.version not in ("0.3.0", "0.3.1"):
        try:
            prev = cnicache.cached_result(cache_dir, net.name, net.version, rt)
        except LeanError as exc:
            if not net.is_list:
                prefix = f"failed to get network {js.marshal_text(net.name)} cached result: "
                raise exc.prefixed(prefix) from None
            cnicache.drop(cache_dir, net.name, rt)
    errors: list[LeanError] = []
    for plugin in reversed(net.plugins):
        try:
            _exec("DEL", net, plugin, prev, rt, bin_path=bin_path, timeout=timeout)
        except LeanError as exc:
            errors.append(_context(net, exc, f"plugin {plugin.describe()} failed (delete): "))
    if errors:
        raise first_of(errors)
    cnicache.drop(cache_dir, net.name, rt)


def first_of(errors: Sequence[LeanError]) -> LeanError:
    """``chain._first_of``: the first error, mentioning the others."""
    first = errors[0]
    if len(errors) == 1:
        return first
    others = "; ".join(e.msg for e in errors[1:])
    return LeanError(first.code, f"{first.msg} (also failed: {others})", first.details)
