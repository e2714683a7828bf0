"""Issue #7's acceptance criteria, checked against one run's numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.latency import Matrix
from bench.load import LoadResult
from bench.memory import Rss
from bench.reference import GO_ADD, GO_LOAD_30x4, go_ratio, go_value
from bench.startup import Startup
from bench.webhook import MAX_P99_MS as MAX_WEBHOOK_P99_MS
from bench.webhook import WebhookResult

MAX_OVERHEAD_MS = 15.0
OVERHEAD_COUNTS = (0, 1, 2, 4)
MIN_RATE_30x4 = 45.0
MAX_P99_100x16_MS = 2000.0
MAX_ADD_REQUESTS = 2
MAX_RSS_MIB = 60.0
MAX_THIN_START_MS = 250.0
MAX_SHIM_MS = 40.0


@dataclass(frozen=True)
class Check:
    what: str
    target: str
    measured: str
    ok: bool


@dataclass
class Run:
    """Everything one ``make bench`` measured."""

    matrix: Matrix
    load: list[LoadResult]
    startup: Startup
    memory: list[Rss]
    leftovers: list[str] = field(default_factory=list)
    webhook: WebhookResult | None = None


def checks(run: Run) -> list[Check]:
    return [
        *_ratio_checks(run.matrix),
        _overhead_check(run.matrix),
        _scaled_overhead_check(run.matrix),
        *_load_checks(run.load),
        *_api_checks(run.matrix),
        _rss_check(run.memory),
        _thin_start_check(run.startup),
        _shim_check(run.matrix),
        Check(
            "every DEL cleaned up (no host-local reservation left)",
            "0 left",
            f"{len(run.leftovers)} left",
            not run.leftovers,
        ),
        *([webhook_check(run.webhook)] if run.webhook is not None else []),
    ]


def webhook_check(result: WebhookResult) -> Check:
    """Issue #13: a pod with 8 networks reviewed in under 10 ms at p99, over 1,000 reviews."""
    return Check(
        f"webhook review p99, pod with {result.networks} networks, {result.reviews} reviews "
        "(issue #13)",
        f"< {MAX_WEBHOOK_P99_MS:g} ms, all allowed",
        f"{result.latency.p99:.2f} ms, {result.allowed} allowed",
        result.latency.p99 < MAX_WEBHOOK_P99_MS and result.allowed == result.reviews,
    )


def ratio(matrix: Matrix, mode: str, command: str, n: int) -> float:
    base = matrix.summary("direct", command, n).median
    return matrix.summary(mode, command, n).median / base if base else math.nan


def _ratio_checks(matrix: Matrix) -> list[Check]:
    out = []
    for n in matrix.counts:
        go = go_ratio(n)
        if go is None:
            continue
        r = ratio(matrix, "thick", "ADD", n)
        out.append(
            Check(
                f"thick ADD / direct at {n} extra networks",
                f"≤ {go:.2f} (Go thick)",
                f"{r:.2f}",
                r <= go,
            )
        )
    return out


def overhead(matrix: Matrix, mode: str, command: str, n: int) -> float:
    return matrix.summary(mode, command, n).median - matrix.summary("direct", command, n).median


def _overhead_check(matrix: Matrix) -> Check:
    counts = [n for n in OVERHEAD_COUNTS if n in matrix.counts]
    values = [overhead(matrix, "thick", "ADD", n) for n in counts]
    shown = " / ".join(f"{v:.1f}" for v in values)
    return Check(
        f"thick ADD - direct (ms) at {'/'.join(map(str, counts))} extra networks",
        f"≤ {MAX_OVERHEAD_MS:g} ms each",
        shown,
        all(v <= MAX_OVERHEAD_MS for v in values),
    )


def _scaled_overhead_check(matrix: Matrix) -> Check:
    """The 15 ms bar scaled by how much slower this machine's floor is than the issue's:
    ``15 x direct here / Go's direct`` at each count (direct here is the same plugins run by
    the same harness, so the factor is the machine, not pymultus)."""
    counts = [n for n in OVERHEAD_COUNTS if n in matrix.counts]
    rows = []
    for n in counts:
        here, there = matrix.summary("direct", "ADD", n).median, go_value(GO_ADD, "direct", n)
        bar = MAX_OVERHEAD_MS * max(here / there, 1.0) if there else MAX_OVERHEAD_MS
        rows.append((overhead(matrix, "thick", "ADD", n), bar))
    return Check(
        "thick ADD - direct, against 15 ms scaled by this machine's direct / Go's direct "
        "(not in the issue)",
        "≤ " + " / ".join(f"{bar:.1f}" for _, bar in rows) + " ms",
        " / ".join(f"{value:.1f}" for value, _ in rows),
        all(value <= bar for value, bar in rows),
    )


def _find(load: Sequence[LoadResult], mode: str, pods: int, parallel: int) -> LoadResult | None:
    return next((r for r in load if (r.mode, r.pods, r.parallel) == (mode, pods, parallel)), None)


def _load_checks(load: Sequence[LoadResult]) -> list[Check]:
    out = []
    r = _find(load, "thick", 30, 4)
    if r is not None:
        out.append(
            Check(
                "thick, 30 pods x 4 at a time",
                f"≥ {MIN_RATE_30x4:g} pods/s, no error",
                f"{r.pods_per_s:.1f} pods/s, {r.errors} errors",
                r.pods_per_s >= MIN_RATE_30x4 and r.errors == 0,
            )
        )
    direct = _find(load, "direct", 30, 4)
    if r is not None and direct is not None and direct.pods_per_s:
        share, need = r.pods_per_s / direct.pods_per_s, MIN_RATE_30x4 / GO_LOAD_30x4["direct"]
        out.append(
            Check(
                "thick, 30 pods x 4, as a share of direct on this machine (not in the issue)",
                f"≥ {need:.2f} (45 of Go's direct 74; Go thick "
                f"{GO_LOAD_30x4['Go thick'] / GO_LOAD_30x4['direct']:.2f})",
                f"{share:.2f} ({r.pods_per_s:.1f} of {direct.pods_per_s:.1f} pods/s)",
                share >= need,
            )
        )
    r = _find(load, "thick", 100, 16)
    if r is not None:
        out.append(
            Check(
                "thick, 100 pods x 16 at a time",
                f"no error, p99 ADD < {MAX_P99_100x16_MS / 1000:g} s",
                f"{r.errors} errors, p99 {r.add.p99:.0f} ms",
                r.errors == 0 and r.add.p99 < MAX_P99_100x16_MS,
            )
        )
    return out


def _api_checks(matrix: Matrix) -> list[Check]:
    add = [max(matrix.api[("thick", "ADD", n)].critical, default=0) for n in matrix.counts]
    dels = [max(matrix.api[("thick", "DEL", n)].critical, default=0) for n in matrix.counts]
    return [
        Check(
            "API requests on the critical path of a thick ADD (most in any run)",
            f"≤ {MAX_ADD_REQUESTS}",
            " / ".join(map(str, add)) + f" at {'/'.join(map(str, matrix.counts))} networks",
            max(add) <= MAX_ADD_REQUESTS,
        ),
        Check(
            "API requests of a thick DEL, pod in the cache",
            "0",
            str(max(dels)),
            max(dels) == 0,
        ),
    ]


def _rss_check(memory: Sequence[Rss]) -> Check:
    full = memory[-1]
    return Check(
        f"daemon RSS, {full.pods} pods + {full.nads} NADs cached",
        f"≤ {MAX_RSS_MIB:g} MiB",
        f"{full.rss_mib:.1f} MiB (peak {full.peak_mib:.1f})",
        full.rss_mib <= MAX_RSS_MIB,
    )


def _thin_start_check(startup: Startup) -> Check:
    s = startup.programs["thin multus VERSION"]
    return Check(
        "thin plugin start-up (VERSION, wall time)",
        f"< {MAX_THIN_START_MS:g} ms",
        f"{s.median:.1f} ms median, p90 {s.p90:.1f}",
        s.median < MAX_THIN_START_MS,
    )


def shim_cost(matrix: Matrix, command: str, n: int) -> float:
    """What the shim process adds to one call: thick minus the same request sent straight to
    the daemon's socket by the harness."""
    return matrix.summary("thick", command, n).median - matrix.summary("socket", command, n).median


def _shim_check(matrix: Matrix) -> Check:
    costs = [shim_cost(matrix, c, n) for c in ("ADD", "DEL") for n in matrix.counts]
    return Check(
        "shim cost per call (thick - same request sent to the socket directly)",
        f"< {MAX_SHIM_MS:g} ms",
        f"{min(costs):.1f} to {max(costs):.1f} ms",
        max(costs) < MAX_SHIM_MS,
    )
