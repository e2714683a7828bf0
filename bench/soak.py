"""``make soak``: thick mode through thousands of ADD/DEL cycles with injected faults (issue #11).

Not a test: a reliability benchmark like ``make bench``. ``CYCLES`` (default 10,000) pods with
0-4 extra bridge networks each go through ADD then DEL (the runtime's DEL always follows, also
after a failed ADD, and is retried until it succeeds), 4 at a time, through the real shim and
daemon against the stand-in API server. One pod in ten also asks for a faulty network whose
plugin crashes, answers code 11, hangs past the delegate timeout or prints garbage; every 1,000
cycles the daemon is killed with SIGKILL and started again while calls are in flight.

At the end it accounts for everything exactly: links, network namespaces, host-local
allocations, delegate and libcni cache files, status records and processes left (all must be
0), the daemon's RSS (growth under 5 MiB), and every failure's answer (a CNI error JSON, never
code 999, never a traceback). It writes ``docs/reliability.md`` and ``docs/perf/reliability.png``
and exits 1 when any bound is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.* and tests.support.*

from tests.support.plugins import install_recorder  # noqa: E402

from bench.soak_report import Figures, write_report  # noqa: E402
from bench.world import CNI_BIN, NAMESPACE, NETWORKS, NODE, PodId, World, ip  # noqa: E402

FAULT_TYPE = "pm-fault"
#: The faults injected, and the code their ADD must answer with.
FAULTS = {"crash": 5, "code11": 11, "hang": 5, "garbage": 6}
FAULT_RATE = 0.10
PARALLEL = 4
KILL_EVERY = 1_000
MAX_EXTRA = 4
DELEGATE_TIMEOUT_S = 1
RSS_BOUND_KIB = 5 * 1024
DEL_RETRY_S = 60.0


@dataclass
class Tally:
    """What the cycles saw, filled from several threads under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    add_ms: list[tuple[int, float]] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    bad_answers: list[str] = field(default_factory=list)
    del_retries: int = 0
    links_left: list[str] = field(default_factory=list)

    def bad(self, what: str) -> None:
        with self.lock:
            if len(self.bad_answers) < 50:
                self.bad_answers.append(what)
            self.answers["unexpected"] += 1


class SoakWorld(World):
    """The bench world with a short delegate timeout (the hang fault waits past it) and a
    daemon log kept across restarts."""

    logs: str = ""

    def daemon_config(self) -> dict[str, Any]:
        return {**super().daemon_config(), "delegateTimeoutSeconds": DELEGATE_TIMEOUT_S}

    def start_daemon(self, timeout: float = 30.0, *, launcher: list[str] | None = None) -> None:
        with contextlib.suppress(OSError):
            self.logs += self.path("daemon.stderr").read_text(errors="replace")
        super().start_daemon(timeout, launcher=launcher)

    def all_logs(self) -> str:
        return self.logs + self.path("daemon.stderr").read_text(errors="replace")


class Soak:
    def __init__(self, world: SoakWorld, cycles: int, seed: int) -> None:
        self.world = world
        self.cycles = cycles
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.bin = world.path("fault-bin")
        self.api_lock = threading.Lock()
        self.rss: list[tuple[int, int, int]] = []  # (cycle, daemon life, RSS KiB)
        self.life = 0

    # --- set-up ----------------------------------------------------------------------------

    def prepare(self) -> None:
        self.bin.mkdir()
        install_recorder(self.bin, FAULT_TYPE)
        behaviours: dict[str, Any] = {
            "crash": {"ADD": "crash"},
            "code11": {"ADD": {"action": "error", "code": 11, "msg": "busy, try later"}},
            "hang": {"ADD": "hang"},
            "garbage": {"ADD": "garbage"},
        }
        for fault, behaviour in behaviours.items():
            conf = {"cniVersion": "1.0.0", "name": f"fault-{fault}", "type": FAULT_TYPE}
            self.world.put_nad(f"fault-{fault}", {**conf, "behaviour": behaviour})

    def new_pod(self, index: int) -> tuple[PodId, str]:
        extra = index % (MAX_EXTRA + 1)
        fault = self.rng.choice(sorted(FAULTS)) if self.rng.random() < FAULT_RATE else ""
        names = [f"net{k}" for k in range(1, extra + 1)] + ([f"fault-{fault}"] if fault else [])
        name, uid = f"soak-{index:06d}", str(uuid.uuid4())
        meta: dict[str, Any] = {"namespace": NAMESPACE, "name": name, "uid": uid}
        if names:
            meta["annotations"] = {NETWORKS: ", ".join(names)}
        spec = {"nodeName": NODE, "containers": [{"name": "pause", "image": "pause:3.9"}]}
        with self.api_lock:  # one pipe to the API server process: one call at a time
            self.world.api.put_object({"kind": "Pod", "metadata": meta, "spec": spec})
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        netns = f"pmsk-{self.world.suffix}-{index}"
        return PodId(name, uid, cid, netns, extra), fault

    # --- one cycle -------------------------------------------------------------------------

    def shim(self, pod: PodId, command: str) -> tuple[int, bytes, float]:
        env = pod.env(command)
        env["CNI_PATH"] = f"{CNI_BIN}:{self.bin}"
        started = time.perf_counter()
        proc = subprocess.run(
            [self.world.shim],
            input=self.world.shim_conf,
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
        )
        took = (time.perf_counter() - started) * 1000
        return proc.returncode, proc.stdout + proc.stderr, took

    def cycle(self, index: int) -> None:
        pod, fault = self.new_pod(index)
        self.world.make_netns(pod)
        try:
            status, out, took = self.shim(pod, "ADD")
            self.judge_add(pod, fault, status, out)
            self.delete(pod)
            left = self.pod_links(pod)
            if left != ["lo"]:
                with self.tally.lock:
                    self.tally.links_left.append(f"{pod.name}: {left}")
        finally:
            self.world.delete_netns(pod.netns)
            with self.api_lock:
                self.world.api.delete_pods([(NAMESPACE, pod.name)])
        with self.tally.lock:
            self.tally.done += 1
            self.tally.add_ms.append((index, took))

    def judge_add(self, pod: PodId, fault: str, status: int, out: bytes) -> None:
        if status == 0 and not fault:
            self.count("ok")
            return
        error = _error_json(out)
        if error is None or "Traceback" in out.decode("utf-8", "replace"):
            self.tally.bad(f"{pod.name}: ADD answered no CNI error JSON: {out[-400:]!r}")
            return
        code = error.get("code")
        if code == 999:
            self.tally.bad(f"{pod.name}: ADD answered code 999: {error.get('msg')}")
        elif fault and code == FAULTS[fault]:
            self.count(f"fault {fault} → code {code}")
        elif code == 11:  # the daemon was being killed and restarted under this call
            self.count("code 11 while the daemon restarted")
        else:
            self.tally.bad(f"{pod.name}: fault {fault or 'none'}: code {code}: {error.get('msg')}")

    def count(self, what: str) -> None:
        with self.tally.lock:
            self.tally.answers[what] += 1

    def delete(self, pod: PodId) -> None:
        """The runtime's DEL: retried until it succeeds (as kubelet does)."""
        deadline = time.monotonic() + DEL_RETRY_S
        while True:
            status, out, _ = self.shim(pod, "DEL")
            if status == 0:
                return
            error = _error_json(out) or {}
            if error.get("code") == 999 or "Traceback" in out.decode("utf-8", "replace"):
                self.tally.bad(f"{pod.name}: DEL answered {out[-400:]!r}")
            if time.monotonic() > deadline:
                self.tally.bad(f"{pod.name}: DEL never succeeded: {out[-400:]!r}")
                return
            with self.tally.lock:
                self.tally.del_retries += 1
            time.sleep(0.2)

    def pod_links(self, pod: PodId) -> list[str]:
        out = ip("-n", pod.netns, "-j", "link", "show", check=False)
        return sorted(link["ifname"] for link in json.loads(out or "[]"))

    # --- the run ---------------------------------------------------------------------------

    def run(self, progress: Any) -> None:
        self.world.start_daemon()
        self.sample_rss(0)
        started = time.monotonic()
        with ThreadPoolExecutor(PARALLEL) as pool:
            for first in range(0, self.cycles, KILL_EVERY):
                last = min(first + KILL_EVERY, self.cycles)
                futures = [pool.submit(self.cycle, i) for i in range(first, last)]
                self.watch_rss(futures, first)
                for future in futures:
                    future.result()
                progress(f"{last} cycles, {time.monotonic() - started:.0f} s")
                self.sample_rss(last)
                if last < self.cycles:
                    self.kill_and_restart(pool)

    def watch_rss(self, futures: list[Any], first: int) -> None:
        """RSS every 100 finished cycles while this block runs."""
        next_sample = first + 100
        while not all(f.done() for f in futures):
            time.sleep(0.2)
            if self.tally.done >= next_sample:
                self.sample_rss(self.tally.done)
                next_sample += 100

    def kill_and_restart(self, pool: ThreadPoolExecutor) -> None:
        """SIGKILL with four cycles in flight, then a new daemon (the old socket file stays,
        so shims wait for the new one; their DELs are retried by ``delete``)."""
        base = self.cycles + 10_000 * (self.life + 1)  # names apart from the counted cycles
        in_flight = [pool.submit(self.cycle, base + k) for k in range(PARALLEL)]
        time.sleep(0.05)
        daemon = self.world.daemon
        assert daemon is not None
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        self.world.daemon = None
        self.life += 1
        self.world.start_daemon()
        for future in in_flight:
            future.result()

    def sample_rss(self, cycle: int) -> None:
        daemon = self.world.daemon
        if daemon is None:
            return
        try:
            status = Path(f"/proc/{daemon.pid}/status").read_text()
        except OSError:
            return
        rss = [line for line in status.splitlines() if line.startswith("VmRSS:")]
        kib = int(rss[0].split()[1])
        self.rss.append((cycle, self.life, kib))


def _error_json(out: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(out.decode("utf-8", "replace").split("\n\n")[0] or "null")
    except ValueError:
        start = out.find(b"{")
        try:
            value = json.loads(out[start:]) if start >= 0 else None
        except ValueError:
            return None
    return value if isinstance(value, dict) and "code" in value else None


# --- accounting --------------------------------------------------------------------------


def leftovers(world: World) -> dict[str, list[str]]:
    """Everything that must be gone once every pod's DEL succeeded."""
    host_links = json.loads(ip("-n", world.host, "-j", "link", "show") or "[]")
    netns = [n for n in ip("netns", "list").split() if n.startswith(f"pmsk-{world.suffix}")]
    caches = [
        str(p.relative_to(world.work))
        for d in ("cni-thick",)
        for p in world.path(d).rglob("*")
        if p.is_file()
    ]
    status = [str(p) for p in world.path("status").rglob("*") if p.is_file()]
    return {
        "veth links on the node": sorted(
            link["ifname"] for link in host_links if link["ifname"].startswith("veth")
        ),
        "network namespaces": netns,
        "host-local allocations": world.leftover_allocations(),
        "delegate and libcni cache files": caches,
        "status records": status,
        "processes": stray_processes(world),
    }


def stray_processes(world: World) -> list[str]:
    """Plugin or shim processes still running (anything started from our dirs or CNI_BIN)."""
    mine = (str(world.work), CNI_BIN + "/")
    daemon = world.daemon.pid if world.daemon is not None else -1
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), daemon):
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode("utf-8", "replace") for a in argv if a)
        if any(m in text for m in mine) and "multus-daemon" not in text:
            found.append(f"{entry.name}: {text[:120]}")
    return found


def rss_growth(rss: list[tuple[int, int, int]]) -> tuple[int, int]:
    """(growth after cycle 1,000 over the RSS at cycle 1,000 of the same kind of moment, the
    largest growth within one daemon's life after its first 100 cycles), in KiB."""
    at_1000 = next((kib for cycle, _, kib in rss if cycle >= KILL_EVERY), rss[-1][2])
    ends = [kib for cycle, _, kib in rss if cycle >= KILL_EVERY and cycle % KILL_EVERY == 0]
    ends.append(rss[-1][2])
    across = max(ends) - at_1000
    within = 0
    for life in {life for _, life, _ in rss}:
        samples = [kib for cycle, lf, kib in rss if lf == life]
        if len(samples) > 2:
            within = max(within, max(samples[2:]) - samples[1])
    return across, within


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - began:6.0f} s] {message}", flush=True)

    with SoakWorld.open() as world:
        assert isinstance(world, SoakWorld)
        soak = Soak(world, args.cycles, args.seed)
        soak.prepare()
        soak.run(progress)
        left = leftovers(world)
        daemon_log = world.all_logs()
        across, within = rss_growth(soak.rss)
        figures = Figures(
            cycles=args.cycles,
            seconds=time.monotonic() - began,
            kills=soak.life,
            answers=dict(soak.tally.answers),
            bad_answers=list(soak.tally.bad_answers),
            del_retries=soak.tally.del_retries,
            links_left=list(soak.tally.links_left),
            leftovers=left,
            tracebacks=daemon_log.count("Traceback"),
            rss=list(soak.rss),
            rss_growth_kib=across,
            rss_growth_within_kib=within,
            rss_bound_kib=RSS_BOUND_KIB,
            add_ms=sorted(soak.tally.add_ms),
        )
    ok = write_report(figures, args.out)
    progress("soak passed" if ok else "soak FAILED: see the report")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
