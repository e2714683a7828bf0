"""CNI specification versions and what each one allows."""

from __future__ import annotations

from functools import total_ordering

from pymultus.cni.errors import IncompatibleVersionError

ALL_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"


@total_ordering
class Version:
    """A parsed semantic version ("0.3.1"); an empty string means 0.1.0, as in libcni."""

    __slots__ = ("parts", "text")

    def __init__(self, text: str) -> None:
        raw = text or "0.1.0"
        pieces = raw.split(".")
        if len(pieces) != 3 or not all(p.isdigit() for p in pieces):
            raise IncompatibleVersionError(
                f"invalid version {text!r}: expected MAJOR.MINOR.PATCH", field="cniVersion"
            )
        self.text = raw
        self.parts = (int(pieces[0]), int(pieces[1]), int(pieces[2]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.parts == other.parts

    def __lt__(self, other: Version) -> bool:
        return self.parts < other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def at_least(version: str, minimum: str) -> bool:
    """True when ``version`` >= ``minimum``."""
    return Version(version) >= Version(minimum)


def supports_check(version: str) -> bool:
    return at_least(version, "0.4.0")


def supports_status_gc(version: str) -> bool:
    return at_least(version, "1.1.0")


def require_known(version: str) -> str:
    """Return ``version`` when it is a spec version pymultus speaks, else raise code 1."""
    if (version or "0.1.0") not in ALL_VERSIONS:
        raise IncompatibleVersionError(
            f"unsupported CNI version {version!r}; supported: {', '.join(ALL_VERSIONS)}",
            field="cniVersion",
        )
    return version or "0.1.0"
