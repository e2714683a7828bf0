"""``make bench``: pymultus thick, pymultus thin and the floor (direct plugin runs), measured
in one run; writes ``docs/performance.md`` and its charts (issue #7).

Needs root (network namespaces), the Debian CNI plugins in ``/usr/lib/cni`` and matplotlib
(the ``bench`` extra). ``--quick`` runs the same phases with fewer rounds and pods; ``--out``
writes the report somewhere other than ``docs/``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.* and tests.support.* (the stand-in API server)

from bench import memory, report  # noqa: E402
from bench.acceptance import Run, checks  # noqa: E402
from bench.latency import run_matrix  # noqa: E402
from bench.load import run_load  # noqa: E402
from bench.startup import machine, measure_startup  # noqa: E402
from bench.thin import thin_checks, thin_section  # noqa: E402
from bench.webhook import describe as describe_webhook  # noqa: E402
from bench.webhook import measure as measure_webhook  # noqa: E402
from bench.world import World  # noqa: E402
from pymultus import __version__  # noqa: E402


@dataclass(frozen=True)
class Plan:
    counts: tuple[int, ...] = (0, 1, 2, 4, 8)
    rounds: int = 15
    sizes: tuple[int, ...] = (10, 20, 30, 100)
    parallels: tuple[int, ...] = (4, 16)
    startup_runs: int = 20


QUICK = Plan(rounds=2, sizes=(10,), parallels=(4, 16), startup_runs=5)
#: ``--thin``: the thin plugin against direct only (no daemon): issue #15's numbers.
THIN_MODES = ("thin", "direct")
THIN_SIZES = (20, 30)
THIN_PARALLELS = (4,)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--rounds", type=int, help="latency rounds (default 15, quick 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="report directory")
    parser.add_argument(
        "--webhook-only", action="store_true", help="only the admission webhook case, printed"
    )
    parser.add_argument(
        "--thin",
        action="store_true",
        help="only the thin plugin against direct (no daemon); prints, writes no report",
    )
    return parser.parse_args(argv)


_BEGAN = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _BEGAN:5.0f} s] {message}", flush=True)


def load_average() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def measure(plan: Plan) -> Run:
    with World.open() as world:
        log(f"world: {world.work}, host netns {world.host}")
        world.start_daemon()
        memory.warm_call(world, "warm")
        idle = memory.reading(world, "fresh daemon after one ADD + DEL (idle)")
        log("start-up ...")
        startup = measure_startup(world, plan.startup_runs, world.new_pod(2, "imports"))
        log("latency ...")
        matrix = run_matrix(world, plan.counts, plan.rounds, progress=log)
        log("load ...")
        load = run_load(world, plan.sizes, plan.parallels, progress=log)
        after = memory.reading(world, "the same daemon after the latency and load runs")
        log("memory ...")
        full = memory.measure_full(world)
        leftovers = world.leftover_allocations()
    log("webhook ...")
    webhook = measure_webhook()
    return Run(matrix, load, startup, [idle, after, full], leftovers, webhook)


def measure_thin(plan: Plan) -> Run:
    """The thin plugin and direct only: start-up, latency matrix, 20 and 30 pods x 4."""
    with World.open() as world:
        log(f"world: {world.work}, host netns {world.host}")
        log("start-up ...")
        startup = measure_startup(world, plan.startup_runs, world.new_pod(2, "imports"))
        log("latency ...")
        matrix = run_matrix(world, plan.counts, plan.rounds, modes=THIN_MODES, progress=log)
        log("load ...")
        load = run_load(world, THIN_SIZES, THIN_PARALLELS, modes=THIN_MODES, progress=log)
        leftovers = world.leftover_allocations()
    return Run(matrix, load, startup, [], leftovers)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.webhook_only:  # needs no root
        log(describe_webhook(measure_webhook()))
        return 0
    if os.geteuid() != 0:
        print("bench: needs root (network namespaces); run it as root", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else Plan()
    if args.rounds:
        plan = Plan(plan.counts, args.rounds, plan.sizes, plan.parallels, plan.startup_runs)
    began, load_before = time.monotonic(), load_average()
    if args.thin:
        run = measure_thin(plan)
        print(thin_section(run))
        log(f"load average before / after: {load_before} / {load_average()}")
        return 0
    run = measure(plan)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "pymultus": __version__,
        "run": f"{'quick' if args.quick else 'full'}, {time.monotonic() - began:.0f} s",
        "load average (1/5/15 min) before / after": f"{load_before} / {load_average()}",
    }
    path = report.write(run, args.out, meta=meta, machine=machine())
    for check in [*checks(run), *thin_checks(run)]:
        log(f"{'pass' if check.ok else 'FAIL'}  {check.what}: {check.measured} ({check.target})")
    log(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
