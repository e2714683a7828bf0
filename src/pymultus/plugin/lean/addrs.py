"""IP addresses and CIDRs as text, read and written as Python's ``ipaddress`` does (the full
path's canonical text, ``cni.result.canonical_ip``/``canonical_cidr``) without importing it
(~3 ms), nor ``_socket``: a DEL must not load it.
"""

from __future__ import annotations

from pymultus.plugin.lean.errors import LeanError

_HEX = frozenset("0123456789abcdefABCDEF")


def _v4_int(text: str) -> int | None:
    """``IPv4Address``'s parse: four decimal octets of at most 3 ASCII digits, no leading
    zero, each at most 255. None when not an IPv4 address."""
    octets = text.split(".")
    if len(octets) != 4:
        return None
    value = 0
    for octet in octets:
        if not (octet.isascii() and octet.isdigit()) or len(octet) > 3:
            return None
        if octet[0] == "0" and octet != "0":
            return None
        number = int(octet)
        if number > 255:
            return None
        value = value << 8 | number
    return value


def _hextets(parts: list[str], value: int = 0) -> int | None:
    """``value`` followed by the hextets ``parts``; None when one is not 1-4 hex digits."""
    for part in parts:
        if not part or len(part) > 4 or not _HEX.issuperset(part):
            return None
        value = value << 16 | int(part, 16)
    return value


def _v6_int(text: str) -> int | None:
    """``IPv6Address``'s parse (without a ``%zone``, which the full path refuses): hextets,
    at most one ``::``, an optional dotted IPv4 tail. None when not an IPv6 address."""
    parts = text.split(":")
    if len(parts) < 3:
        return None
    if "." in parts[-1]:
        tail = _v4_int(parts.pop())
        if tail is None:
            return None
        parts += [f"{tail >> 16:x}", f"{tail & 0xFFFF:x}"]
    if len(parts) > 9:
        return None
    spans = _v6_spans(parts)
    if spans is None:
        return None
    high, low, skipped = spans
    value = _hextets(parts[:high])
    if value is None:
        return None
    return _hextets(parts[len(parts) - low :], value << 16 * skipped)


def _v6_spans(parts: list[str]) -> tuple[int, int, int] | None:
    """How many parts come before and after ``::`` and how many zero hextets it stands for
    (``ipaddress``'s rules for where empty parts may be)."""
    skip = None
    for i in range(1, len(parts) - 1):
        if not parts[i]:
            if skip is not None:
                return None
            skip = i
    if skip is None:
        if len(parts) != 8 or not parts[0] or not parts[-1]:
            return None
        return 8, 0, 0
    high, low = skip, len(parts) - skip - 1
    if not parts[0]:
        high -= 1
        if high:
            return None
    if not parts[-1]:
        low -= 1
        if low:
            return None
    skipped = 8 - (high + low)
    return None if skipped < 1 else (high, low, skipped)


def _v4_text(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def v6_text(value: int) -> str:
    """``str(IPv6Address(value))``: lower-case hextets, the first longest run of two or more
    zero hextets written ``::``."""
    hextets = [f"{value >> (112 - 16 * i) & 0xFFFF:x}" for i in range(8)]
    best_start, best_len, start, length = -1, 0, -1, 0
    for i, hextet in enumerate(hextets):
        if hextet != "0":
            start, length = -1, 0
            continue
        start = i if start == -1 else start
        length += 1
        if length > best_len:
            best_start, best_len = start, length
    if best_len < 2:
        return ":".join(hextets)
    end = best_start + best_len
    return ":".join(hextets[:best_start]) + "::" + ":".join(hextets[end:])


def parse_ip(text: str) -> tuple[int, int] | None:
    """``(4 or 6, value)`` as ``ipaddress.ip_address`` reads ``text``; None when it is not
    an address, or has an IPv6 zone (refused by the full path)."""
    if "%" in text or "/" in text:
        return None
    value = _v4_int(text)
    if value is not None:
        return 4, value
    value = _v6_int(text)
    return None if value is None else (6, value)


def _mapped(value: int) -> bool:
    return value >> 32 == 0xFFFF


def ip_text(text: str) -> str | None:
    """The full path's ``canonical_ip``/``go_ip_string`` text of an address (an IPv4-mapped
    IPv6 address in dotted form); "" stays ""; None when ``text`` is not an address."""
    if not text:
        return ""
    parsed = parse_ip(text)
    if parsed is None:
        return None
    family, value = parsed
    if family == 4:
        return _v4_text(value)
    return _v4_text(value & 0xFFFFFFFF) if _mapped(value) else v6_text(value)


def result_error(field: str, msg: str) -> LeanError:
    """``cni.result._fail``: a ``DecodeError`` (code 6)."""
    return LeanError(6, f"invalid CNI result: {field}: {msg}")


def canonical_ip(text: str, field: str) -> str:
    """``cni.result.canonical_ip``: ``LeanError`` (code 6) when ``text`` is not an address."""
    found = ip_text(text)
    if found is None:
        raise result_error(field, f"invalid IP address {text!r}")
    return found


def canonical_cidr(text: str, field: str) -> str:
    """``cni.result.canonical_cidr``: ``ip/len`` with host bits kept, in Go's text."""
    address, slash, length = text.partition("/")
    if not slash or not length.isascii() or not length.isdigit() or len(length) > 6:
        raise result_error(field, f"invalid CIDR address {text!r}")
    parsed = parse_ip(address)
    if parsed is None:
        raise result_error(field, f"invalid IP address {address!r}")
    family, value = parsed
    if family == 6 and _mapped(value):
        raise result_error(field, f"IPv4-mapped IPv6 prefix {text!r} is not supported")
    if int(length) > (32 if family == 4 else 128):
        raise result_error(field, f"invalid CIDR address {text!r}")
    return f"{_v4_text(value) if family == 4 else v6_text(value)}/{int(length)}"


def family(cidr: str) -> str:
    """``"6"`` or ``"4"``: the ``version`` of a 0.x result's IP (checked text)."""
    return "6" if ":" in cidr else "4"
