"""JSON bytes the way Go's encoding/json writes them.

Go Multus and libcni marshal with ``encoding/json``: compact output or ``MarshalIndent`` with a
4-space indent, and ``<``, ``>``, ``&``, U+2028 and U+2029 escaped inside strings. Byte-exact
compatibility (network-status, caches, results) needs the same escaping.
"""

from __future__ import annotations

from typing import Any

import msgspec

_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)

_encoder = msgspec.json.Encoder()


def html_escape(data: bytes) -> bytes:
    """Escape what Go escapes. Safe on whole documents: these bytes occur only inside strings."""
    for raw, escaped in _ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def marshal(obj: Any) -> bytes:
    """``json.Marshal``: compact, Go's HTML escaping."""
    return html_escape(_encoder.encode(obj))


def marshal_indent(obj: Any, indent: int = 4) -> bytes:
    """``json.MarshalIndent(obj, "", "    ")``."""
    return msgspec.json.format(marshal(obj), indent=indent)


def sorted_compact(obj: Any) -> bytes:
    """Go's marshalling of a ``map[string]interface{}``: keys sorted, compact, HTML-escaped."""
    return html_escape(msgspec.json.encode(obj, order="sorted"))
