"""Delegate network configs: the exact bytes given, with a minimal parsed view beside them.

What libcni v1.3 ``conf.go`` is to Go. A plugin config (``.conf``) or a plugin list
(``.conflist``) is kept as the bytes it was read from, because plugins read keys pymultus knows
nothing about; only ``name``, ``cniVersion``, ``type``, ``capabilities`` and the list flags are
parsed. Where libcni re-marshals (the plugins of a list, ``ConfListFromConf``, ``InjectConf``)
we re-marshal the way Go does: keys sorted, compact, HTML-escaped, numbers through float64.

Bad input raises ``DecodeError`` (not JSON) or ``InvalidConfigError`` naming the field, e.g.
``plugins[1].type``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from pymultus.cni import gojson, limits, version
from pymultus.cni.env import validate_network_name
from pymultus.cni.errors import (
    DecodeError,
    IncompatibleVersionError,
    InternalError,
    InvalidConfigError,
    IOFailure,
)

CONF_EXTENSIONS: tuple[str, ...] = (".conf", ".conflist", ".json")
_MAX_EXACT_INT = 2**53  # Go decodes JSON numbers into float64


@dataclass(frozen=True)
class NetConf:
    """One plugin config: ``raw`` is what the plugin gets (before injection)."""

    raw: bytes
    name: str
    cni_version: str
    type: str
    capabilities: Mapping[str, bool] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NetConfList:
    """A plugin list. ``raw`` is the list's own bytes (cached by libcni on ADD); plugins loaded
    from a subdirectory appear in ``plugins`` but not in ``raw``, as in libcni."""

    raw: bytes
    name: str
    cni_version: str
    disable_check: bool
    disable_gc: bool
    plugins: tuple[NetConf, ...]
    load_only_inlined: bool = False


# ---------------------------------------------------------------- Go JSON round trip


def go_float(value: float) -> Any:
    """A float64 as Go's ``encoding/json`` would print it, as something msgspec encodes the same.

    Go prints integral values below 1e21 without exponent or fraction, and larger values as
    ``1e+21``; msgspec prints ``1.0`` and ``1e21``. Other floats already match.
    """
    if value.is_integer() and abs(value) < 1e21:
        return int(Decimal(repr(value)))
    if abs(value) >= 1e21:
        return msgspec.Raw(repr(value).encode())
    return value


def go_roundtrip(obj: Any) -> Any:
    """What a value becomes after Go unmarshals it into ``interface{}`` and marshals it again:
    numbers go through float64 (large integers lose precision exactly as in Go)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj if abs(obj) <= _MAX_EXACT_INT else go_float(float(obj))
    if isinstance(obj, float):
        return go_float(obj)
    if isinstance(obj, Mapping):
        return {k: go_roundtrip(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [go_roundtrip(v) for v in obj]
    return obj


def decode_object(data: bytes, what: str = "configuration") -> dict[str, Any]:
    """JSON bytes that must hold an object."""
    limits.check_json(data, field=what)
    try:
        obj = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"error parsing {what}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"error parsing {what}: expected a JSON object, got {_kind(obj)}")
    return obj


def remarshal(obj: Mapping[str, Any]) -> bytes:
    """Go's ``json.Marshal`` of a ``map[string]interface{}`` decoded from JSON."""
    return gojson.sorted_compact(go_roundtrip(dict(obj)))


def _kind(obj: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(obj), "null" if obj is None else "number"
    )


def go_field(obj: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """Look ``name`` up the way Go fills a struct field: an exact key wins, otherwise the last
    key equal to it ignoring case. Returns (found, value)."""
    if name in obj:
        return True, obj[name]
    found, value = False, None
    folded = name.casefold()
    for key, val in obj.items():
        if key.casefold() == folded:
            found, value = True, val
    return found, value


# ---------------------------------------------------------------- plugin configs


def _string(obj: Mapping[str, Any], name: str, prefix: str) -> str:
    found, value = go_field(obj, name)
    if not found or value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidConfigError(
            f"{prefix}{name} must be a string, got {_kind(value)}", field=f"{prefix}{name}"
        )
    return value


def _capabilities(obj: Mapping[str, Any], prefix: str) -> dict[str, bool]:
    found, value = go_field(obj, "capabilities")
    where = f"{prefix}capabilities"
    if not found or value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidConfigError(f"{where} must be an object, got {_kind(value)}", field=where)
    for key, flag in value.items():
        if not isinstance(flag, bool):
            raise InvalidConfigError(
                f"{where}.{key} must be true or false, got {_kind(flag)}", field=f"{where}.{key}"
            )
    return dict(value)


def _check_ipam_dns(obj: Mapping[str, Any], prefix: str) -> None:
    """libcni unmarshals ``ipam`` and ``dns`` into structs: they must be objects."""
    for name in ("ipam", "dns"):
        found, value = go_field(obj, name)
        if found and value is not None and not isinstance(value, dict):
            raise InvalidConfigError(
                f"{prefix}{name} must be an object, got {_kind(value)}", field=f"{prefix}{name}"
            )
    found, ipam = go_field(obj, "ipam")
    if found and isinstance(ipam, dict):
        _string(ipam, "type", f"{prefix}ipam.")


def _conf_from_obj(raw: bytes, obj: dict[str, Any], prefix: str = "") -> NetConf:
    plugin_type = _string(obj, "type", prefix)
    if not plugin_type:
        raise InvalidConfigError(
            f"error parsing configuration: missing '{prefix}type'", field=f"{prefix}type"
        )
    _check_ipam_dns(obj, prefix)
    return NetConf(
        raw=raw,
        name=_string(obj, "name", prefix),
        cni_version=_string(obj, "cniVersion", prefix),
        type=plugin_type,
        capabilities=_capabilities(obj, prefix),
        data=obj,
    )


def conf_from_bytes(data: bytes) -> NetConf:
    """libcni ``ConfFromBytes``: one plugin config, kept byte for byte."""
    return _conf_from_obj(bytes(data), decode_object(data))


# ---------------------------------------------------------------- plugin lists


def _read_bool(obj: Mapping[str, Any], key: str) -> bool:
    """libcni ``readBool``: a JSON boolean or the strings "true"/"false" in any case."""
    if key not in obj:
        return False
    value = obj[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidConfigError(
        f"error parsing configuration list: invalid value {value!r} for {key}", field=key
    )


def _pick_version(obj: Mapping[str, Any]) -> str:
    """``cniVersion``, or with ``cniVersions`` the highest listed version libcni implements."""
    cni_version = obj.get("cniVersion", "")
    if not isinstance(cni_version, str):
        raise InvalidConfigError("cniVersion must be a string", field="cniVersion")
    if "cniVersions" not in obj:
        return cni_version
    listed = obj["cniVersions"]
    if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
        raise InvalidConfigError("cniVersions must be a list of strings", field="cniVersions")
    candidates = [*listed, cni_version] if cni_version else list(listed)
    try:
        parsed = [version.Version(v) for v in candidates]
    except IncompatibleVersionError as exc:
        raise InvalidConfigError(
            f"error parsing configuration list: {exc.msg}", field="cniVersions"
        ) from exc
    usable = [v for v in parsed if v <= version.Version(version.CURRENT)]
    return max(usable).text if usable else cni_version


def _list_from_obj(raw: bytes, obj: dict[str, Any]) -> NetConfList:
    """libcni ``NetworkConfFromBytes``; a list without a ``plugins`` key has no plugins."""
    name = obj.get("name")
    if not isinstance(name, str):
        what = "no name" if name is None else f"invalid name type {_kind(name)}"
        raise InvalidConfigError(f"error parsing configuration list: {what}", field="name")
    only_inlined = _read_bool(obj, "loadOnlyInlinedPlugins")
    plugins: list[NetConf] = []
    if "plugins" in obj:
        plugins = _plugins(obj["plugins"])
    elif only_inlined:
        raise InvalidConfigError(
            "error parsing configuration list: loadOnlyInlinedPlugins is true and there is "
            "no 'plugins' key",
            field="plugins",
        )
    return NetConfList(
        raw=bytes(raw),
        name=name,
        cni_version=_pick_version(obj),
        disable_check=_read_bool(obj, "disableCheck"),
        disable_gc=_read_bool(obj, "disableGC"),
        plugins=tuple(plugins),
        load_only_inlined=only_inlined,
    )


def _plugins(value: Any) -> list[NetConf]:
    if not isinstance(value, list):
        raise InvalidConfigError(
            f"error parsing configuration list: 'plugins' must be an array, got {_kind(value)}",
            field="plugins",
        )
    if not value:
        raise InvalidConfigError(
            "error parsing configuration list: no plugins in list", field="plugins"
        )
    plugins = []
    for index, item in enumerate(value):
        prefix = f"plugins[{index}]."
        if not isinstance(item, dict):
            raise InvalidConfigError(
                f"plugins[{index}] must be an object, got {_kind(item)}", field=f"plugins[{index}]"
            )
        plugins.append(_conf_from_obj(remarshal(item), item, prefix))
    return plugins


def conflist_from_bytes(data: bytes) -> NetConfList:
    """libcni ``ConfListFromBytes``; a list must have at least one plugin."""
    net = _list_from_obj(data, decode_object(data, "configuration list"))
    if not net.plugins:
        raise InvalidConfigError(
            f"configuration list {net.name!r} has no plugins", field="plugins", network=net.name
        )
    return net


def conflist_from_conf(conf: NetConf) -> NetConfList:
    """libcni ``ConfListFromConf``: a one-plugin list named and versioned like the conf.

    ``raw`` is the list libcni synthesises; the plugin keeps the conf's own bytes (whatever the
    plugin finally gets is re-marshalled on injection, so this changes no stdin).
    """
    raw = remarshal({"cniVersion": conf.cni_version, "name": conf.name, "plugins": [conf.data]})
    return NetConfList(
        raw=raw,
        name=conf.name,
        cni_version=conf.cni_version,
        disable_check=False,
        disable_gc=False,
        plugins=(conf,),
    )


def load_any(data: bytes) -> NetConfList:
    """A conflist (it has a ``plugins`` key) or a single conf wrapped into a list."""
    obj = decode_object(data)
    if "plugins" in obj:
        return conflist_from_bytes(data)
    return conflist_from_conf(_conf_from_obj(bytes(data), obj))


# ---------------------------------------------------------------- files


def files_in_dir(directory: str, extensions: tuple[str, ...] = CONF_EXTENSIONS) -> list[str]:
    """libcni ``ConfFiles``, sorted by name: files (not directories) with one of the
    extensions. A missing directory has no files; an unreadable one is an I/O error."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise IOFailure(f"cannot read {directory}: {exc.strerror}", path=directory) from exc
    return sorted(
        os.path.join(directory, e.name)
        for e in entries
        if not e.is_dir(follow_symlinks=False) and os.path.splitext(e.name)[1] in extensions
    )


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise IOFailure(f"error reading {path}: {exc.strerror}", path=path) from exc


def _located(exc: InvalidConfigError | DecodeError, path: str) -> InvalidConfigError | DecodeError:
    """The same error, saying which file held the bad config."""
    again = type(exc)(
        f"{path}: {exc.msg}", details=exc.details, field=exc.field, network=exc.network, path=path
    )
    again.__cause__ = exc
    return again


def subdirectory_plugins(conf_dir: str, network: str) -> list[NetConf]:
    """libcni >= 1.2: the plugins in ``<conf_dir>/<network>/*.conf``, in name order."""
    validate_network_name(network)  # it names a directory: no "..", no "/"
    plugins = []
    for path in files_in_dir(os.path.join(conf_dir, network), (".conf",)):
        try:
            plugins.append(conf_from_bytes(_read_file(path)))
        except (InvalidConfigError, DecodeError) as exc:
            raise _located(exc, path) from exc
    return plugins


def conflist_from_file(path: str) -> NetConfList:
    """A ``.conflist`` file plus its subdirectory plugins (unless ``loadOnlyInlinedPlugins``),
    or any other file as a single conf wrapped into a list."""
    data = _read_file(path)
    try:
        if not path.endswith(".conflist"):
            return _conf_as_list(data)
        net = _parsed_list(data)
    except (InvalidConfigError, DecodeError) as exc:
        raise _located(exc, path) from exc
    if not net.load_only_inlined:
        extra = subdirectory_plugins(os.path.dirname(path), net.name)
        net = NetConfList(
            raw=net.raw,
            name=net.name,
            cni_version=net.cni_version,
            disable_check=net.disable_check,
            disable_gc=net.disable_gc,
            plugins=(*net.plugins, *extra),
            load_only_inlined=net.load_only_inlined,
        )
    if not net.plugins:
        raise InvalidConfigError(
            f"{path}: no plugin configs found", field="plugins", network=net.name, path=path
        )
    return net


#: Parsed files kept by their bytes: the file is read on every call (a change is seen at
#: once), parsed only when its bytes differ from a parse already made.
_PARSED_FILES = 256


@functools.lru_cache(maxsize=_PARSED_FILES)
def _conf_as_list(data: bytes) -> NetConfList:
    return conflist_from_conf(conf_from_bytes(data))


@functools.lru_cache(maxsize=_PARSED_FILES)
def _parsed_list(data: bytes) -> NetConfList:
    return _list_from_obj(data, decode_object(data, "configuration list"))


def find_by_name(directory: str, name: str) -> NetConfList | None:
    """The first config file (by file name, every extension together) whose network is
    ``name``, as the NAD client's ``GetCNIConfigFromFile`` looks it up; None when no file
    matches. A file that does not parse is an error, as there."""
    for path in files_in_dir(directory):
        net = conflist_from_file(path)
        if net.name == name:
            return net
    return None


# ---------------------------------------------------------------- injection


def inject(raw: bytes, values: Mapping[str, Any] | None = None, /, **keys: Any) -> bytes:
    """libcni ``InjectConf``: set keys on a config and re-marshal it as Go does (keys sorted,
    compact). Values are plain JSON values or ``msgspec.Raw`` (kept as given, e.g. a
    ``prevResult`` in its own field order). Keys that are not identifiers go in ``values``.
    """
    config = decode_object(raw)
    merged = {**(values or {}), **keys}
    for key, value in merged.items():
        if not key or value is None:
            raise InternalError(f"cannot inject key {key!r} with value {value!r}")
        config[key] = value
    return remarshal(config)
