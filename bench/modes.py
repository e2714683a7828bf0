"""One CNI call of one pod, the way each contender makes it, timed from the outside.

- ``thick``: the runtime runs ``multus-shim``, which asks ``multus-daemon`` over its socket.
- ``thin``: the runtime runs the thin ``multus`` plugin (API server read directly), as
  ``pymultus install --type thin`` installs it.
- ``direct``: the floor. The harness runs the same delegate plugins itself, one after the
  other (cluster network as eth0, then ``net1..netN``; DEL in reverse), with no Multus and
  no API calls: what any meta-plugin has to pay at the least.

Every process runs as libcni runs a plugin: stdin and stdout are pipes, stderr is a file (the
runtime's own; libcni waits for stdout to close, not for stderr). CPU per call is the kernel's
accounting of the processes the call started and reaped (``RUSAGE_CHILDREN``): exact when
calls run one at a time, as in the latency matrix. A detached child (the thin plugin's event
sender) is not reaped by the harness, so it is not in it.
- ``socket``: the harness POSTs the shim's request to the daemon itself; ``thick`` minus
  ``socket`` is what the shim process costs per call.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from bench.world import CNI_BIN, CNI_VERSION, PodId, World
from pymultus.protocol import wire

MODES = ("thick", "thin", "direct")
TIMEOUT = 120.0


@dataclass(frozen=True)
class Call:
    """One timed call: wall time from the runtime's point of view, and how it ended."""

    mode: str
    command: str
    pod: PodId
    start: float  # time.monotonic() when it began
    ms: float
    ok: bool
    detail: str = ""
    cpu_ms: float = 0.0  # CPU of the processes the call started (one call at a time only)


def run_call(world: World, mode: str, command: str, pod: PodId) -> Call:
    """Run ``command`` (ADD or DEL) for ``pod`` the ``mode`` way; never raises on failure."""
    cpu = _children_cpu()
    start = time.monotonic()
    try:
        ok, detail = _RUNNERS[mode](world, command, pod)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    ms = (time.monotonic() - start) * 1000
    return Call(mode, command, pod, start, ms, ok, detail, (_children_cpu() - cpu) * 1000)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process(argv: list[str], env: dict[str, str], stdin: bytes) -> tuple[bool, str]:
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.run(
            argv,
            input=stdin,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            timeout=TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            stderr.seek(0)
            said = (proc.stdout + stderr.read()).decode(errors="replace")[-400:]
            return False, f"{argv[0]} rc={proc.returncode}: {said}"
    return True, ""


def _thick(world: World, command: str, pod: PodId) -> tuple[bool, str]:
    return _process([world.shim], pod.env(command), world.shim_conf)


def _thin(world: World, command: str, pod: PodId) -> tuple[bool, str]:
    return _process([world.thin], pod.env(command), world.thin_conf())


def delegate_confs(world: World, networks: int) -> list[tuple[str, bytes]]:
    """(ifname, config bytes) of every delegate, in ADD order, as libcni would hand them to
    the plugin: the conflist's one plugin gets the list's name and cniVersion."""
    cluster = {"cniVersion": CNI_VERSION, "name": "bench-cluster", **world.cluster_plugin()}
    confs = [("eth0", json.dumps(cluster).encode())]
    for k in range(1, networks + 1):
        confs.append((f"net{k}", json.dumps(world.nad_conf(k)).encode()))
    return confs


def _direct(world: World, command: str, pod: PodId) -> tuple[bool, str]:
    confs = delegate_confs(world, pod.networks)
    if command == "DEL":
        confs.reverse()
    for ifname, conf in confs:
        env = {**pod.env(command), "CNI_IFNAME": ifname}
        ok, detail = _process([f"{CNI_BIN}/bridge"], env, conf)
        if not ok:
            return ok, detail
    return True, ""


def post_cni(sock: str, env: dict[str, str], config: bytes, timeout: float = TIMEOUT) -> bytes:
    """POST /cni over the daemon's unix socket, as the shim does; returns the raw answer."""
    body = wire.encode_cni_request(env, config)
    head = (
        f"POST /cni HTTP/1.1\r\nHost: dummy\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(sock)
        conn.sendall(head + body)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _socket(world: World, command: str, pod: PodId) -> tuple[bool, str]:
    answer = post_cni(str(world.socket), pod.env(command), world.shim_conf)
    status = answer.split(b" ", 2)[1:2]
    if status != [b"200"]:
        return False, answer.decode(errors="replace")[-400:]
    return True, ""


_RUNNERS = {"thick": _thick, "thin": _thin, "direct": _direct, "socket": _socket}
