"""``make bench``: benchmarks (not tests). Prints medians and ratios against the floor.

For now it measures process start-up: the thin ``multus`` plugin answering VERSION against a
real delegate plugin answering VERSION, in the same run, interleaved so drift hits both alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 20
MULTUS = str(Path(sys.executable).with_name("multus"))
FLOOR = "/usr/lib/cni/loopback"


def _time(argv: list[str]) -> float:
    env = {**os.environ, "CNI_COMMAND": "VERSION"}
    start = time.perf_counter()
    subprocess.run(argv, env=env, input=b"{}", capture_output=True, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    thin, floor = [], []
    for _ in range(RUNS):
        thin.append(_time([MULTUS]))
        floor.append(_time([FLOOR]))
    t, f = statistics.median(thin), statistics.median(floor)
    print(
        f"VERSION start-up, median of {RUNS} (ms): thin multus {t:.1f}, loopback {f:.1f}, "
        f"ratio {t / f:.2f}"
    )


if __name__ == "__main__":
    main()
