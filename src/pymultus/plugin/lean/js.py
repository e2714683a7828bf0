"""JSON for the lean path on ``_json`` alone (the ``json`` package imports ``re``: ~8 ms).

``loads`` decodes as the full path's msgspec does for what the lean path accepts: RFC 8259
JSON only (``NaN``/``Infinity`` are refused), the last of duplicate keys wins. Anything it
cannot decode raises ``Unhandled``: the full path then reports the error in its own words.

``marshal``, ``marshal_indent`` and ``sorted_compact`` write the bytes ``cni.gojson`` writes
(msgspec's encoding with Go's HTML escaping): compact, 4-space ``MarshalIndent``, and keys
sorted at every level.
"""

from __future__ import annotations

import _json

from pymultus.plugin.lean.errors import Unhandled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: ``cni.limits.MAX_DEPTH``: deeper documents go to the full path (which refuses them).
MAX_DEPTH = 64
_INF = float("inf")
_WS = " \t\n\r"
_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def _constant(name: str) -> Any:
    raise Unhandled(f"JSON constant {name}")


class _Context:
    """What ``_json.make_scanner`` reads from ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_constant)
    memo: dict[str, str] = {}  # noqa: RUF012 - read by the C scanner only


_scan: Callable[[str, int], tuple[Any, int]] = _json.make_scanner(_Context())  # type: ignore[arg-type]


def loads(data: bytes | str) -> Any:
    """One JSON document, or ``Unhandled``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        start = len(text) - len(text.lstrip(_WS))
        obj, end = _scan(text, start)
    except (StopIteration, ValueError, RecursionError, SystemError) as exc:
        # SystemError: the C scanner's error path wants json.decoder, never imported here
        raise Unhandled(f"not JSON the lean path decodes: {exc}") from None
    if text[end:].strip(_WS):
        raise Unhandled("extra data after the JSON document")
    if _too_deep(obj, 1):
        raise Unhandled("nested too deep, or values msgspec refuses")
    return obj


def loads_object(data: bytes | str) -> dict[str, Any]:
    """A JSON object, or ``Unhandled``."""
    obj = loads(data)
    if not isinstance(obj, dict):
        raise Unhandled("not a JSON object")
    return obj


def _too_deep(obj: Any, depth: int) -> bool:
    """Deeper than ``MAX_DEPTH``, or holding what msgspec refuses and ``_json`` does not: a
    number beyond a float (``1e400``) or a lone surrogate escape (``"\\ud800"``)."""
    if isinstance(obj, str):
        return not obj.isascii() and not _utf8(obj)
    if isinstance(obj, float):
        return obj in (_INF, -_INF)
    if isinstance(obj, dict):
        if depth > MAX_DEPTH:
            return True
        return any(_too_deep(k, depth) or _too_deep(v, depth + 1) for k, v in obj.items())
    if isinstance(obj, list):
        if depth > MAX_DEPTH:
            return True
        return any(_too_deep(v, depth + 1) for v in obj)
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def html_escape(data: bytes) -> bytes:
    """``gojson.html_escape``."""
    for raw, escaped in _ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def _unknown(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON")


_compact = _json.make_encoder(
    None, _unknown, _json.encode_basestring, None, ":", ",", False, False, False
)
_sorted = _json.make_encoder(
    None, _unknown, _json.encode_basestring, None, ":", ",", True, False, False
)


def _encode(encoder: Any, obj: Any) -> bytes:
    if has_float(obj):
        raise Unhandled("floats are left to the full path")
    try:
        text = "".join(encoder(obj, 0))
        return text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise Unhandled(f"cannot encode: {exc}") from None


def has_float(obj: Any) -> bool:
    if isinstance(obj, float):
        return True
    if isinstance(obj, dict):
        return any(has_float(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(has_float(v) for v in obj)
    return False


def marshal(obj: Any) -> bytes:
    """``gojson.marshal``: compact, insertion order, Go's HTML escaping."""
    return html_escape(_encode(_compact, obj))


def sorted_compact(obj: Any) -> bytes:
    """``gojson.sorted_compact``: keys sorted at every level."""
    return html_escape(_encode(_sorted, obj))


def marshal_indent(obj: Any, indent: int = 4) -> bytes:
    """``gojson.marshal_indent``: ``MarshalIndent(obj, "", "    ")``."""
    if has_float(obj):
        raise Unhandled("floats are left to the full path")
    out: list[str] = []
    _indented(obj, out, 0, " " * indent)
    try:
        return html_escape("".join(out).encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise Unhandled(f"cannot encode: {exc}") from None


def _indented(obj: Any, out: list[str], level: int, unit: str) -> None:
    if isinstance(obj, dict) and obj:
        inner = "\n" + unit * (level + 1)
        out.append("{")
        for i, (key, value) in enumerate(obj.items()):
            if not isinstance(key, str):
                raise Unhandled("a non-string key")
            out.append(("," if i else "") + inner + _json.encode_basestring(key) + ": ")
            _indented(value, out, level + 1, unit)
        out.append("\n" + unit * level + "}")
    elif isinstance(obj, (list, tuple)) and obj:
        inner = "\n" + unit * (level + 1)
        out.append("[")
        for i, value in enumerate(obj):
            out.append(("," if i else "") + inner)
            _indented(value, out, level + 1, unit)
        out.append("\n" + unit * level + "]")
    else:
        out.append(marshal_text(obj))


def marshal_text(obj: Any) -> str:
    """One scalar or empty container, compact."""
    return "".join(_compact(obj, 0))
