"""The runtime side of CNI for lists and single configs: what libcni v1.3 ``api.go`` is to Go.

Per plugin, stdin is the plugin's config with the network's ``name`` and ``cniVersion``
injected, ``prevResult`` (the previous plugin's result on ADD, the cached result on DEL and
CHECK, converted to the network's version) and ``runtimeConfig`` holding only the capability
arguments the plugin declares ``true``. Verbs:

- ADD: names validated first; plugins in order, chaining results; then the result cache.
  Beyond libcni: if a plugin (or the cache write) fails, DEL runs over the plugins that ran,
  the failing one included, in reverse and best effort, before the original error is raised.
- DEL: cached result as ``prevResult`` from 0.4.0 (an unreadable cache is dropped for lists,
  an error for single configs); plugins in reverse. Beyond libcni: best effort, every plugin
  gets its DEL even after one failed, and the first error is raised (libcni stops at the
  first). The cache is deleted only when every plugin succeeded, so a retried DEL still has
  ``prevResult``.
- CHECK: 0.4.0 or later, skipped by ``disableCheck``; needs the cached result.
- STATUS: 1.1.0 or later, plugins in order, the first error as the plugin gave it.
- GC: skipped by ``disableGC``; DEL for each cached attachment of the network not in the valid
  list, then (1.1.0 or later) GC to every plugin with ``cni.dev/valid-attachments`` (and the
  pre-1.1 spelling ``cni.dev/attachments``).

Errors keep the delegate's own code; list errors carry libcni's prefixes
(``plugin type="bridge" name="net" failed (add): ...``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from pymultus.cni import cache, env, netconf
from pymultus.cni.convert import AnyResult, convert, encode_result, parse_result
from pymultus.cni.errors import (
    CniError,
    IncompatibleVersionError,
    InvalidConfigError,
    UnknownContainerError,
    prefixed,
    rebuild,
)
from pymultus.cni.invoke import DEFAULT_TIMEOUT, Executor, PluginEnv, exec_plugin
from pymultus.cni.netconf import NetConf, NetConfList
from pymultus.cni.version import at_least

DEFAULT_CACHE_DIR = "/var/lib/cni"  # libcni's CacheDir


class RuntimeConf(msgspec.Struct, frozen=True):
    """One attachment's arguments (libcni ``RuntimeConf``)."""

    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = msgspec.field(default_factory=dict)


class Attachment(msgspec.Struct, frozen=True):
    """A (container, interface) pair that GC must keep."""

    container_id: str
    ifname: str


class _Net(msgspec.Struct, frozen=True):
    """What a verb needs of a list or of a single config."""

    name: str
    cni_version: str
    plugins: tuple[NetConf, ...]
    cache_config: bytes  # the bytes ADD caches: the list's, or the single config's
    is_list: bool

    @classmethod
    def of_list(cls, net: NetConfList) -> _Net:
        return cls(net.name, net.cni_version, net.plugins, net.raw, True)

    @classmethod
    def of_conf(cls, conf: NetConf) -> _Net:
        return cls(conf.name, conf.cni_version, (conf,), conf.raw, False)

    @property
    def version(self) -> str:
        return self.cni_version or "0.1.0"


def describe(plugin: NetConf) -> str:
    """libcni's ``pluginDescription``: ``type="bridge" name="net"``."""
    out = f"type={_quote(plugin.type)}"
    return out + (f" name={_quote(plugin.name)}" if plugin.name else "")


def _quote(text: str) -> str:
    import json  # noqa: PLC0415 - error messages only

    return json.dumps(text, ensure_ascii=False)


def _first_of(errors: Sequence[CniError]) -> CniError:
    """The first error (its code is what the runtime sees), mentioning the others, for verbs
    that keep going after a failure."""
    first = errors[0]
    if len(errors) == 1:
        return first
    others = "; ".join(e.msg for e in errors[1:])
    return rebuild(first, f"{first.msg} (also failed: {others})")


def runtime_config(plugin: NetConf, capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """The capability arguments ``plugin`` declares true (libcni ``injectRuntimeConfig``).

    A declared name matches the runtime's key exactly, or else ignoring case (runtimes built
    on Go field names send ``PortMappings``-style spellings). Values pass through untouched.
    """
    folded = {key.casefold(): key for key in capability_args}
    selected: dict[str, Any] = {}
    for capability, enabled in plugin.capabilities.items():
        if not enabled:
            continue
        key = capability if capability in capability_args else folded.get(capability.casefold())
        if key is not None:
            selected[capability] = capability_args[key]
    return selected


class CNIConfig:
    """Runs networks (lists or single configs) with libcni's semantics.

    ``path``: directories searched for plugin binaries, also passed as ``CNI_PATH``.
    ``cache_dir``: libcni's cache directory (results in ``<cache_dir>/results``).
    ``timeout``: seconds one plugin run may take.
    """

    def __init__(
        self,
        path: Sequence[str],
        *,
        cache_dir: str = DEFAULT_CACHE_DIR,
        executor: Executor | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.path = tuple(path)
        self.cache_dir = cache_dir
        self.executor = executor
        self.timeout = timeout

    # ------------------------------------------------------------ public verbs

    def add_network_list(self, net: NetConfList, rt: RuntimeConf) -> AnyResult:
        return self._add(_Net.of_list(net), rt)

    def add_network(self, conf: NetConf, rt: RuntimeConf) -> AnyResult:
        """libcni ``AddNetwork``: one config; the cache holds the config's own bytes."""
        return self._add(_Net.of_conf(conf), rt)

    def del_network_list(self, net: NetConfList, rt: RuntimeConf) -> None:
        self._del(_Net.of_list(net), rt)

    def del_network(self, conf: NetConf, rt: RuntimeConf) -> None:
        self._del(_Net.of_conf(conf), rt)

    def check_network_list(self, net: NetConfList, rt: RuntimeConf) -> None:
        self._check(_Net.of_list(net), rt, disabled=net.disable_check)

    def check_network(self, conf: NetConf, rt: RuntimeConf) -> None:
        self._check(_Net.of_conf(conf), rt, disabled=False)

    def status_network_list(self, net: NetConfList) -> None:
        """STATUS to every plugin in order (1.1.0 or later); the first error is raised as the
        plugin gave it, so its code (50, 51...) reaches the runtime."""
        if not at_least(net.cni_version, "1.1.0"):
            return
        values = {"name": net.name, "cniVersion": net.cni_version}
        for plugin in net.plugins:
            self._exec(plugin, netconf.inject(plugin.raw, values), PluginEnv("STATUS"))

    def gc_network_list(self, net: NetConfList, valid: Sequence[Attachment]) -> None:
        """Delete stale cached attachments of this network, then GC every plugin."""
        if net.disable_gc:
            return
        errors = self._delete_stale(net, valid)
        if at_least(net.cni_version, "1.1.0"):
            errors.extend(self._gc_plugins(net, valid))
        if errors:
            raise _first_of(errors)

    def get_cached_result(self, net: NetConfList, rt: RuntimeConf) -> AnyResult | None:
        """The cached result of ADD, in the list's version; None when nothing is cached."""
        return self._cached_result(_Net.of_list(net), rt)

    def get_network_cached_result(self, conf: NetConf, rt: RuntimeConf) -> AnyResult | None:
        return self._cached_result(_Net.of_conf(conf), rt)

    # ------------------------------------------------------------ ADD

    def _add(self, net: _Net, rt: RuntimeConf) -> AnyResult:
        env.validate_container_id(rt.container_id)
        env.validate_network_name(net.name)
        env.validate_ifname(rt.ifname)
        if not net.plugins:
            raise InvalidConfigError(f"network {net.name!r} has no plugins", field="plugins")
        result: AnyResult | None = None
        for index, plugin in enumerate(net.plugins):
            try:
                result = self._add_one(net, plugin, result, rt)
            except CniError as exc:
                self._rollback(net, net.plugins[: index + 1], result, rt)
                raise self._context(net, exc, f"plugin {describe(plugin)} failed (add): ") from exc
        assert result is not None  # there was at least one plugin
        try:
            cache.write(self.cache_dir, self._entry(net, result, rt))
        except CniError as exc:
            self._rollback(net, net.plugins, result, rt)
            raise prefixed(
                exc, f"failed to set network {_quote(net.name)} cached result: "
            ) from exc
        return result

    def _add_one(
        self, net: _Net, plugin: NetConf, prev: AnyResult | None, rt: RuntimeConf
    ) -> AnyResult:
        out = self._exec(plugin, self._stdin(net, plugin, prev, rt), self._env("ADD", rt))
        return parse_result(out, net.version)

    def _rollback(
        self, net: _Net, ran: Sequence[NetConf], last: AnyResult | None, rt: RuntimeConf
    ) -> None:
        """Best-effort DEL of the plugins that ran, last first; their errors are dropped (the
        ADD's error is what the runtime must see)."""
        for plugin in reversed(ran):
            with contextlib.suppress(CniError):
                self._exec(plugin, self._stdin(net, plugin, last, rt), self._env("DEL", rt))

    def _entry(self, net: _Net, result: AnyResult, rt: RuntimeConf) -> cache.CacheEntry:
        return cache.CacheEntry.for_result(
            result,
            container_id=rt.container_id,
            ifname=rt.ifname,
            network_name=net.name,
            config=net.cache_config,
            netns=rt.netns,
            cni_args=rt.args,
            capability_args=rt.capability_args,
        )

    # ------------------------------------------------------------ DEL, CHECK

    def _del(self, net: _Net, rt: RuntimeConf) -> None:
        prev: AnyResult | None = None
        if at_least(net.cni_version, "0.4.0"):
            try:
                prev = self._cached_result(net, rt)
            except CniError as exc:
                if not net.is_list:
                    raise prefixed(exc, self._cache_prefix(net)) from exc
                self._drop_cache(net, rt)
        errors: list[CniError] = []
        for plugin in reversed(net.plugins):
            try:
                self._exec(plugin, self._stdin(net, plugin, prev, rt), self._env("DEL", rt))
            except CniError as exc:
                errors.append(
                    self._context(net, exc, f"plugin {describe(plugin)} failed (delete): ")
                )
        if errors:
            raise _first_of(errors)
        self._drop_cache(net, rt)

    def _check(self, net: _Net, rt: RuntimeConf, *, disabled: bool) -> None:
        if not at_least(net.cni_version, "0.4.0"):
            raise IncompatibleVersionError(
                f"configuration version {_quote(net.cni_version)} does not support the CHECK "
                "command",
                field="cniVersion",
                network=net.name,
            )
        if disabled:
            return
        try:
            prev = self._cached_result(net, rt)
        except CniError as exc:
            raise prefixed(exc, self._cache_prefix(net)) from exc
        if prev is None:
            raise UnknownContainerError(
                f"{self._cache_prefix(net)}no cached result for container "
                f"{rt.container_id!r} interface {rt.ifname!r}: was it added?",
                network=net.name,
            )
        for plugin in net.plugins:
            try:
                self._exec(plugin, self._stdin(net, plugin, prev, rt), self._env("CHECK", rt))
            except CniError as exc:
                raise self._context(
                    net, exc, f"plugin {describe(plugin)} failed (check): "
                ) from exc

    # ------------------------------------------------------------ GC

    def _delete_stale(self, net: NetConfList, valid: Sequence[Attachment]) -> list[CniError]:
        keep = {(a.container_id, a.ifname) for a in valid}
        errors: list[CniError] = []
        try:
            cached = cache.list_attachments(self.cache_dir, net.name)
        except CniError as exc:
            return [exc]
        for entry in cached:
            if (entry.container_id, entry.ifname) in keep:
                continue
            rt = RuntimeConf(
                container_id=entry.container_id,
                netns=entry.netns,
                ifname=entry.ifname,
                args=entry.cni_args,
                capability_args=entry.capability_args,
            )
            try:
                self.del_network_list(net, rt)
            except CniError as exc:
                prefix = f"failed to delete stale attachment {rt.container_id} {rt.ifname}: "
                errors.append(prefixed(exc, prefix))
        return errors

    def _gc_plugins(self, net: NetConfList, valid: Sequence[Attachment]) -> list[CniError]:
        attachments = [{"containerID": a.container_id, "ifname": a.ifname} for a in valid]
        values = {
            "name": net.name,
            "cniVersion": net.cni_version,
            "cni.dev/valid-attachments": attachments,
            "cni.dev/attachments": attachments,
        }
        errors: list[CniError] = []
        for plugin in net.plugins:
            try:
                self._exec(plugin, netconf.inject(plugin.raw, values), PluginEnv("GC"))
            except CniError as exc:
                errors.append(prefixed(exc, f"failed to GC plugin {plugin.type}: "))
        return errors

    # ------------------------------------------------------------ plumbing

    def _stdin(self, net: _Net, plugin: NetConf, prev: AnyResult | None, rt: RuntimeConf) -> bytes:
        """libcni ``buildOneConfig``: name, version, prevResult and runtimeConfig injected."""
        values: dict[str, Any] = {"name": net.name, "cniVersion": net.cni_version}
        if prev is not None:
            values["prevResult"] = msgspec.Raw(encode_result(convert(prev, net.version)))
        selected = runtime_config(plugin, rt.capability_args)
        if selected:
            values["runtimeConfig"] = selected
        return netconf.inject(plugin.raw, values)

    def _env(self, command: str, rt: RuntimeConf) -> PluginEnv:
        return PluginEnv(command, rt.container_id, rt.netns, rt.ifname, rt.args)

    def _exec(self, plugin: NetConf, stdin: bytes, plugin_env: PluginEnv) -> bytes:
        plugin_env = PluginEnv(
            plugin_env.command,
            plugin_env.container_id,
            plugin_env.netns,
            plugin_env.ifname,
            plugin_env.args,
            self.path,
        )
        return exec_plugin(
            plugin.type,
            stdin,
            plugin_env,
            self.path,
            executor=self.executor,
            timeout=self.timeout,
        )

    def _context(self, net: _Net, exc: CniError, prefix: str) -> CniError:
        """Lists prefix plugin errors as libcni does; a single config's error is its own."""
        return prefixed(exc, prefix) if net.is_list else exc

    @staticmethod
    def _cache_prefix(net: _Net) -> str:
        return f"failed to get network {_quote(net.name)} cached result: "

    def _cached_result(self, net: _Net, rt: RuntimeConf) -> AnyResult | None:
        data = cache.read_result(self.cache_dir, net.name, rt.container_id, rt.ifname)
        if data is None:
            return None
        return convert(parse_result(data), net.version)

    def _drop_cache(self, net: _Net, rt: RuntimeConf) -> None:
        with contextlib.suppress(CniError):
            cache.delete(self.cache_dir, net.name, rt.container_id, rt.ifname)
