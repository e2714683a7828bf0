"""Order statistics for small samples, and API request accounting."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Summary:
    """Median, p10-p90 and min-max of one cell, in milliseconds."""

    n: int
    median: float
    p10: float
    p90: float
    p99: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        low = min(values) if values else math.nan
        high = max(values) if values else math.nan
        return cls(
            n=len(values),
            median=percentile(values, 50),
            p10=percentile(values, 10),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            low=low,
            high=high,
        )


_POD = re.compile(r"^/api/v1/namespaces/[^/]+/pods/[^/]+(?P<status>/status)?$")
_NAD = re.compile(r"^/apis/k8s\.cni\.cncf\.io/v1/namespaces/[^/]+/network-attachment-definitions/")
_EVENTS = re.compile(r"^/api/v1/namespaces/[^/]+/events$")


def request_kind(method: str, path: str) -> str:
    """A short name for one API request: ``GET pod``, ``PUT pod/status``, ``POST event``..."""
    if m := _POD.match(path):
        return f"{method} pod{'/status' if m['status'] else ''}"
    if _NAD.match(path):
        return f"{method} nad"
    if _EVENTS.match(path):
        return f"{method} event"
    return f"{method} {path}"


def kinds_text(kinds: Counter[str], runs: int) -> str:
    """``GET pod x1, PUT pod/status x1`` averaged over ``runs`` calls."""
    if not kinds:
        return "none"
    parts = []
    for kind, count in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])):
        per = count / max(runs, 1)
        parts.append(f"{kind} x{per:g}" if per == int(per) else f"{kind} x{per:.2f}")
    return ", ".join(parts)
