"""Where a thick ADD spends its time inside ``multus-daemon``: not part of ``make bench``.

Starts the daemon under ``bench/profiled_daemon.py`` in a benchmark world, sends ``--runs``
ADD+DEL pairs for pods with ``--networks`` extra networks straight to its socket (no shim),
stops it and prints the top functions by cumulative and by own time. ``--strace`` instead
counts the daemon's system calls (all threads and children) over the same calls. ``--spans``
runs it under ``bench/spanned_daemon.py`` and prints the median wall time of each phase of a
request (cheap enough to leave the timing of the rest undisturbed).

    .venv/bin/python bench/profile_daemon.py --networks 2 --runs 30
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.modes import run_call  # noqa: E402
from bench.stats import Summary  # noqa: E402
from bench.world import World  # noqa: E402


def calls(world: World, networks: int, runs: int, mode: str) -> dict[str, Summary]:
    pods = [world.new_pod(networks, "prof") for _ in range(runs + 1)]
    time.sleep(1.0)
    ms: dict[str, list[float]] = {"ADD": [], "DEL": []}
    for i, pod in enumerate(pods):
        world.make_netns(pod)
        try:
            for command in ("ADD", "DEL"):
                call = run_call(world, mode, command, pod)
                if not call.ok:
                    raise RuntimeError(call.detail)
                if i:
                    ms[command].append(call.ms)
        finally:
            world.delete_netns(pod.netns)
    return {k: Summary.of(v) for k, v in ms.items()}


def profile(args: argparse.Namespace) -> None:
    out = Path(args.stats)
    with World.open() as world:
        os.environ["PYMULTUS_PROFILE"] = str(out)
        os.environ["PYMULTUS_PROFILE_CLOCK"] = "cpu" if args.cpu else "wall"
        launcher = [sys.executable, str(ROOT / "bench" / "profiled_daemon.py")]
        world.start_daemon(launcher=launcher)
        found = calls(world, args.networks, args.runs, args.mode)
        world.stop_daemon()
    print({k: f"{v.median:.1f} ms" for k, v in found.items()})
    files = [out, Path(f"{out}.loop")] if args.cpu else [out]
    for path in files:
        print(f"===== {path}")
        stats = pstats.Stats(str(path))
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


def strace(args: argparse.Namespace) -> None:
    with World.open() as world:
        world.start_daemon()
        assert world.daemon is not None
        calls(world, args.networks, 2, args.mode)  # warm
        log = world.path("strace.txt")
        tracer = subprocess.Popen(
            ["strace", "-f", "-c", "-o", str(log), "-p", str(world.daemon.pid)],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        found = calls(world, args.networks, args.runs, args.mode)
        tracer.terminate()
        tracer.wait(10)
        print({k: f"{v.median:.1f} ms (traced)" for k, v in found.items()})
        print(log.read_text())


def spans(args: argparse.Namespace) -> None:
    out = Path(args.stats).with_suffix(".spans.json")
    with World.open() as world:
        os.environ["PYMULTUS_SPANS"] = str(out)
        world.start_daemon(launcher=[sys.executable, str(ROOT / "bench" / "spanned_daemon.py")])
        found = calls(world, args.networks, args.runs, args.mode)
        world.stop_daemon()
    print({k: f"{v.median:.2f} ms" for k, v in found.items()}, f"({args.mode}, ADD then DEL)")
    by_label: dict[str, list[float]] = {}
    for label, ms in json.loads(out.read_text()):
        by_label.setdefault(label, []).append(ms)
    for label, values in by_label.items():
        print(f"{label:28} x{len(values):<5} median {Summary.of(values).median:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--mode", default="socket", choices=("socket", "thick"))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--stats", default="/tmp/pymultus-daemon.prof")
    parser.add_argument("--cpu", action="store_true", help="CPU time, loop thread too")
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--spans", action="store_true", help="wall time of each phase")
    args = parser.parse_args()
    (strace if args.strace else spans if args.spans else profile)(args)


if __name__ == "__main__":
    main()
