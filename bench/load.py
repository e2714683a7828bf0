"""Throughput under load: ``pods`` pods, each with two extra networks, ``parallel`` at a time.

The runtime's view of a node filling up: all sandboxes (network namespaces) exist, then ADDs
are started, at most ``parallel`` at once; the makespan is from the first ADD's start to the
last one's end. The DELs then go the same way, and the namespaces are deleted. Every ADD and
DEL that fails counts as an error; the rest give per-pod latencies.

A wave lasts a second or two, so one wave is at the mercy of whatever else the machine does
in that second: each case of thick and direct runs ``REPEATS`` times, the modes interleaved
repeat by repeat, and the median makespan is reported (errors add up, latencies pool).
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.modes import MODES, Call, run_call
from bench.stats import Summary
from bench.world import PodId, World

LOAD_NETWORKS = 2
#: Thin cases stop here: the issue's bars are 20 and 30 pods, 4 at a time (#15).
THIN_MAX_PODS = 30
CACHE_SETTLE = 1.0  # seconds for the daemon's watch to deliver the pods just created
REPEATS = 3  # waves per case, modes interleaved


@dataclass(frozen=True)
class LoadResult:
    mode: str
    pods: int
    parallel: int
    add_makespan_s: float
    del_makespan_s: float
    add: Summary
    delete: Summary
    add_errors: int
    del_errors: int
    first_error: str
    cpu_ms: dict[str, float]  # CPU per pod of the ADD wave, by who spent it
    waves: int = 1  # the case ran this many times; makespans are the median

    @property
    def pods_per_s(self) -> float:
        return self.pods / self.add_makespan_s if self.add_makespan_s else 0.0

    @property
    def del_pods_per_s(self) -> float:
        return self.pods / self.del_makespan_s if self.del_makespan_s else 0.0

    @property
    def errors(self) -> int:
        return self.add_errors + self.del_errors


def run_load(
    world: World,
    sizes: Sequence[int],
    parallels: Sequence[int],
    *,
    modes: Sequence[str] = MODES,
    progress: Callable[[str], None] = print,
) -> list[LoadResult]:
    """Every (parallel, pods) case for every mode (thin only up to ``THIN_MAX_PODS``);
    modes interleaved case by case."""
    cases = [(m, p, n) for p in parallels for n in sizes for m in modes]
    cases = [(m, p, n) for m, p, n in cases if m != "thin" or n <= THIN_MAX_PODS]
    waves = [(case, k) for case in cases for k in range(REPEATS)]
    pods = {w: [world.new_pod(LOAD_NETWORKS, "load") for _ in range(w[0][2])] for w in waves}
    time.sleep(CACHE_SETTLE)
    done: dict[tuple[str, int, int], list[_Wave]] = {}
    for k in range(REPEATS):
        for case in cases:
            if (case, k) in pods:
                done.setdefault(case, []).append(_one_wave(world, pods[(case, k)], case))
    results = []
    for case in cases:
        result = _combine(case, done[case])
        results.append(result)
        progress(
            f"  load {case[0]:6} {case[2]:3} pods x {case[1]:2}: {result.pods_per_s:5.1f} pods/s, "
            f"p99 {result.add.p99:6.0f} ms, errors {result.errors}"
        )
    return results


@dataclass(frozen=True)
class _Wave:
    adds: list[Call]
    dels: list[Call]
    add_span: float
    del_span: float
    cpu_ms: dict[str, float]


def _one_wave(world: World, pods: list[PodId], case: tuple[str, int, int]) -> _Wave:
    mode, parallel, _ = case
    for pod in pods:
        world.make_netns(pod)
    try:
        before = cpu_now(world)
        adds, add_span = _wave(world, mode, "ADD", pods, parallel)
        cpu = {k: (v - before[k]) * 1000 / len(pods) for k, v in cpu_now(world).items()}
        dels, del_span = _wave(world, mode, "DEL", pods, parallel)
    finally:
        for pod in pods:
            world.delete_netns(pod.netns)
    return _Wave(adds, dels, add_span, del_span, cpu)


def _combine(case: tuple[str, int, int], waves: list[_Wave]) -> LoadResult:
    """One result of a case's waves: median makespans, pooled latencies, summed errors."""
    mode, parallel, size = case
    adds = [c for w in waves for c in w.adds]
    dels = [c for w in waves for c in w.dels]
    failed = [c for c in adds + dels if not c.ok]
    return LoadResult(
        mode=mode,
        pods=size,
        parallel=parallel,
        add_makespan_s=statistics.median(w.add_span for w in waves),
        del_makespan_s=statistics.median(w.del_span for w in waves),
        add=Summary.of([c.ms for c in adds if c.ok]),
        delete=Summary.of([c.ms for c in dels if c.ok]),
        add_errors=sum(not c.ok for c in adds),
        del_errors=sum(not c.ok for c in dels),
        first_error=failed[0].detail[:300] if failed else "",
        cpu_ms={k: statistics.mean(w.cpu_ms[k] for w in waves) for k in waves[0].cpu_ms},
        waves=len(waves),
    )


CPU_WHO = {
    "runtime side": "processes the runtime starts (shim, thin multus, plugins) and theirs",
    "daemon": "multus-daemon itself",
    "daemon's plugins": "delegate plugins run by multus-daemon",
    "API server": "the stand-in API server (a process of its own)",
}


def cpu_now(world: World) -> dict[str, float]:
    """CPU seconds so far: the harness's reaped children, the daemon and its reaped children,
    and the API server process (``/proc/<pid>/stat``)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    daemon, daemon_children = _cpu(world.daemon.pid) if world.daemon is not None else (0.0, 0.0)
    return {
        "runtime side": children.ru_utime + children.ru_stime,
        "daemon": daemon,
        "daemon's plugins": daemon_children,
        "API server": _cpu(world.api.pid)[0],
    }


def _cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of ``pid`` itself, of its reaped children)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _wave(
    world: World, mode: str, command: str, pods: list[PodId], parallel: int
) -> tuple[list[Call], float]:
    """Run ``command`` for every pod, ``parallel`` at a time; (calls, makespan in seconds).

    The pool's threads are started by this thread, so they are in the host namespace too.
    """
    start = time.monotonic()
    with ThreadPoolExecutor(parallel, thread_name_prefix=f"bench-{mode}") as pool:
        calls = list(pool.map(lambda pod: run_call(world, mode, command, pod), pods))
    return calls, time.monotonic() - start
