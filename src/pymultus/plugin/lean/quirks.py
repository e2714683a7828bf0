"""Where Go's and msgspec's JSON readers see a document otherwise than ``_json`` does.

Go matches struct fields ignoring case and reads numbers into float64; msgspec refuses lone
surrogates and reads integers past 64 bits as floats. The lean path reads only documents on
which they all agree; these tell which.
"""

from __future__ import annotations

from pymultus.plugin.lean.errors import Unhandled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_EXACT_INT = 1 << 53  # Go decodes JSON numbers into float64


def folded(*names: str) -> dict[str, str]:
    """Go struct field names by their case-folded form (for ``exact_keys``)."""
    return {name.casefold(): name for name in names}


def exact_keys(obj: dict[str, Any], fields: dict[str, str]) -> None:
    """Go matches struct fields ignoring case (``cni.netconf.go_field``): a key spelled
    otherwise than its field (``fields``: ``folded`` names) is the full path's."""
    for key in obj:
        name = fields.get(key.casefold())
        if name is not None and name != key:
            raise Unhandled(f"key {key!r} is read as {name!r} by Go")


def go_keeps(value: Any) -> bool:
    """No float and no integer Go's float64 would change: re-marshalling keeps it as is."""
    if isinstance(value, dict):
        return all(go_keeps(v) for v in value.values())
    if isinstance(value, list):
        return all(go_keeps(v) for v in value)
    if isinstance(value, float):
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return -_EXACT_INT <= value <= _EXACT_INT
    return True


def has_surrogate(value: Any) -> bool:
    """A lone surrogate anywhere (``_json`` decodes ``"\\ud800"``; msgspec refuses it)."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_surrogate(v) for v in value)
    return False


def msgspec_reads(data: bytes, obj: Any) -> bool:
    """True when msgspec decodes ``data`` as ``_json`` did (into ``obj``): no escaped
    surrogate (msgspec refuses lone ones), no infinite float, no integer beyond 64 bits."""
    if b"\\u" in data and b"\\ud" in data.lower():
        return False
    return _finite(obj)


def _finite(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    if isinstance(obj, float):
        return obj - obj == 0.0
    if isinstance(obj, int):
        return -(1 << 64) < obj < 1 << 64
    return True
