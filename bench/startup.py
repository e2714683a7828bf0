"""What a process start costs before any work: the shim, the thin plugin, and their floors.

Every program answers ``CNI_COMMAND=VERSION`` (no daemon, no API, no namespace), so the time
is start-up plus one line of output. The floors are a Go CNI plugin doing the same
(``loopback``) and the bare interpreters the two Python programs run on (``-c pass``).
Runs are interleaved so drift hits all alike. ``PYTHONPROFILEIMPORTTIME`` shows which
imports the thin plugin's start-up is made of, on a real ADD.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bench.stats import Summary
from bench.world import CLEAN_PATH, CNI_BIN, PodId, World

_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


@dataclass(frozen=True)
class Startup:
    programs: dict[str, Summary]
    thin_imports_ms: float  # every import of one thin ADD
    thin_top_imports: list[tuple[str, float]]  # top-level modules by cumulative ms
    shim_imports_ms: float  # every import of one shim VERSION


def programs(world: World) -> dict[str, list[str]]:
    return {
        "loopback VERSION (Go plugin)": [f"{CNI_BIN}/loopback"],
        "python3 -IS -c pass": ["/usr/bin/python3", "-IS", "-c", "pass"],
        "multus-shim VERSION": [world.shim],
        "venv python -c pass": [sys.executable, "-c", "pass"],
        "thin multus VERSION": [world.thin],
        "thin's python -IS -c pass": [world.thin_python, "-IS", "-c", "pass"],
    }


def _time(argv: list[str], env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, input=b"{}", capture_output=True, check=True)
    return (time.perf_counter() - start) * 1000


def measure_startup(world: World, runs: int, pod: PodId) -> Startup:
    """``runs`` interleaved starts of each program, then the import profiles."""
    env = {"PATH": CLEAN_PATH, "CNI_COMMAND": "VERSION"}
    progs = programs(world)
    samples: dict[str, list[float]] = {name: [] for name in progs}
    for argv in progs.values():  # warm-up: page cache, .pyc files
        _time(argv, env)
    for _ in range(runs):
        for name, argv in progs.items():
            samples[name].append(_time(argv, env))
    thin_total, thin_top = thin_imports(world, pod)
    shim = subprocess.run(
        ["/usr/bin/python3", "-IS", "-X", "importtime", world.shim],
        env=env,
        input=b"{}",
        capture_output=True,
        check=True,
    )
    shim_total, _ = parse_importtime(shim.stderr.decode())
    return Startup({n: Summary.of(v) for n, v in samples.items()}, thin_total, thin_top, shim_total)


def thin_imports(world: World, pod: PodId) -> tuple[float, list[tuple[str, float]]]:
    """Import time of one thin ADD (and its DEL, untimed), from CPython's own report (the
    launcher runs with ``-I``, which ignores ``PYTHONPROFILEIMPORTTIME``: ``-X importtime``)."""
    traced = [world.thin_python, "-IS", "-X", "importtime", world.thin]
    world.make_netns(pod)
    try:
        add = subprocess.run(
            traced, env=pod.env("ADD"), input=world.thin_conf(), capture_output=True, check=False
        )
        subprocess.run(
            [world.thin],
            env=pod.env("DEL"),
            input=world.thin_conf(),
            capture_output=True,
            check=False,
        )
    finally:
        world.delete_netns(pod.netns)
    return parse_importtime(add.stderr.decode(errors="replace"))


def parse_importtime(text: str, top: int = 12) -> tuple[float, list[tuple[str, float]]]:
    """(total ms of top-level imports, the ``top`` biggest top-level modules by ms)."""
    roots: dict[str, float] = {}
    for line in text.splitlines():
        m = _IMPORT_LINE.match(line)
        if m and not m[3]:  # no indent: imported by the program itself
            roots[m[4]] = roots.get(m[4], 0.0) + int(m[2]) / 1000
    ranked = sorted(roots.items(), key=lambda kv: -kv[1])
    return sum(roots.values()), ranked[:top]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> dict[str, str]:
    """What the report says about where it ran."""
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            kb = int(fh.readline().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    plugins = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    shim_python = subprocess.run(
        ["/usr/bin/python3", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "CPU": f"{cpu_name()}, {os.cpu_count()} cores",
        "memory": mem,
        "kernel": os.uname().release,
        "venv Python (daemon, thin plugin)": sys.version.split()[0],
        "shim Python": shim_python.removeprefix("Python "),
        "CNI plugins (Debian containernetworking-plugins)": plugins or "unknown",
    }
