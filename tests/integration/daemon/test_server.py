"""``multus-daemon`` over a real unix socket: wire compatibility with Go Multus, bad input,
health, load rules (per-container serialisation, delegate cap, connection limit), metrics,
``/delegate``, and graceful shutdown of the real executable.

Most tests run the daemon in-process on an event loop in a thread (fast, and the core's
dependencies can be faked: pods, NADs, "is this interface free"); the lifecycle tests run the
``multus-daemon`` executable. Plugins are the recording test plugin, plus a tiny "timer" plugin
that writes when each run started and ended (the recorder keeps no timestamps).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.support.apiserver import StandInApiServer
from tests.support.golden import find_golden_dir
from tests.support.netns import NetnsPair
from tests.support.plugins import install_recorder, read_records, recorder_conf

from pymultus.config.daemon import parse_daemon_conf
from pymultus.core.deps import Deps
from pymultus.daemon.main import Daemon, build_daemon
from pymultus.k8s.objects import NETWORKS_ANNOTATION, STATUS_ANNOTATION, Nad, Pod
from pymultus.k8s.refs import PodRef
from pymultus.protocol import wire

T = TypeVar("T")
GOLDEN = find_golden_dir() or Path("/nonexistent-golden")
POD_ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_UID=u-1"
DAEMON_EXE = Path(sys.executable).with_name("multus-daemon")


# ---------------------------------------------------------------- HTTP over the unix socket


@dataclass
class Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(sock: str, raw: bytes, timeout: float = 15.0) -> bytes:
    """Send raw request bytes on a fresh connection; everything until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(sock)
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_reply(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _, status, reason = lines[0].split(" ", 2)
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return Reply(int(status), reason, headers, body)


def call(sock: str, method: str, path: str, body: bytes = b"", timeout: float = 15.0) -> Reply:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: dummy\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: application/json\r\n\r\n"
    )
    return parse_reply(exchange(sock, head.encode() + body, timeout))


def cni_env(command: str, cid: str, *, netns: str = "", cni_path: str = "") -> dict[str, str]:
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns or f"/var/run/netns/none-{cid}",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": POD_ARGS,
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    if cni_path:
        env["CNI_PATH"] = cni_path
    return env


def multus_conf(*delegates: dict[str, Any], cni_version: str = "1.0.0") -> bytes:
    conf = {
        "cniVersion": cni_version,
        "name": "multus-cni-network",
        "type": "multus-shim",
        "delegates": list(delegates),
    }
    return json.dumps(conf).encode()


def post_cni(sock: str, env: dict[str, str], config: bytes) -> Reply:
    return call(sock, "POST", "/cni", wire.encode_cni_request(env, config))


def cni_error(reply: Reply) -> dict[str, Any]:
    """A 400 carrying the CNI error object, written the way Go's ``http.Error`` writes."""
    assert reply.status == 400, reply
    assert reply.header("X-Content-Type-Options") == "nosniff"
    assert reply.body.endswith(b"\n")
    error: dict[str, Any] = reply.json()
    assert set(error) <= {"code", "msg", "details"}
    assert isinstance(error["code"], int) and error["msg"]
    return error


# ---------------------------------------------------------------- the daemon in-process


class LoopThread:
    """An event loop running in a thread, as the daemon's loop runs in its process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    runner = LoopThread()
    try:
        yield runner
    finally:
        runner.close()


def no_links(netns: str, ifname: str) -> bool:
    return False  # the fake netns paths of these tests hold no interfaces


@dataclass
class Site:
    """A test's directories: plugins in ``bin``, caches in ``cni``, the socket in ``run``."""

    root: Path
    records: Path = field(init=False)

    def __post_init__(self) -> None:
        self.records = self.root / "calls.jsonl"
        for name in ("bin", "cni", "run", "empty"):
            (self.root / name).mkdir(exist_ok=True)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def daemon_json(self, **extra: Any) -> dict[str, Any]:
        """binDir is an empty directory, so plugins are found through CNI_PATH only."""
        conf = {
            "socketDir": str(self.root / "run"),
            "cniDir": str(self.root / "cni"),
            "binDir": str(self.root / "empty"),
        }
        conf.update(extra)
        return conf


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    install_recorder(s.bin, "rec-a")
    return s


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def start_daemon(loop: LoopThread, site: Site) -> Iterator[StartDaemon]:
    started: list[Daemon] = []

    def start(deps: Deps | None = None, **extra: Any) -> Daemon:
        conf = parse_daemon_conf(json.dumps(site.daemon_json(**extra)).encode())
        daemon, _ = build_daemon(conf, None)
        if deps is not None:
            deps.executor = daemon.deps.executor
            daemon.deps = deps
        daemon.deps.link_exists = no_links
        daemon.metrics_host = "127.0.0.1"
        loop.run(daemon.start())
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            loop.run(daemon.shutdown())


# ---------------------------------------------------------------- a plugin that keeps time

TIMER_SOURCE = """#!{python}
import json, os, sys, time
conf = json.loads(sys.stdin.read() or "{{}}")
start = time.time()
time.sleep(conf.get("delay", 0.0))
end = time.time()
with open(conf["timesFile"], "a") as fh:
    fh.write(json.dumps({{"cid": os.environ.get("CNI_CONTAINERID"), "start": start,
                         "end": end}}) + "\\n")
if os.environ.get("CNI_COMMAND") == "ADD":
    print(json.dumps({{"cniVersion": conf["cniVersion"],
                      "interfaces": [{{"name": os.environ["CNI_IFNAME"]}}]}}))
"""


def install_timer(site: Site, delay: float) -> dict[str, Any]:
    path = site.bin / "timer"
    path.write_text(TIMER_SOURCE.format(python=sys.executable))
    path.chmod(0o755)
    times = site.root / "times.jsonl"
    return {
        "cniVersion": "1.0.0",
        "name": "timed",
        "type": "timer",
        "delay": delay,
        "timesFile": str(times),
    }


def runs(site: Site) -> list[dict[str, Any]]:
    path = site.root / "times.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def max_overlap(intervals: list[dict[str, Any]]) -> int:
    """The largest number of runs that were going on at one instant."""
    edges = sorted([(r["start"], 1) for r in intervals] + [(r["end"], -1) for r in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def adder(daemon: Daemon, site: Site, conf: bytes, cid: str) -> Callable[[], Reply]:
    """A call that POSTs an ADD of ``conf`` for container ``cid``."""
    env = cni_env("ADD", cid, cni_path=str(site.bin))
    return lambda: post_cni(daemon.socket_path, env, conf)


def concurrently(calls: list[Callable[[], T]]) -> list[T]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda fn: fn(), calls))


# ================================================================ wire compatibility


class FakePods:
    def __init__(self, pods: list[Pod]) -> None:
        self.pods = {(p.namespace, p.name): p for p in pods}

    def get_pod(self, ref: PodRef, *, for_add: bool) -> Pod | None:
        return self.pods.get((ref.namespace, ref.name))


class FakeNads:
    def __init__(self, nads: list[Nad]) -> None:
        self.nads = {(n.namespace, n.name): n for n in nads}

    def get_nad(self, namespace: str, name: str) -> Nad | None:
        return self.nads.get((namespace, name))


class FakeStatus:
    def __init__(self) -> None:
        self.written: dict[str, str] = {}

    def write_network_status(self, pod: Pod, value: str) -> None:
        self.written[pod.name] = value


def golden_deps(site: Site) -> tuple[Deps, FakeStatus]:
    """The golden cases' pods and NADs, every network a recorder."""

    def pod(name: str, networks: str) -> Pod:
        annotations = {NETWORKS_ANNOTATION: networks} if networks else {}
        return Pod("golden", name, annotations=annotations)

    def nad(name: str) -> Nad:
        return Nad("golden", name, json.dumps(recorder_conf("rec-a", site.records, name=name)))

    pods = FakePods([pod("pod-07a", ""), pod("pod-07b", "br-a, mv-b@data0")])
    pods.pods["golden", "pod-07c"] = pod("pod-07c", "br-a, missing-x")
    status = FakeStatus()
    deps = Deps(pods=pods, nads=FakeNads([nad("br-a"), nad("mv-b")]), status=status)
    return deps, status


GOLDEN_CASES = ["07-thick-shim-requests", "07-thick-daemon-responses"]


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_go_shim_request_bytes_get_go_shaped_replies(
    case: str, site: Site, start_daemon: StartDaemon
) -> None:
    """Every ``/cni`` request Go's shim sent, replayed byte for byte, in order: each reply
    has Go's status line and the same body shape (``{"Result": ...}`` on ADD, empty
    otherwise); against the real Go daemon's replies (07b) also the same headers in the same
    order. The only difference: the failing ADD's body is CNI error JSON, not Go's text."""
    folder = GOLDEN / case
    assert folder.is_dir(), f"golden vectors not found at {folder}"
    cluster = site.root / "cluster.conflist"
    cluster.write_text(
        json.dumps(
            {
                "cniVersion": "1.1.0",
                "name": "golden-cluster",
                "plugins": [recorder_conf("rec-a", site.records, cni_version="1.1.0")],
            }
        )
    )
    deps, status = golden_deps(site)
    daemon = start_daemon(deps, clusterNetwork=str(cluster), binDir=str(site.bin))
    for request in sorted((folder / "requests").glob("*-cni.http")):
        ours = parse_reply(exchange(daemon.socket_path, request.read_bytes()))
        gos = parse_reply((folder / "responses" / request.name).read_bytes())
        assert (ours.status, ours.reason) == (gos.status, gos.reason), request.name
        if case == "07-thick-daemon-responses":
            assert [k for k, _ in ours.headers] == [k for k, _ in gos.headers], request.name
            assert ours.header("Content-Type") == gos.header("Content-Type"), request.name
        if gos.status == 400:
            assert "missing-x" in cni_error(ours)["msg"]
        elif gos.body:
            assert set(ours.json()) == {"Result"} == set(gos.json())
            assert ours.json()["Result"]["cniVersion"] == "1.1.0"
            assert ours.json()["Result"]["interfaces"][0]["name"] == "eth0"
        else:
            assert ours.body == b"", request.name
    if case == "07-thick-daemon-responses":
        assert [e["name"] for e in json.loads(status.written["pod-07b"])] == [
            "golden-cluster",
            "golden/br-a",
            "golden/mv-b",
        ]
    assert [r["command"] for r in read_records(site.records)][:1] == ["ADD"]


# ================================================================ the CNI calls


def test_add_and_del_with_static_delegates(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    conf = multus_conf(recorder_conf("rec-a", site.records))
    add = post_cni(daemon.socket_path, cni_env("ADD", "c1", cni_path=str(site.bin)), conf)
    assert add.status == 200
    assert add.header("Content-Type") == "text/plain; charset=utf-8"  # as Go's sniffed reply
    result = add.json()["Result"]
    assert result["cniVersion"] == "1.1.0"  # the newest version; the shim converts back
    assert result["interfaces"] == [
        {"mac": "02:00:00:00:00:01", "name": "eth0", "sandbox": "/var/run/netns/none-c1"}
    ]
    delete = post_cni(daemon.socket_path, cni_env("DEL", "c1", cni_path=str(site.bin)), conf)
    assert (delete.status, delete.body) == (200, b"")
    records = read_records(site.records)
    assert [r["command"] for r in records] == ["ADD", "DEL"]
    # Thick mode: delegates get Multus's own K8S args only, not the runtime's CNI_ARGS.
    assert records[0]["env"]["CNI_ARGS"] == (
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;"
        "K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=u-1"
    )
    assert not (site.root / "cni" / "c1").exists()  # the delegate cache went with the DEL


@pytest.mark.parametrize("cni_version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_result_is_always_1_1_0(
    cni_version: str, site: Site, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon()
    delegate = recorder_conf("rec-a", site.records, cni_version=cni_version)
    conf = multus_conf(delegate, cni_version=cni_version)
    add = post_cni(daemon.socket_path, cni_env("ADD", "cv", cni_path=str(site.bin)), conf)
    assert add.json()["Result"]["cniVersion"] == "1.1.0"
    assert add.json()["Result"]["interfaces"][0]["name"] == "eth0"


def test_cni_path_comes_from_the_request(site: Site, start_daemon: StartDaemon) -> None:
    """binDir is empty: the recorder is found only through the request's CNI_PATH."""
    daemon = start_daemon()
    conf = multus_conf(recorder_conf("rec-a", site.records))
    elsewhere = str(site.root / "empty")
    ok = post_cni(
        daemon.socket_path, cni_env("ADD", "p1", cni_path=f"{elsewhere}:{site.bin}"), conf
    )
    assert ok.status == 200
    [record] = read_records(site.records)
    assert str(site.bin) in record["env"]["CNI_PATH"].split(":")
    missing = post_cni(daemon.socket_path, cni_env("ADD", "p2", cni_path=elsewhere), conf)
    error = cni_error(missing)
    assert error["code"] == 7 and "failed to find plugin" in error["msg"]


def test_delegate_error_code_is_kept(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    failing = recorder_conf(
        "rec-a", site.records, behaviour={"ADD": {"action": "error", "code": 11}}
    )
    reply = post_cni(
        daemon.socket_path, cni_env("ADD", "e1", cni_path=str(site.bin)), multus_conf(failing)
    )
    error = cni_error(reply)
    assert error["code"] == 11
    assert "recorder says no" in error["msg"]


TEN_MB = 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("body", "code", "mentions"),
    [
        pytest.param(b"not json at all", 6, "not JSON", id="not-json"),
        pytest.param(b"[1, 2]", 6, "object", id="array"),
        pytest.param(b'{"env": {"CNI_COMMAND": 7}}', 6, "env", id="env-value-type"),
        pytest.param(b'{"env": "ADD"}', 6, "env", id="env-type"),
        pytest.param(b'{"env": {}, "config": "%%%"}', 6, "config", id="config-not-base64"),
        pytest.param(b'{"env": {}, "config": 42}', 6, "config", id="config-type"),
        pytest.param(
            wire.encode_cni_request({"CNI_CONTAINERID": "x"}, b"{}"),
            4,
            "CNI_COMMAND",
            id="missing-CNI_COMMAND",
        ),
        pytest.param(
            wire.encode_cni_request({"CNI_COMMAND": "FROB", "CNI_PATH": "/x"}, b"{}"),
            4,
            "FROB",
            id="unknown-command",
        ),
        pytest.param(b'{"env": {}, "config": "' + b"A" * TEN_MB + b'"}', 6, "limit", id="10MB"),
    ],
)
def test_bad_bodies_get_400_and_the_daemon_keeps_serving(
    body: bytes, code: int, mentions: str, site: Site, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon()
    error = cni_error(call(daemon.socket_path, "POST", "/cni", body))
    assert error["code"] == code
    assert mentions in error["msg"]
    assert call(daemon.socket_path, "GET", "/healthz").status == 200
    conf = multus_conf(recorder_conf("rec-a", site.records))
    ok = post_cni(daemon.socket_path, cni_env("ADD", "after", cni_path=str(site.bin)), conf)
    assert ok.status == 200


@pytest.mark.parametrize(
    ("env_change", "config", "expected"),
    [
        pytest.param({"CNI_ARGS": "IgnoreUnknown=1"}, None, (4, "K8S_POD_NAME"), id="no-pod-args"),
        pytest.param({"CNI_ARGS": "garbage"}, None, (4, "CNI_ARGS"), id="bad-cni-args"),
        pytest.param({"CNI_CONTAINERID": "a/b"}, None, (4, "containerID"), id="bad-container-id"),
        pytest.param(
            {}, b'{"name":"multus-cni-network"}', (7, "clusterNetwork"), id="no-delegates"
        ),
        pytest.param({}, b'{"name":"bad name!"}', (7, "network name"), id="bad-name"),
        pytest.param({"CNI_COMMAND": "VERSION"}, None, (4, "VERSION"), id="version"),
    ],
)
def test_bad_requests_name_what_is_wrong(
    env_change: dict[str, str],
    config: bytes | None,
    expected: tuple[int, str],
    site: Site,
    start_daemon: StartDaemon,
) -> None:
    daemon = start_daemon()
    env = cni_env("ADD", "b1", cni_path=str(site.bin)) | env_change
    conf = config if config is not None else multus_conf(recorder_conf("rec-a", site.records))
    error = cni_error(post_cni(daemon.socket_path, env, conf))
    code, text = expected
    assert error["code"] == code
    assert text in error["msg"] + error.get("details", "")
    assert read_records(site.records) == []


def test_daemon_config_is_overlaid_on_every_request(site: Site, start_daemon: StartDaemon) -> None:
    """The daemon's ``delegates`` win over the request's (row 57)."""
    other = site.root / "other.jsonl"
    daemon = start_daemon(delegates=[recorder_conf("rec-a", other, name="from-daemon")])
    conf = multus_conf(recorder_conf("rec-a", site.records))
    reply = post_cni(daemon.socket_path, cni_env("ADD", "o1", cni_path=str(site.bin)), conf)
    assert reply.status == 200
    assert read_records(site.records) == []
    assert [r["command"] for r in read_records(other)] == ["ADD"]


def test_base64_config_is_the_exact_stdin(site: Site, start_daemon: StartDaemon) -> None:
    """The config bytes reach the delegate unchanged where Go passes them through."""
    daemon = start_daemon()
    delegate = recorder_conf("rec-a", site.records, plugin_specific={"keep": [1, 2.5, "x"]})
    body = json.dumps(
        {
            "env": cni_env("ADD", "x1", cni_path=str(site.bin)),
            "config": base64.b64encode(multus_conf(delegate)).decode(),
        }
    ).encode()
    assert call(daemon.socket_path, "POST", "/cni", body).status == 200
    [record] = read_records(site.records)
    assert json.loads(record["stdin"])["plugin_specific"] == {"keep": [1, 2.5, "x"]}


# ================================================================ HTTP details


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_health_endpoints(method: str, start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    healthz = call(daemon.socket_path, method, "/healthz", b"null")
    assert (healthz.status, healthz.body, healthz.header("Connection")) == (200, b"", "close")
    readyz = call(daemon.socket_path, method, "/readyz", b"null")
    assert (readyz.status, readyz.header("Content-Type")) == (200, "application/json")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/cni", 405),
        ("PUT", "/delegate", 405),
        ("DELETE", "/healthz", 405),
        ("POST", "/nope", 404),
        ("GET", "/", 404),
    ],
)
def test_unknown_paths_and_methods(
    method: str, path: str, status: int, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon()
    reply = call(daemon.socket_path, method, path)
    assert reply.status == status
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"


def test_malformed_http_gets_400(start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    reply = parse_reply(exchange(daemon.socket_path, b"HELLO\r\n\r\n"))
    assert reply.status == 400
    assert call(daemon.socket_path, "GET", "/healthz").status == 200


def test_chunked_body_and_expect_continue(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    body = wire.encode_cni_request(
        cni_env("ADD", "ch", cni_path=str(site.bin)),
        multus_conf(recorder_conf("rec-a", site.records)),
    )
    chunks = (
        b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:100], body[100:])) + b"0\r\n\r\n"
    )
    head = (
        b"POST /cni HTTP/1.1\r\nHost: dummy\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    raw = exchange(daemon.socket_path, head + chunks)
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert json.loads(raw.split(b"\r\n\r\n", 2)[2])["Result"]["cniVersion"] == "1.1.0"


# ================================================================ load


def test_one_container_never_interleaves(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    conf = multus_conf(install_timer(site, delay=0.25))
    replies = concurrently([adder(daemon, site, conf, "same") for _ in range(3)])
    assert [r.status for r in replies] == [200, 200, 200]
    assert len(runs(site)) == 3
    assert max_overlap(runs(site)) == 1
    # Different containers do run at once, so the check above could have failed.
    (site.root / "times.jsonl").unlink()
    replies = concurrently([adder(daemon, site, conf, f"c{i}") for i in range(3)])
    assert [r.status for r in replies] == [200, 200, 200]
    assert max_overlap(runs(site)) >= 2


def test_delegate_processes_are_capped(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(maxDelegateProcesses=2)
    conf = multus_conf(install_timer(site, delay=0.3))
    replies = concurrently([adder(daemon, site, conf, f"k{i}") for i in range(5)])
    assert [r.status for r in replies] == [200] * 5
    assert len(runs(site)) == 5
    assert max_overlap(runs(site)) == 2


def test_a_slow_request_does_not_block_the_loop(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    slow = recorder_conf("rec-a", site.records, behaviour={"ADD": {"delay": 1.0}})
    env = cni_env("ADD", "slow", cni_path=str(site.bin))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post_cni, daemon.socket_path, env, multus_conf(slow))
        _wait_for(lambda: read_records(site.records) != [])
        started = time.monotonic()
        assert call(daemon.socket_path, "GET", "/healthz").status == 200
        assert time.monotonic() - started < 0.5  # the ADD still has ~1 s to go
        assert not pending.done()
        assert pending.result(10).status == 200


def test_connection_limit(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(connectionLimit=1)
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.connect(daemon.socket_path)  # connected and silent: holds the only slot
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(call, daemon.socket_path, "GET", "/healthz")
            time.sleep(0.4)
            assert not waiting.done()
            holder.close()
            assert waiting.result(5).status == 200
    finally:
        holder.close()


# ================================================================ metrics


def test_metrics_endpoint(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(metricsPort=_free_port())
    call(daemon.socket_path, "GET", "/healthz")
    call(daemon.socket_path, "GET", "/missing")
    conf = multus_conf(recorder_conf("rec-a", site.records))
    post_cni(daemon.socket_path, cni_env("ADD", "m1", cni_path=str(site.bin)), conf)
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    lines = set(text.splitlines())
    assert 'multus_server_request_total{code="200",handler="/healthz",method="get"} 1.0' in lines
    assert 'multus_server_request_total{code="404",handler="NotFound",method="get"} 1.0' in lines
    assert 'multus_server_request_total{code="200",handler="/cni",method="post"} 1.0' in lines
    assert (
        'multus_cni_plugin_execution_total{command="ADD",outcome="success",plugin="rec-a"} 1.0'
        in lines
    )
    assert 'multus_server_request_duration_seconds_count{handler="/cni",method="post"} 1.0' in lines
    assert any(line.startswith("process_resident_memory_bytes") for line in lines)


# ================================================================ /delegate


def delegate_env(command: str, cid: str) -> dict[str, str]:
    """What multus-dynamic-networks-controller sends (``api.CreateDelegateRequest``)."""
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": f"/var/run/netns/none-{cid}",
        "CNI_IFNAME": "net7",
        "CNI_ARGS": "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_UID=u-1",
    }


def test_delegate_hot_plugs_one_interface(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(binDir=str(site.bin))
    conf = recorder_conf("rec-a", site.records, capabilities={"ips": True, "mac": True})
    attrs = wire.InterfaceAttributes(
        ips=["192.0.2.7/24"], mac="02:00:00:00:00:07", cni_args={"color": "blue"}
    )
    body = wire.encode_delegate_request(delegate_env("ADD", "d1"), json.dumps(conf).encode(), attrs)
    reply = call(daemon.socket_path, "POST", "/delegate", body)
    assert reply.status == 200
    assert reply.header("Content-Type") == "application/json"
    assert reply.json()["Result"]["cniVersion"] == "1.1.0"
    assert reply.json()["Result"]["interfaces"][0]["name"] == "net7"
    [record] = read_records(site.records)
    stdin = json.loads(record["stdin"])
    assert stdin["runtimeConfig"] == {"ips": ["192.0.2.7/24"], "mac": "02:00:00:00:00:07"}
    assert stdin["args"] == {"cni": {"color": "blue"}}
    assert record["env"]["CNI_ARGS"].endswith(";MAC=02:00:00:00:00:07;IP=192.0.2.7/24")
    assert record["env"]["CNI_IFNAME"] == "net7"
    assert not (site.root / "cni" / "d1").exists()  # no Multus delegate cache for /delegate


def test_delegate_del_errors_are_returned(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(binDir=str(site.bin))
    conf = recorder_conf("rec-a", site.records, behaviour={"DEL": {"action": "error", "code": 5}})
    body = wire.encode_delegate_request(delegate_env("DEL", "d2"), json.dumps(conf).encode())
    error = cni_error(call(daemon.socket_path, "POST", "/delegate", body))
    assert error["code"] == 5
    assert [r["command"] for r in read_records(site.records)] == ["DEL"]


def test_delegate_refuses_gc(site: Site, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(binDir=str(site.bin))
    conf = json.dumps(recorder_conf("rec-a", site.records)).encode()
    body = wire.encode_delegate_request({"CNI_COMMAND": "GC"}, conf)
    error = cni_error(call(daemon.socket_path, "POST", "/delegate", body))
    assert error["code"] == 4 and "GC" in error["msg"]
    assert read_records(site.records) == []


# ================================================================ the executable


@pytest.fixture
def daemon_process(site: Site) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        env: dict[str, str] | None = None, args: tuple[str, ...] = (), **extra: Any
    ) -> subprocess.Popen[bytes]:
        netd = site.root / "net.d"  # auto mode: 00-multus.conf is generated here
        netd.mkdir(exist_ok=True)
        primary = {"cniVersion": "1.0.0", "name": "primary", "plugins": [{"type": "rec-a"}]}
        (netd / "10-primary.conflist").write_text(json.dumps(primary))
        config = site.root / "daemon-config.json"
        conf = site.daemon_json(
            logToStderr=True,
            logLevel="verbose",
            cniVersion="1.0.0",
            multusAutoconfigDir=str(netd),
            cniConfigDir=str(netd),
            **extra,
        )
        config.write_text(json.dumps(conf))
        with open(site.root / "daemon.log", "wb") as log_file:
            proc = subprocess.Popen(
                [str(DAEMON_EXE), "-config", str(config), *args],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        procs.append(proc)
        sock = str(site.root / "run" / "multus.sock")
        _wait_for(lambda: _healthy(sock) or proc.poll() is not None)
        assert proc.poll() is None, (site.root / "daemon.log").read_text()
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def test_graceful_shutdown(
    site: Site, netns_pair: NetnsPair, daemon_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """SIGTERM: readyz fails at once, healthz still works, the ADD in flight completes, then
    the daemon exits 0 and keeps its socket file (a shim then answers a DEL sent during a
    restart with code 11, so the runtime retries it). Every request log line names the container
    and the pod."""
    proc = daemon_process()
    sock = str(site.root / "run" / "multus.sock")
    slow = recorder_conf("rec-a", site.records, behaviour={"ADD": {"delay": 1.5}})
    env = cni_env("ADD", "g1", netns=netns_pair.pod_path, cni_path=str(site.bin))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post_cni, sock, env, multus_conf(slow))
        _wait_for(lambda: read_records(site.records) != [])
        proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: call(sock, "GET", "/readyz").status == 500)
        assert call(sock, "POST", "/healthz", b"null").status == 200
        assert proc.poll() is None
        reply = pending.result(10)
    assert reply.status == 200
    assert reply.json()["Result"]["interfaces"][0]["sandbox"] == netns_pair.pod_path
    assert proc.wait(10) == 0
    assert os.path.exists(sock)  # a stale socket the next start removes
    generated = json.loads((site.root / "net.d" / "00-multus.conf").read_text())
    assert generated["type"] == "multus-shim"  # written by the config manager, kept on exit
    log = (site.root / "daemon.log").read_text().splitlines()
    request_lines = [line for line in log if "command=ADD" in line]
    assert request_lines
    assert all("containerID=g1 pod=ns1/web-0" in line for line in request_lines)
    assert any("network=recnet plugin=rec-a" in line for line in request_lines)


def test_executable_falls_back_to_its_own_cni_path(
    site: Site, netns_pair: NetnsPair, daemon_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """A request without CNI_PATH uses the daemon's (as Go does for every request); a
    request with one uses the request's, even when the daemon's would have worked."""
    daemon_process(env={"CNI_PATH": str(site.bin)})
    sock = str(site.root / "run" / "multus.sock")
    conf = multus_conf(recorder_conf("rec-a", site.records))
    fallback = post_cni(sock, cni_env("ADD", "f1", netns=netns_pair.pod_path), conf)
    assert fallback.status == 200
    wrong = cni_env("ADD", "f2", netns=netns_pair.pod_path, cni_path=str(site.root / "empty"))
    assert cni_error(post_cni(sock, wrong, conf))["code"] == 7


def test_executable_refuses_a_socket_in_use(
    site: Site, daemon_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    daemon_process()
    (site.root / "run" / "keep-me").write_text("an operator's file")
    second = subprocess.run(
        [str(DAEMON_EXE), "-config", str(site.root / "daemon-config.json")],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert second.returncode == 3
    assert b"another daemon is serving" in second.stderr
    assert (site.root / "run" / "keep-me").exists()
    assert oct((site.root / "run").stat().st_mode & 0o777) == "0o700"
    assert oct((site.root / "run" / "multus.sock").stat().st_mode & 0o777) == "0o600"


def test_executable_with_kubernetes(
    site: Site, netns_pair: NetnsPair, daemon_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """With a kubeconfig and MULTUS_NODE_NAME: pods of this node and NADs come from the
    watch cache, the annotation's network is attached, network-status is written."""
    with StandInApiServer() as api:
        kubeconfig = api.write_kubeconfig(site.root / "kubeconfig")
        nad_conf = recorder_conf("rec-a", site.records, name="net-b")
        api.put_object(
            {
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"namespace": "ns1", "name": "net-b"},
                "spec": {"config": json.dumps(nad_conf)},
            }
        )
        pod = api.put_object(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "namespace": "ns1",
                    "name": "web-0",
                    "annotations": {NETWORKS_ANNOTATION: "net-b"},
                },
                "spec": {"nodeName": "node-a"},
            }
        )
        daemon_process(
            env={"MULTUS_NODE_NAME": "node-a"},
            args=("--kubeconfig", str(kubeconfig)),
            delegates=[recorder_conf("rec-a", site.records, name="cluster")],
        )
        sock = str(site.root / "run" / "multus.sock")
        env = cni_env("ADD", "k1", netns=netns_pair.pod_path, cni_path=str(site.bin))
        env["CNI_ARGS"] = env["CNI_ARGS"].replace("u-1", pod["metadata"]["uid"])
        reply = post_cni(sock, env, multus_conf(recorder_conf("rec-a", site.records)))
        assert reply.status == 200, reply.body
        assert [r["env"]["CNI_IFNAME"] for r in read_records(site.records)] == ["eth0", "net1"]
        stored = api.get_object("pods", "ns1", "web-0")
        assert stored is not None
        status = json.loads(stored["metadata"]["annotations"][STATUS_ANNOTATION])
        assert [entry["name"] for entry in status] == ["cluster", "ns1/net-b"]
        pod_lists = [r for r in api.requests("GET", "/pods") if r.path == "/api/v1/pods"]
        assert pod_lists
        assert all(r.query.get("fieldSelector") == "spec.nodeName=node-a" for r in pod_lists)


def test_executable_exits_2_when_the_readiness_file_goes(
    site: Site, daemon_process: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """As Go: the default network is gone, so 00-multus.conf goes and the daemon exits 2."""
    ready = site.root / "ready" / "flannel.env"
    ready.parent.mkdir()
    ready.write_text("up")
    proc = daemon_process(readinessindicatorfile=str(ready))
    generated = site.root / "net.d" / "00-multus.conf"
    _wait_for(generated.exists)
    ready.unlink()
    assert proc.wait(15) == 2
    assert not generated.exists()
    assert not (site.root / "run" / "multus.sock").exists()


def test_executable_version() -> None:
    out = subprocess.run([str(DAEMON_EXE), "-version"], capture_output=True, check=True, timeout=20)
    assert out.stdout.startswith(b"multus-daemon: version:")


# ---------------------------------------------------------------- helpers


def _healthy(sock: str) -> bool:
    with contextlib.suppress(OSError):
        return call(sock, "GET", "/healthz", timeout=1).status == 200
    return False


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
