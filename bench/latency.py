"""Latency of one pod's ADD and DEL against the number of extra networks, every contender in
the same run.

Each round visits every network count, and at each count every mode once, in an order that
rotates from round to round, so slow drift of the machine (page cache, CPU frequency, other
load) lands on every mode alike. Each run is a fresh Pod object and a fresh network
namespace: ADD, then DEL, then the namespace goes. Pods are created in the API before the
rounds start, as the scheduler would have created them before the kubelet's ADD, so the
daemon's watch cache has them.

The API server logs when each request arrived. A request that arrives while a call runs is on
that call's critical path; one that arrives after it (before the next call) was sent in the
background. Watches are not counted: they are the daemon's standing connections.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.modes import Call, run_call
from bench.stats import Summary, request_kind
from bench.world import PodId, World

MATRIX_MODES = ("thick", "thin", "direct", "socket")
COMMANDS = ("ADD", "DEL")
#: Modes whose Kubernetes Events go out in the background (the daemon's queue; the thin
#: plugin's child after the answer): an event that lands inside a later call's time window
#: was not sent by that call.
BACKGROUND_EVENTS = frozenset({"thick", "socket", "thin"})
EVENT_KIND = "POST event"
CACHE_SETTLE = 1.0  # seconds for the daemon's watch to deliver the pods just created

Cell = tuple[str, str, int]  # (mode, command, networks)


@dataclass
class ApiCount:
    """API requests of one cell: per call on the critical path and after it, and by kind."""

    critical: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)
    critical_kinds: Counter[str] = field(default_factory=Counter)
    after_kinds: Counter[str] = field(default_factory=Counter)


@dataclass
class Matrix:
    counts: tuple[int, ...]
    rounds: int
    calls: dict[Cell, list[Call]] = field(default_factory=dict)
    api: dict[Cell, ApiCount] = field(default_factory=dict)
    failures: list[Call] = field(default_factory=list)

    def ms(self, mode: str, command: str, networks: int) -> list[float]:
        return [c.ms for c in self.calls.get((mode, command, networks), []) if c.ok]

    def summary(self, mode: str, command: str, networks: int) -> Summary:
        return Summary.of(self.ms(mode, command, networks))

    def cpu(self, mode: str, command: str, networks: int) -> Summary:
        """CPU ms per call of the processes the harness started (for thick: the shim only)."""
        calls = self.calls.get((mode, command, networks), [])
        return Summary.of([c.cpu_ms for c in calls if c.ok])


def run_matrix(
    world: World,
    counts: Sequence[int],
    rounds: int,
    *,
    modes: Sequence[str] = MATRIX_MODES,
    progress: Callable[[str], None] = print,
) -> Matrix:
    """Warm up once per cell (bridges get created, files cached), then ``rounds`` rounds."""
    matrix = Matrix(tuple(counts), rounds)
    plan = [[world.new_pod(n, "lat") for n in counts for m in modes] for _ in range(rounds + 1)]
    time.sleep(CACHE_SETTLE)
    recorded: list[Call] = []
    for r, pods in enumerate(plan):
        queue = iter(pods)
        for n in counts:
            for mode in _rotated(modes, r + n):
                calls = _one_run(world, mode, next(queue))
                if r:  # round 0 is the warm-up
                    recorded += calls
        progress(f"  latency round {r}/{rounds}{' (warm-up)' if not r else ''} done")
    time.sleep(0.2)  # requests sent in the background after the last call
    _record(matrix, world, recorded)
    return matrix


def _rotated(modes: Sequence[str], k: int) -> list[str]:
    k %= len(modes)
    return [*modes[k:], *modes[:k]]


def _one_run(world: World, mode: str, pod: PodId) -> list[Call]:
    world.make_netns(pod)
    try:
        add = run_call(world, mode, "ADD", pod)
        delete = run_call(world, mode, "DEL", pod)
    finally:
        world.delete_netns(pod.netns)
    return [add, delete]


def _record(matrix: Matrix, world: World, sequence: list[Call]) -> None:
    requests = sorted((t, m, p) for t, m, p, watch in list(world.request_times) if not watch)
    times = [t for t, _, _ in requests]

    def kinds(start: float, end: float) -> list[str]:
        lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
        return [request_kind(m, p) for _, m, p in requests[lo:hi]]

    for i, call in enumerate(sequence):
        cell = (call.mode, call.command, call.pod.networks)
        matrix.calls.setdefault(cell, []).append(call)
        if not call.ok:
            matrix.failures.append(call)
        end = call.start + call.ms / 1000
        until = sequence[i + 1].start if i + 1 < len(sequence) else end + 0.2
        crit, after = kinds(call.start, end), kinds(end + 1e-9, until - 1e-9)
        if call.mode in BACKGROUND_EVENTS:  # sent from a queue: never awaited by the call
            after += [k for k in crit if k == EVENT_KIND]
            crit = [k for k in crit if k != EVENT_KIND]
        count = matrix.api.setdefault(cell, ApiCount())
        count.critical.append(len(crit))
        count.after.append(len(after))
        count.critical_kinds.update(crit)
        count.after_kinds.update(after)
