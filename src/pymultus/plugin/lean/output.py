"""Results as the bytes a process prints: a plugin's output read into a checked result
(``cni.result.parse_result``), the multus answer printed in the config's version
(``plugin.call._print``), the pod-gone answer (``core.add.empty_result``). ADD only.
"""

from __future__ import annotations

import _json

from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.js import MAX_DEPTH
from pymultus.plugin.lean.quirks import has_surrogate
from pymultus.plugin.lean.request import MAX_CONFIG_BYTES as MAX_BYTES
from pymultus.plugin.lean.results import FAMILY, convert, encode_result, parse_object, put

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Result = dict[str, Any]


class _Fallback(Exception):
    """Bytes the lean decoder cannot judge exactly as msgspec does."""


def _no_constant(name: str) -> Any:
    raise _Fallback(name)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Objects for the result scanner; duplicate keys (msgspec checks each) are not ours."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Fallback("duplicate keys")
    return obj


class _ResultScanner:
    """What ``_json.make_scanner`` reads from ``json.JSONDecoder`` (``js``'s scanner, but
    duplicate keys and constants are the full path's)."""

    strict = True
    object_hook = None
    object_pairs_hook = staticmethod(_pairs)
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)
    memo: dict[str, str] = {}  # noqa: RUF012 - read by the C scanner only


#: The C scanner takes any object with a ``json.JSONDecoder``'s attributes.
_scan: Callable[[str, int], tuple[Any, int]] = _json.make_scanner(
    _ResultScanner()  # type: ignore[arg-type]
)


def parse_result(data: bytes, version: str | None) -> Result:
    """``cni.result.parse_result(data, version)``: a plugin's output as a checked result.

    The JSON's own ``cniVersion`` decides the type, ``version`` (the network's) stands in
    when there is none and is then written in. Every address is checked and rewritten in Go's
    text. A result the full path refuses raises ``LeanError`` with its code and message
    (``invalid CNI result: ...``, code 6; an unknown version, code 1). Bytes whose JSON the
    lean decoder cannot judge exactly as msgspec does (malformed JSON, invalid UTF-8, lone
    surrogates, duplicate keys, NaN) are handed to the full path's own parser, which is
    imported for that case only.
    """
    if len(data) > MAX_BYTES:
        raise LeanError(6, f"result: too large ({len(data)} bytes, at most {MAX_BYTES})")
    try:
        obj = _decode(data)
    except (_Fallback, ValueError, StopIteration, RecursionError, SystemError):
        # SystemError: the C scanner's error path needs json.decoder, which is not imported
        return _full_path_parse(data, version)
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        found = _depth(obj)
        if found > MAX_DEPTH:
            raise LeanError(6, f"result: nested too deep ({found} levels, at most {MAX_DEPTH})")
    if b"\\u" in data and has_surrogate(obj):  # after the depth check: it recurses
        return _full_path_parse(data, version)
    return parse_object(obj, version)


def _decode(data: bytes) -> Any:
    text = data.decode("utf-8")
    start = len(text) - len(text.lstrip(" \t\n\r"))
    obj, end = _scan(text, start)
    if text[end:].strip(" \t\n\r"):
        raise _Fallback("extra data")
    return obj


def _depth(obj: Any, limit: int = 1 << 16) -> int:
    """Nesting depth of ``obj``, without recursion (a document ``_json`` parsed under a raised
    recursion limit may be deeper than Python's stack)."""
    deepest, level = 0, [obj]
    while level and deepest < limit:
        nested = [v for o in level if isinstance(o, (dict, list)) for v in _children(o)]
        deepest += any(isinstance(o, (dict, list)) for o in level)
        level = nested
    return deepest


def _children(obj: dict[str, Any] | list[Any]) -> list[Any]:
    return list(obj.values()) if isinstance(obj, dict) else obj


def _full_path_parse(data: bytes, version: str | None) -> Result:
    """The full path's parser, for bytes the lean decoder does not judge (never on the
    common path): its result as builtins, or its error as a ``LeanError``."""
    import msgspec  # noqa: PLC0415 - the rare malformed output only

    from pymultus.cni.errors import CniError  # noqa: PLC0415
    from pymultus.cni.result import parse_result as full_parse  # noqa: PLC0415

    try:
        parsed: Result = msgspec.to_builtins(full_parse(data, version))
    except CniError as exc:
        raise LeanError(exc.error_code, exc.msg, exc.details) from None
    return parsed


def can_print(result_version: str, conf_version: str) -> bool:
    """Whether ``print_result`` can answer for a delegate of ``result_version`` under a
    multus config of ``conf_version`` (every spec version converts; unknown ones are the full
    path's, which refuses them)."""
    return (result_version or "0.1.0") in FAMILY and (not conf_version or conf_version in FAMILY)


def print_result(result: Result, conf_version: str) -> bytes:
    """``plugin.call._print``: the cluster network's result in the multus config's
    ``cniVersion`` (when it has one), indented. ``LeanError`` code 1 when it cannot be
    expressed there (no address for 0.1.0/0.2.0)."""
    if conf_version:
        result = convert(result, conf_version)
    return encode_result(result, indent=True)


def empty_result(conf_version: str, ifname: str, netns: str) -> Result:
    """``core.add.empty_result`` (the pod is gone: success without running anything).
    Under a 0.x config the full path's ``convert`` refuses its own 1.x Struct (an internal
    error): ``Unhandled``, so the full path answers as it does."""
    if conf_version not in ("", "1.0.0", "1.1.0"):
        raise Unhandled(f"the empty result under cniVersion {conf_version!r}")
    iface = {"name": ifname}
    put(iface, "sandbox", netns)
    return {
        "cniVersion": conf_version or "1.0.0",
        "interfaces": [iface],
        "ips": [{"interface": 0, "address": "0.0.0.0/0", "gateway": "0.0.0.0"}],
    }
