"""``CNI_ARGS``: the ``K=V;K2=V2`` string a runtime passes to every plugin.

libcni's ``types.LoadArgs`` splits each pair on every ``=`` and rejects a value holding one;
we split on the first ``=`` only, so a value such as a base64 token survives (the Go plugins
reading what we pass on are no stricter than the runtime that gave it to us). Empty segments
(a trailing ``;``) are skipped. Order and duplicates are kept: plugins see the pairs as given.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymultus.cni.errors import InvalidEnvironmentError
from pymultus.cni.limits import MAX_ARGS_BYTES, check_size

_FIELD = "CNI_ARGS"


def parse_cni_args(value: str) -> list[tuple[str, str]]:
    """Split ``CNI_ARGS`` into ``(key, value)`` pairs, keys and values stripped."""
    check_size(value, field=_FIELD, max_bytes=MAX_ARGS_BYTES)
    pairs: list[tuple[str, str]] = []
    for segment in value.split(";"):
        if not segment.strip():
            continue
        key, sep, val = segment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidEnvironmentError(
                f"CNI_ARGS: invalid pair {segment!r}: expected KEY=VALUE", field=_FIELD
            )
        pairs.append((key, val.strip()))
    return pairs


def format_cni_args(pairs: Iterable[tuple[str, str]]) -> str:
    """Join pairs the way libcni does (``K=V`` joined by ``;``), refusing pairs that would not
    parse back: an empty key, or a ``;`` in a key or value, or an ``=`` in a key."""
    parts: list[str] = []
    for key, val in pairs:
        if not key or "=" in key or ";" in key or ";" in val:
            raise InvalidEnvironmentError(
                f"CNI_ARGS: cannot pass pair {key!r}={val!r}: keys must be non-empty without "
                "'=' or ';', values without ';'",
                field=_FIELD,
            )
        parts.append(f"{key}={val}")
    return ";".join(parts)
