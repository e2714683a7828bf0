"""libcni's result cache, ``<cacheDir>/results/<network>-<containerID>-<ifname>``
(``cni.cache``): the entry an ADD writes, the cached result a DEL gives its plugins, the entry
a DEL removes; each file read as the full path reads it, or by the full path itself when the
lean reading cannot be sure (``_full_cached``: its imports, never on the common path). And
``write_atomic`` (``cni.atomic``), which the delegate cache uses too.
"""

from __future__ import annotations

import binascii

from pymultus.plugin.lean import js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.quirks import exact_keys, folded, go_keeps, msgspec_reads
from pymultus.plugin.lean.request import MAX_CONFIG_BYTES
from pymultus.plugin.lean.results import convert, encode_result, parse_object

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pymultus.plugin.lean.chain import Runtime

_KEYS = folded(
    *("kind", "containerId", "config", "ifName", "networkName", "netns"),
    *("cniArgs", "capabilityArgs", "result"),
)


class Entry:
    """``cache.CacheEntry``: one attachment libcni's cache records (``result`` decoded)."""

    __slots__ = (
        "capability_args",
        "cni_args",
        "config",
        "container_id",
        "ifname",
        "netns",
        "network_name",
        "path",
        "result",
    )

    def __init__(self, obj: dict[str, Any], config: bytes, path: str = "") -> None:
        self.container_id: str = obj.get("containerId", "")
        self.ifname: str = obj.get("ifName", "")
        self.network_name: str = obj.get("networkName", "")
        self.netns: str = obj.get("netns", "")
        self.config = config
        self.cni_args: list[tuple[str, str]] = [(k, v) for k, v in obj.get("cniArgs") or ()]
        self.capability_args: dict[str, Any] = obj.get("capabilityArgs") or {}
        self.result: dict[str, Any] | None = obj.get("result") or None
        self.path = path


def cache_path(cache_dir: str, network: str, container_id: str, ifname: str) -> str:
    return os.path.join(cache_dir, "results", f"{network}-{container_id}-{ifname}")


def names_ok(*values: str) -> bool:
    """``cache._check_component`` accepts each (non-empty, no ``/`` or NUL)."""
    return all(v and "/" not in v and "\0" not in v for v in values)


# ================================================================ ADD: the entry written


def entry_bytes(net_name: str, config: bytes, rt: Runtime, result: bytes) -> bytes:
    """``cache.encode(CacheEntry.for_result(...))``: libcni's ``cachedInfo`` bytes."""
    b64 = binascii.b2a_base64(config, newline=False).decode("ascii")
    parts = [
        b'{"kind":"cniCacheV1"',
        b',"containerId":' + js.marshal(rt.container_id),
        b',"config":' + js.marshal(b64),
        b',"ifName":' + js.marshal(rt.ifname),
        b',"networkName":' + js.marshal(net_name),
    ]
    if rt.netns:
        parts.append(b',"netns":' + js.marshal(rt.netns))
    if rt.args:
        parts.append(b',"cniArgs":' + js.marshal([list(p) for p in rt.args]))
    if rt.capability_args:
        parts.append(b',"capabilityArgs":' + js.sorted_compact(rt.capability_args))
    if result and result.strip() not in (b"{}", b"null"):
        parts.append(b',"result":' + result)
    return b"".join(parts) + b"}"


def cached_result_bytes(result: dict[str, Any]) -> bytes:
    """``cache.result_bytes(encode_result(r))``: what libcni's cache holds as ``result``."""
    if go_keeps(result):
        return js.sorted_compact(result)
    from pymultus.cni import cache  # noqa: PLC0415 - numbers Go rewrites: the full path's

    return bytes(cache.result_bytes(encode_result(result)))


def write(cache_dir: str, name: str, config: bytes, rt: Runtime, result: dict[str, Any]) -> None:
    """``cache.write``: directory 0700, then the file replaced atomically (mode 0600)."""
    data = entry_bytes(name, config, rt, cached_result_bytes(result))
    path = cache_path(cache_dir, name, rt.container_id, rt.ifname)
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise LeanError(5, f"cannot create {directory}: {exc.strerror}") from None
    write_atomic(path, data)


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """``cni.atomic.write_atomic`` (not durable): a private ``.<name>.<random>.tmp`` beside
    ``path``, its mode set, the data written, then renamed over ``path``; the temporary file
    is removed on failure. ``LeanError`` (code 5) naming ``path``."""
    directory = os.path.dirname(path) or "."
    base = os.path.basename(path)
    try:
        while True:
            tmp = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                continue
        try:
            _write_all(fd, data, mode)
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
    except OSError as exc:
        raise LeanError(5, f"cannot write {path}: {exc.strerror or exc}") from None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return


def _write_all(fd: int, data: bytes, mode: int) -> None:
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


# ================================================================ DEL: the entry read


def decode_entry(data: bytes, path: str = "") -> Entry | None:
    """``cache.decode`` for the files the lean path reads alike; None when it cannot be
    sure (another shape, a key Go matches ignoring case, bad base64...)."""
    if len(data) > MAX_CONFIG_BYTES:
        return None
    try:
        obj = js.loads(data)
        if not isinstance(obj, dict) or not msgspec_reads(data, obj):
            return None
        exact_keys(obj, _KEYS)
    except Unhandled:
        return None
    if obj.get("kind") != "cniCacheV1" or not _entry_types(obj):
        return None
    try:
        config = binascii.a2b_base64(obj.get("config") or "", strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return Entry(obj, config, path)


def _entry_types(obj: dict[str, Any]) -> bool:
    for key in ("containerId", "ifName", "networkName", "netns"):
        if not isinstance(obj.get(key, ""), str):
            return False
    if not isinstance(obj.get("config"), (str, type(None))):
        return False
    args = obj.get("cniArgs")
    if args is not None and not (
        isinstance(args, list)
        and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in args
        )
    ):
        return False
    return all(isinstance(obj.get(k), (dict, type(None))) for k in ("capabilityArgs", "result"))


def cached_result(cache_dir: str, name: str, version: str, rt: Runtime) -> dict[str, Any] | None:
    """``CNIConfig._cached_result``: the cached result in the network's ``version``, None
    when nothing is cached; ``LeanError`` (the full path's) for one it cannot read."""
    if not names_ok(name, rt.container_id, rt.ifname):
        return _full_cached(cache_dir, name, version, rt)
    try:
        with open(cache_path(cache_dir, name, rt.container_id, rt.ifname), "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    entry = decode_entry(data)
    if entry is None:
        return _full_cached(cache_dir, name, version, rt)
    if entry.result is None:
        return None
    return convert(parse_object(entry.result, None), version)


def drop(cache_dir: str, name: str, rt: Runtime) -> None:
    """``CNIConfig._drop_cache``: remove the entry, whatever happens."""
    if not names_ok(name, rt.container_id, rt.ifname):
        return
    try:  # noqa: SIM105 - no contextlib (an import)
        os.unlink(cache_path(cache_dir, name, rt.container_id, rt.ifname))
    except OSError:
        pass


def _full_cached(cache_dir: str, name: str, version: str, rt: Runtime) -> dict[str, Any] | None:
    """The full path's ``_cached_result``, for a file the lean reading is not sure of."""
    from pymultus.cni import cache  # noqa: PLC0415 - the odd file only
    from pymultus.cni import convert as full  # noqa: PLC0415
    from pymultus.cni.errors import CniError  # noqa: PLC0415

    try:
        data = cache.read_result(cache_dir, name, rt.container_id, rt.ifname)
        if data is None:
            return None
        result = full.convert(full.parse_result(data), version)
    except CniError as exc:
        raise LeanError(exc.error_code, exc.msg, exc.details) from None
    return js.loads_object(full.encode_result(result))
