"""libcni's result cache, in its exact file format, so containerd, CRI-O, podman and Go Multus
read what we write and we read theirs.

One file per attachment, ``<cacheDir>/results/<networkName>-<containerID>-<ifname>``::

    {"kind":"cniCacheV1","containerId":…,"config":<base64 of the exact config bytes>,
     "ifName":…,"networkName":…,"netns":…,"cniArgs":[[k,v],…],"capabilityArgs":{…},
     "result":{…}}

Field order is libcni's ``cachedInfo`` struct; ``netns``, ``cniArgs``, ``capabilityArgs`` and
``result`` are omitted when empty; ``capabilityArgs`` and ``result`` are Go maps, so their keys
are sorted. Unlike libcni we write atomically (temp file + rename, mode 0600, directory 0700),
so a crash never leaves half a file for a later DEL to trip on.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from pymultus.cni import limits
from pymultus.cni.atomic import write_atomic
from pymultus.cni.convert import AnyResult, encode_result, parse_result
from pymultus.cni.errors import DecodeError, InvalidConfigError, IOFailure
from pymultus.cni.netconf import go_field, remarshal

KIND = "cniCacheV1"
RESULTS = "results"


@dataclass(frozen=True)
class CacheEntry:
    """One cached attachment. ``result`` is the cached result object as JSON bytes (keys sorted,
    as in the file), ``b""`` when the file has none; ``config`` the exact config bytes."""

    container_id: str
    ifname: str
    network_name: str
    config: bytes
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)
    result: bytes = b""

    @classmethod
    def for_result(
        cls,
        result: AnyResult,
        *,
        container_id: str,
        ifname: str,
        network_name: str,
        config: bytes,
        netns: str = "",
        cni_args: tuple[tuple[str, str], ...] = (),
        capability_args: Mapping[str, Any] | None = None,
    ) -> CacheEntry:
        """The entry libcni's ``cacheAdd`` writes for ``result`` (re-marshalled as a Go map)."""
        return cls(
            container_id=container_id,
            ifname=ifname,
            network_name=network_name,
            config=config,
            netns=netns,
            cni_args=cni_args,
            capability_args=dict(capability_args or {}),
            result=result_bytes(encode_result(result)),
        )

    def typed_result(self, version: str | None = None) -> AnyResult | None:
        """The cached result parsed in its own version, or None when there is none."""
        return parse_result(self.result, version) if self.result else None


def result_bytes(encoded: bytes) -> bytes:
    """A result as libcni caches it: marshalled, decoded into a Go map, marshalled again."""
    limits.check_json(encoded, field="result", error=DecodeError)
    try:
        obj = msgspec.json.decode(encoded)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"cannot cache a result that is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise DecodeError("cannot cache a result that is not a JSON object")
    return remarshal(obj)


# ---------------------------------------------------------------- paths


def cache_path(cache_dir: str, network: str, container_id: str, ifname: str) -> str:
    """``<cache_dir>/results/<network>-<container_id>-<ifname>``; all three are needed, and none
    may leave the directory."""
    for what, value in (("network name", network), ("container ID", container_id)):
        _check_component(what, value)
    _check_component("interface name", ifname)
    return os.path.join(cache_dir, RESULTS, f"{network}-{container_id}-{ifname}")


def _check_component(what: str, value: str) -> None:
    if not value or "/" in value or "\0" in value:
        raise InvalidConfigError(
            f"cache file path requires a valid {what}, got {value!r}",
            field={"network name": "name", "container ID": "containerID"}.get(what, "ifname"),
        )


# ---------------------------------------------------------------- encoding


def encode(entry: CacheEntry, *, sort_keys: bool = False) -> bytes:
    """The exact bytes libcni writes for ``entry``.

    ``sort_keys`` gives the bytes Go Multus writes when it edits a cached result's routes (it
    round-trips the file through a Go map, so every key is sorted).
    """
    if sort_keys:
        return remarshal(msgspec.json.decode(encode(entry)))
    parts = [
        b'{"kind":"cniCacheV1"',
        b',"containerId":' + remarshal_value(entry.container_id),
        b',"config":' + remarshal_value(base64.b64encode(entry.config).decode("ascii")),
        b',"ifName":' + remarshal_value(entry.ifname),
        b',"networkName":' + remarshal_value(entry.network_name),
    ]
    if entry.netns:
        parts.append(b',"netns":' + remarshal_value(entry.netns))
    if entry.cni_args:
        parts.append(b',"cniArgs":' + remarshal_value([list(p) for p in entry.cni_args]))
    if entry.capability_args:
        parts.append(b',"capabilityArgs":' + remarshal(entry.capability_args))
    if entry.result and entry.result.strip() not in (b"{}", b"null"):
        parts.append(b',"result":' + entry.result)
    return b"".join(parts) + b"}"


def remarshal_value(value: Any) -> bytes:
    """One JSON value as Go marshals it (maps sorted, Go's escaping and numbers)."""
    return remarshal({"v": value})[len(b'{"v":') : -1]


class _Wire(msgspec.Struct):
    """libcni's ``cachedInfo`` as it is on disk."""

    kind: str = ""
    containerId: str = ""
    config: str | None = None
    ifName: str = ""
    networkName: str = ""
    netns: str = ""
    cniArgs: list[tuple[str, str]] | None = None
    capabilityArgs: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


def _fold_keys(obj: dict[str, Any]) -> dict[str, Any]:
    """Go matches struct fields ignoring case: map each key onto its field's spelling."""
    folded = {}
    for name in _Wire.__struct_fields__:
        found, value = go_field(obj, name)
        if found:
            folded[name] = value
    return folded


def decode(data: bytes, *, path: str = "") -> CacheEntry:
    """Parse a cache file. Raises ``DecodeError`` for anything but a ``cniCacheV1`` entry."""
    where = path or "cache entry"
    limits.check_json(data, field=where, error=DecodeError)
    try:
        raw = msgspec.json.decode(data)
        if not isinstance(raw, dict):
            raise DecodeError(f"{where}: not a JSON object", path=path or None)
        wire = msgspec.convert(_fold_keys(raw), _Wire)
        config = base64.b64decode(wire.config or "", validate=True)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        # ValueError: bad base64 or non-ASCII in ``config`` (binascii.Error, UnicodeError)
        raise DecodeError(f"{where}: not a libcni cache entry: {exc}", path=path or None) from exc
    if wire.kind != KIND:
        raise DecodeError(f"{where}: cache entry has wrong kind {wire.kind!r}", path=path or None)
    return CacheEntry(
        container_id=wire.containerId,
        ifname=wire.ifName,
        network_name=wire.networkName,
        config=config,
        netns=wire.netns,
        cni_args=tuple(wire.cniArgs or ()),
        capability_args=wire.capabilityArgs or {},
        result=remarshal(wire.result) if wire.result else b"",
    )


# ---------------------------------------------------------------- files


def write(cache_dir: str, entry: CacheEntry, *, sort_keys: bool = False) -> str:
    """Write ``entry`` atomically (``sort_keys`` as for ``encode``); returns the file's path."""
    path = cache_path(cache_dir, entry.network_name, entry.container_id, entry.ifname)
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot create {directory}: {exc.strerror}", path=path) from exc
    write_atomic(path, encode(entry, sort_keys=sort_keys))
    return path


def read_bytes(cache_dir: str, network: str, container_id: str, ifname: str) -> bytes | None:
    """The file's bytes, or None when it cannot be read (libcni ignores read errors: the
    attachment may simply never have been cached)."""
    path = cache_path(cache_dir, network, container_id, ifname)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def read(cache_dir: str, network: str, container_id: str, ifname: str) -> CacheEntry | None:
    """The cached attachment, None when there is no file; ``DecodeError`` for a bad file."""
    data = read_bytes(cache_dir, network, container_id, ifname)
    if data is None:
        return None
    return decode(data, path=cache_path(cache_dir, network, container_id, ifname))


def read_result(cache_dir: str, network: str, container_id: str, ifname: str) -> bytes | None:
    """The cached result's JSON bytes (libcni ``getCachedResult``): from a ``cniCacheV1``
    entry, or a whole legacy file (a bare result, as libcni < 0.7 cached). None if no file."""
    data = read_bytes(cache_dir, network, container_id, ifname)
    if data is None:
        return None
    try:
        entry = decode(data)
    except DecodeError:
        return data  # legacy cache: the file is the result; the caller's parse decides
    return entry.result or None


def delete(cache_dir: str, network: str, container_id: str, ifname: str) -> None:
    """Remove the entry; already gone is fine."""
    path = cache_path(cache_dir, network, container_id, ifname)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise IOFailure(f"cannot remove cache file {path}: {exc.strerror}", path=path) from exc


def list_attachments(
    cache_dir: str, network: str | None = None, *, container_id: str | None = None
) -> list[CacheEntry]:
    """Every readable ``cniCacheV1`` entry, in file-name order (libcni
    ``GetCachedAttachments``), optionally only one network's or one container's. Unreadable,
    foreign or incomplete files are skipped. Files are named ``<network>-<id>-<ifname>``, so
    a filter skips the files whose name cannot match before reading any (a DEL must not read
    every pod's cache on the node)."""
    directory = os.path.join(cache_dir, RESULTS)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise IOFailure(f"cannot list {directory}: {exc.strerror}", path=directory) from exc
    entries = []
    for name in names:
        if name.startswith(".tmp-") or not _may_match(name, network, container_id):
            continue
        entry = _try_read(os.path.join(directory, name))
        if entry is None or not entry.ifname or not entry.network_name:
            continue
        if network is not None and entry.network_name != network:
            continue
        if container_id is not None and entry.container_id != container_id:
            continue
        entries.append(entry)
    return entries


def _may_match(name: str, network: str | None, container_id: str | None) -> bool:
    if network is not None and not name.startswith(f"{network}-"):
        return False
    return container_id is None or f"-{container_id}-" in name


def _try_read(path: str) -> CacheEntry | None:
    try:
        with open(path, "rb") as fh:
            return decode(fh.read(), path=path)
    except (OSError, DecodeError):
        return None
