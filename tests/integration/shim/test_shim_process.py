"""multus-shim as the runtime runs it: a separate ``/usr/bin/python3 -I -S`` process (Debian's
3.11; the file keeps to 3.8 syntax, see the unit tests) with a CNI environment and stdin, talking
to a recording fake daemon on a unix socket.

The golden replay runs the shim in a private mount namespace whose ``/run/multus`` is the fake
daemon's directory, so the golden configs (``daemonSocketDir: /run/multus``) are used unchanged
and every request is compared byte for byte with what Go's shim sent.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_daemon import FakeDaemon, Reply, dead_socket, short_socket_dir

from pymultus.shim import install
from pymultus.shim import multus_shim as shim

PYTHON = "/usr/bin/python3"
SHIM_FILE = Path(shim.__file__)
GOLDEN = Path("/work/shared/reference/golden")
SHIM_A = GOLDEN / "07-thick-shim-requests"
SHIM_B = GOLDEN / "07-thick-daemon-responses"
GOLDEN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) \[(\w+)\] (.*)")
POD_ENV = {
    "CNI_CONTAINERID": "0000000000000000000000000000000000000000000000000000000000000071",
    "CNI_NETNS": "/var/run/netns/golden-07a",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/usr/lib/cni",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=golden;K8S_POD_NAME=pod-07a",
}


@dataclass
class Ran:
    rc: int
    stdout: bytes
    stderr: str
    seconds: float

    def error(self) -> dict[str, Any]:
        assert self.rc == 1, self
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed


def run_shim(
    command: str | None,
    stdin: bytes,
    *,
    extra_env: dict[str, str] | None = None,
    argv: list[str] | None = None,
    python_flags: tuple[str, ...] = ("-I", "-S"),
) -> Ran:
    env = {"PATH": GOLDEN_PATH, **POD_ENV, **(extra_env or {})}
    if command is not None:
        env["CNI_COMMAND"] = command
    started = time.monotonic()
    done = subprocess.run(
        [PYTHON, *python_flags, str(SHIM_FILE), *(argv or [])],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    seconds = time.monotonic() - started
    return Ran(done.returncode, done.stdout, done.stderr.decode(), seconds)


@pytest.fixture(autouse=True, scope="module", params=["source", "installed"])
def shim_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Every test runs the shim's source and the compact file ``install_shim`` writes: they
    must behave the same."""
    global SHIM_FILE
    original = SHIM_FILE
    if request.param == "installed":
        SHIM_FILE = Path(install.install_shim(str(tmp_path_factory.mktemp("bin"))))
    try:
        yield SHIM_FILE
    finally:
        SHIM_FILE = original


def _started(
    argv: list[str], stdin: bytes, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``argv`` running in the background with ``stdin`` to read (from a file, so that
    ``communicate`` has nothing to write)."""
    with tempfile.TemporaryFile() as data:
        data.write(stdin)
        data.seek(0)
        pipe = subprocess.PIPE
        return subprocess.Popen(argv, env=env, stdin=data, stdout=pipe, stderr=pipe)


@pytest.fixture
def sockdir() -> Iterator[str]:
    with short_socket_dir() as path:
        yield path


@pytest.fixture
def daemon(sockdir: str) -> Iterator[FakeDaemon]:
    with FakeDaemon(f"{sockdir}/multus.sock") as fake:
        yield fake


def conf(sockdir: str, version: str = "1.0.0", **extra: Any) -> bytes:
    """A shim config as libcni hands it over: compact, keys sorted."""
    body = {
        "cniVersion": version,
        "name": "multus-cni-network",
        "type": "multus-shim",
        "daemonSocketDir": sockdir,
        "daemonReadyTimeoutSeconds": 0.5,
        **extra,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


GOLDEN_ADD = Reply.from_file(SHIM_A / "responses" / "02-add-cni.http")
SHUTTING_DOWN = Reply(503, b'{"code":11,"msg":"multus-daemon is shutting down"}\n')


# --- success -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "stdout"), [("1.0.0", "add.stdout"), ("0.3.1", "add-0.3.1.stdout")]
)
def test_add_prints_the_result_in_the_config_version(
    daemon: FakeDaemon, sockdir: str, version: str, stdout: str
) -> None:
    daemon.set("/cni", GOLDEN_ADD)
    stdin = conf(sockdir, version)
    ran = run_shim("ADD", stdin)
    assert (ran.rc, ran.stdout, ran.stderr) == (0, (SHIM_A / stdout).read_bytes(), "")
    assert daemon.paths() == ["/cni"]  # one connection: no probe when the daemon answers
    sent = json.loads(daemon.requests[0].body)
    assert sent["env"] == {"PATH": GOLDEN_PATH, **POD_ENV, "CNI_COMMAND": "ADD"}  # no LC_CTYPE
    assert sent["config"] == base64.b64encode(stdin).decode()


@pytest.mark.parametrize("command", ["CHECK", "DEL", "STATUS", "GC"])
def test_other_verbs_print_nothing_on_success(
    daemon: FakeDaemon, sockdir: str, command: str
) -> None:
    ran = run_shim(command, conf(sockdir, "1.1.0"))
    assert (ran.rc, ran.stdout, ran.stderr) == (0, b"", "")
    assert daemon.paths() == ["/cni"]


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_a_call_during_a_restart_waits_for_the_daemon(
    daemon: FakeDaemon, sockdir: str, command: str
) -> None:
    """503: the daemon is shutting down and ran nothing; the shim waits for /readyz (here the
    next daemon, ready at the third probe) and sends the same request again."""
    daemon.set("/readyz", Reply(500), Reply(500), Reply(200))
    daemon.set("/cni", SHUTTING_DOWN, GOLDEN_ADD if command == "ADD" else Reply())
    ran = run_shim(command, conf(sockdir, daemonReadyTimeoutSeconds=5))
    assert ran.rc == 0, ran
    assert daemon.paths() == ["/cni"] + ["/readyz"] * 3 + ["/cni"]
    assert daemon.requests[0].raw == daemon.requests[-1].raw


def test_add_waits_for_a_daemon_that_is_not_there_yet(sockdir: str) -> None:
    """Nothing listens at first (a daemon starting): the shim polls /readyz, as Go's shim
    does before every call, and sends /cni once the daemon answers."""
    env = {"PATH": GOLDEN_PATH, **POD_ENV, "CNI_COMMAND": "ADD"}
    argv = [PYTHON, "-I", "-S", str(SHIM_FILE)]
    stdin = conf(sockdir, daemonReadyTimeoutSeconds=20)
    with _started(argv, stdin, env) as proc:
        try:
            time.sleep(0.4)  # the shim has tried /cni and is polling /readyz now
            with FakeDaemon(f"{sockdir}/multus.sock") as late:
                late.set("/cni", GOLDEN_ADD)
                stdout, _ = proc.communicate(timeout=20)
                assert (proc.returncode, stdout) == (0, (SHIM_A / "add.stdout").read_bytes())
                assert late.paths() == ["/readyz", "/cni"]
        finally:
            proc.kill()


# --- errors from the daemon ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_a_cni_error_from_the_daemon_keeps_its_code(
    daemon: FakeDaemon, sockdir: str, command: str
) -> None:
    """DEL included: unlike Go Multus, a failed delegate DEL reaches the runtime."""
    daemon.set("/cni", Reply.json_error(7, "bad network", "br-a"))
    ran = run_shim(command, conf(sockdir, "0.4.0"))
    assert ran.stdout == (
        b'{\n    "cniVersion": "0.4.0",\n    "code": 7,\n    "msg": "bad network",\n'
        b'    "details": "br-a"\n}'
    )
    assert ran.rc == 1


def test_a_text_error_from_the_go_daemon_is_code_999(daemon: FakeDaemon, sockdir: str) -> None:
    daemon.set("/cni", Reply.from_file(SHIM_B / "responses" / "08-addfail-cni.http"))
    ran = run_shim("ADD", conf(sockdir, logToStderr=True, logLevel="error"))
    error = ran.error()
    assert error["code"] == 999
    assert error["msg"].endswith(
        'networkattachmentdefinition.k8s.cni.cncf.io "missing-x" not found'
    )
    assert error["msg"].startswith('ContainerID:"00000000')
    [line] = ran.stderr.splitlines()
    assert LOG_LINE.fullmatch(line)
    assert "[error] CmdAdd (shim): ContainerID:" in line


def test_an_http_error_names_the_status(daemon: FakeDaemon, sockdir: str) -> None:
    daemon.set("/cni", Reply(405))
    assert "answered HTTP 405" in run_shim("ADD", conf(sockdir)).error()["msg"]


# --- the daemon is missing, down, or slow --------------------------------------------------


@pytest.mark.parametrize(
    ("command", "code"), [("ADD", 11), ("CHECK", 11), ("GC", 11), ("STATUS", 50)]
)
def test_no_daemon_fails_after_the_bounded_wait(sockdir: str, command: str, code: int) -> None:
    ran = run_shim(command, conf(sockdir, "1.1.0", daemonReadyTimeoutSeconds=0.4))
    error = ran.error()
    assert error["code"] == code
    assert f"{sockdir}/multus.sock" in error["msg"]
    assert "No such file or directory" in error["msg"]
    assert 0.4 <= ran.seconds < 5


def test_a_daemon_that_never_gets_ready_times_out(daemon: FakeDaemon, sockdir: str) -> None:
    daemon.set("/cni", SHUTTING_DOWN)
    daemon.set("/readyz", Reply(500))
    ran = run_shim("ADD", conf(sockdir, daemonReadyTimeoutSeconds=0.5))
    error = ran.error()
    assert error["code"] == 11
    assert "not ready after 0.5s: /readyz answered HTTP 500" in error["msg"]
    assert daemon.paths().count("/cni") == 1
    assert 0.5 <= ran.seconds < 5


def test_a_hanging_readyz_is_bounded_too(daemon: FakeDaemon, sockdir: str) -> None:
    daemon.set("/cni", SHUTTING_DOWN)
    daemon.set("/readyz", Reply(hang=True))
    ran = run_shim("ADD", conf(sockdir, daemonReadyTimeoutSeconds=0.5))
    assert ran.error()["code"] == 11
    assert "timed out" in ran.error()["msg"]
    assert ran.seconds < 5


def test_a_slow_answer_times_out_when_a_request_timeout_is_set(
    daemon: FakeDaemon, sockdir: str
) -> None:
    daemon.set("/cni", Reply(hang=True))
    ran = run_shim("ADD", conf(sockdir, daemonRequestTimeoutSeconds=0.5))
    error = ran.error()
    assert error["code"] == 11
    assert (
        error["msg"]
        == f"CNI request to multus-daemon failed: receive from {sockdir}/multus.sock: timed out"
    )
    assert 0.5 <= ran.seconds < 5


def test_a_slow_answer_is_awaited_without_a_request_timeout(
    daemon: FakeDaemon, sockdir: str
) -> None:
    daemon.set("/cni", Reply(delay=1.0))
    assert run_shim("DEL", conf(sockdir)).rc == 0


def test_del_without_a_socket_file_succeeds_and_logs(sockdir: str) -> None:
    ran = run_shim("DEL", conf(sockdir, logToStderr=True, logLevel="error"))
    assert (ran.rc, ran.stdout) == (0, b"")
    [line] = ran.stderr.splitlines()
    match = LOG_LINE.fullmatch(line)
    assert match is not None
    assert match.group(2) == "error"
    assert f"{sockdir}/multus.sock does not exist" in match.group(3)
    assert ran.seconds < 5


def test_del_with_a_dead_socket_file_is_code_11(sockdir: str) -> None:
    dead_socket(f"{sockdir}/multus.sock")
    error = run_shim("DEL", conf(sockdir)).error()
    assert error["code"] == 11
    assert "Connection refused" in error["msg"]


def test_del_during_shutdown_probes_once_with_a_zero_ready_timeout(
    daemon: FakeDaemon, sockdir: str
) -> None:
    daemon.set("/cni", SHUTTING_DOWN)
    daemon.set("/readyz", Reply(500))
    error = run_shim("DEL", conf(sockdir, daemonReadyTimeoutSeconds=0)).error()
    assert error["code"] == 11
    assert daemon.paths() == ["/cni", "/readyz"]


# --- bad input and the other entry points --------------------------------------------------


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[]", b"\xff", b"{", b'{"a" 1}'])
def test_bad_stdin_is_code_6_without_a_traceback(stdin: bytes) -> None:
    """``{`` too: before Python 3.12 ``_json`` can only explain it with ``json.decoder``
    loaded, which the shim then loads."""
    ran = run_shim("ADD", stdin)
    assert ran.error()["code"] == 6
    assert "invalid network config on stdin" in ran.error()["msg"]
    assert "Traceback" not in ran.stderr


def test_unknown_command_is_code_4(sockdir: str) -> None:
    assert run_shim("ATTACH", conf(sockdir)).error()["code"] == 4


def test_version_command() -> None:
    ran = run_shim("VERSION", b"")
    assert json.loads(ran.stdout) == {
        "cniVersion": "1.1.0",
        "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }


def test_without_a_command_it_prints_what_it_is() -> None:
    ran = run_shim(None, b"")
    assert (ran.rc, ran.stdout) == (0, b"")
    assert "meta-plugin that delegates to multus-daemon" in ran.stderr
    assert "CNI protocol versions supported: 0.1.0, 0.2.0" in ran.stderr


@pytest.mark.parametrize("flag", ["-v", "-version", "--version"])
def test_version_flag(flag: str) -> None:
    ran = run_shim("ADD", b"", argv=[flag])
    assert (ran.rc, ran.stdout.decode()) == (0, f"multus-shim: pymultus {shim.VERSION}\n")


def _imported(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


@pytest.mark.parametrize("command", ["VERSION", "ADD", "DEL"])
def test_a_call_imports_no_slow_module(daemon: FakeDaemon, sockdir: str, command: str) -> None:
    """``json``, ``socket``, ``re``, ``enum``: each would add milliseconds to every CNI call."""
    daemon.set("/cni", GOLDEN_ADD if command == "ADD" else Reply())
    ran = run_shim(command, conf(sockdir), python_flags=("-I", "-S", "-X", "importtime"))
    assert ran.rc == 0
    imported = _imported(ran.stderr)
    assert "_socket" in imported  # the output is there: the check below means something
    assert "_json" in imported or command == "VERSION"  # the C scanner decodes the config
    if SHIM_FILE.name == "multus-shim":  # the compact form has no annotations left
        assert "__future__" not in imported
    assert not imported & {
        "os",
        "json",
        "json.decoder",
        "socket",
        "re",
        "enum",
        "selectors",
        "typing",
        "http.client",
    }


# --- golden replay, byte for byte ----------------------------------------------------------

# (command, stdin file, whether the pod env is set, requests, stdout file or None, rc)
GOLDEN_CALLS = [
    ("ADD", "config.json", True, ["01-add-readyz", "02-add-cni"], "add.stdout"),
    ("CHECK", "check-config.json", True, ["03-check-readyz", "04-check-cni"], None),
    ("DEL", "config.json", True, ["05-del-healthz", "06-del-cni"], None),
    ("STATUS", "config-1.1.0.json", False, ["07-status-readyz", "08-status-cni"], None),
    ("GC", "gc-config.json", False, ["09-gc-readyz", "10-gc-cni"], None),
    ("ADD", "config-0.3.1.json", True, ["11-add031-readyz", "12-add031-cni"], "add-0.3.1.stdout"),
]


def _golden_argv(sockdir: str | None, env: dict[str, str]) -> list[str]:
    """The shim in a private mount namespace: a fresh /run, and /run/multus bound to
    ``sockdir`` (or absent when None). ``env -i`` makes the environment exactly ``env``."""
    script = "mount -t tmpfs tmpfs /run"
    if sockdir is not None:
        script += ' && mkdir /run/multus && mount --bind "$0" /run/multus'
    script += ' && exec env -i "$@"'
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, sockdir or "-"]
    return argv + [f"{k}={v}" for k, v in env.items()] + [PYTHON, "-I", "-S", str(SHIM_FILE)]


def _in_golden_namespace(sockdir: str | None, env: dict[str, str], stdin: bytes) -> Ran:
    started = time.monotonic()
    done = subprocess.run(
        _golden_argv(sockdir, env), input=stdin, capture_output=True, timeout=60, check=False
    )
    return Ran(done.returncode, done.stdout, done.stderr.decode(), time.monotonic() - started)


def _golden_env(command: str, pod: bool) -> dict[str, str]:
    env = {"PATH": GOLDEN_PATH}
    env |= json.loads((SHIM_A / "env.json").read_text()) if pod else {"CNI_PATH": "/usr/lib/cni"}
    env["CNI_COMMAND"] = command
    return env


def _golden_request(name: str) -> bytes:
    return (SHIM_A / "requests" / f"{name}.http").read_bytes()


def _check_golden_outcome(ran: Ran, command: str, stdout: str | None) -> None:
    want_rc = int(
        (SHIM_A / f"{(stdout or command.lower()).removesuffix('.stdout')}.rc").read_text()
    )
    assert ran.rc == want_rc == 0, ran
    assert ran.stdout == ((SHIM_A / stdout).read_bytes() if stdout else b"")
    if command == "ADD":  # the golden config says logToStderr, logLevel verbose
        [line] = ran.stderr.splitlines()
        assert LOG_LINE.fullmatch(line) and "[verbose] CmdAdd (shim): {" in line
    else:
        assert ran.stderr == ""


def test_golden_sequence_is_replayed_byte_for_byte(daemon: FakeDaemon, sockdir: str) -> None:
    """With the daemon up, each call is the one ``/cni`` request of Go's two, byte for byte
    (Go's shim probes first; the probe is only sent when it is needed, see below)."""
    responses = SHIM_A / "responses"
    daemon.set("/cni", *(Reply.from_file(responses / f"{c[3][1]}.http") for c in GOLDEN_CALLS))
    for command, stdin_file, pod, requests, stdout in GOLDEN_CALLS:
        before = len(daemon.requests)
        ran = _in_golden_namespace(
            sockdir, _golden_env(command, pod), (SHIM_A / stdin_file).read_bytes()
        )
        _check_golden_outcome(ran, command, stdout)
        assert [r.raw for r in daemon.requests[before:]] == [_golden_request(requests[1])]


@pytest.mark.parametrize("call", GOLDEN_CALLS, ids=[f"{c[0]}-{c[1]}" for c in GOLDEN_CALLS])
def test_golden_probe_then_cni_when_the_daemon_is_shutting_down(
    daemon: FakeDaemon, sockdir: str, call: tuple[str, str, bool, list[str], str | None]
) -> None:
    """503 first: the shim sends Go's probe (/readyz, also for DEL: it waits for the next
    daemon) and then the same /cni request again, every byte as Go sends them."""
    command, stdin_file, pod, requests, stdout = call
    daemon.set("/cni", SHUTTING_DOWN, Reply.from_file(SHIM_A / "responses" / f"{requests[1]}.http"))
    ran = _in_golden_namespace(
        sockdir, _golden_env(command, pod), (SHIM_A / stdin_file).read_bytes()
    )
    _check_golden_outcome(ran, command, stdout)
    cni = _golden_request(requests[1])
    assert [r.raw for r in daemon.requests] == [cni, _golden_request("01-add-readyz"), cni]


@pytest.mark.parametrize(
    "call",
    [c for c in GOLDEN_CALLS if c[0] != "DEL"],
    ids=[f"{c[0]}-{c[1]}" for c in GOLDEN_CALLS if c[0] != "DEL"],
)
def test_golden_probe_then_cni_when_the_daemon_is_not_there_yet(
    sockdir: str, call: tuple[str, str, bool, list[str], str | None]
) -> None:
    """The first connect fails (nothing listens yet): Go's two requests, byte for byte, once
    the daemon is up. (DEL's /healthz fallback is covered in the unit tests: here it would
    race the daemon's start.)"""
    command, stdin_file, pod, requests, stdout = call
    argv = _golden_argv(sockdir, _golden_env(command, pod))
    with _started(argv, (SHIM_A / stdin_file).read_bytes()) as proc:
        try:
            time.sleep(0.3)  # the shim found no socket and polls /readyz now
            with FakeDaemon(f"{sockdir}/multus.sock") as late:
                late.set("/cni", Reply.from_file(SHIM_A / "responses" / f"{requests[1]}.http"))
                out, err = proc.communicate(timeout=30)
                got = [r.raw for r in late.requests]
        finally:
            proc.kill()
    _check_golden_outcome(Ran(proc.returncode, out, err.decode(), 0), command, stdout)
    assert got == [_golden_request(name) for name in requests]


def test_golden_del_without_a_daemon_exits_0() -> None:
    ran = _in_golden_namespace(
        None, _golden_env("DEL", True), (SHIM_A / "config.json").read_bytes()
    )
    assert (ran.rc, ran.stdout) == (int((SHIM_A / "del-no-daemon.rc").read_text()), b"")
    [line] = ran.stderr.splitlines()
    assert LOG_LINE.fullmatch(line)
    assert "[error] CmdDel (shim): /run/multus/multus.sock does not exist" in line


# --- installing ----------------------------------------------------------------------------


def _program_in(launcher: bytes) -> str:
    """The program an installed launcher holds (its ``_BODY`` string)."""
    tree = ast.parse(launcher)
    [body] = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_BODY"
    ]
    program = ast.literal_eval(body)
    assert isinstance(program, str)
    return program


def test_install_copies_the_shim_with_a_real_interpreter(sockdir: str) -> None:
    path = install.install_shim(sockdir)
    assert path == f"{sockdir}/multus-shim"
    installed = Path(path).read_bytes()
    assert installed.partition(b"\n")[0] == b"#!/usr/bin/python3 -IS"
    source = Path(shim.__file__).read_bytes()
    program = install.compact_source(source).partition(b"\n")[2]  # same program, compact
    assert _program_in(installed) == program.decode()
    assert len(program) < len(source) * 0.8
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    # installing ran it once: the compiled cache is there before the runtime's first call
    cache = f".multus-shim.{sys.implementation.cache_tag}.bin"
    assert sorted(os.listdir(sockdir)) == [cache, "multus-shim"]
    assert install.cache_files(path) == [f"{sockdir}/{cache}"]
    done = subprocess.run([path], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=True)
    assert json.loads(done.stdout)["cniVersion"] == "1.1.0"


def test_install_replaces_atomically_and_leaves_no_temp_files(sockdir: str) -> None:
    Path(sockdir, "multus-shim").write_text("old")
    Path(sockdir, ".multus-shim.cpython-39.bin").write_text("an older install's cache")
    install.install_shim(sockdir, interpreter="/opt/python/bin/python3.9")
    assert os.listdir(sockdir) == ["multus-shim"]  # that Python is not here: no cache yet
    assert (
        Path(sockdir, "multus-shim").read_bytes().startswith(b"#!/opt/python/bin/python3.9 -IS\n")
    )


def test_installed_shim_runs_with_this_interpreter_too(daemon: FakeDaemon, sockdir: str) -> None:
    real = os.path.realpath(sys.executable)
    path = install.install_shim(sockdir, interpreter=real)
    daemon.set("/cni", GOLDEN_ADD)
    env = {"PATH": GOLDEN_PATH, **POD_ENV, "CNI_COMMAND": "ADD"}
    done = subprocess.run([path], env=env, input=conf(sockdir), capture_output=True, check=False)
    assert (done.returncode, done.stdout) == (0, (SHIM_A / "add.stdout").read_bytes())


@pytest.mark.parametrize("interpreter", ["python3", "usr/bin/python3", "/usr/bin/python3 -u", ""])
def test_install_refuses_a_bad_interpreter(sockdir: str, interpreter: str) -> None:
    with pytest.raises(install.ShimInstallError, match="absolute path"):
        install.install_shim(sockdir, interpreter=interpreter)
    assert os.listdir(sockdir) == []


def test_install_refuses_a_missing_directory(sockdir: str) -> None:
    with pytest.raises(install.ShimInstallError, match="does not exist") as caught:
        install.install_shim(f"{sockdir}/nope")
    assert caught.value.filename == f"{sockdir}/nope"
    assert isinstance(caught.value, OSError)


def test_default_interpreter_prefers_the_system_python() -> None:
    assert install.default_interpreter() == "/usr/bin/python3"
    assert install.python_at_least("/usr/bin/python3", (3, 8))
    assert not install.python_at_least("/usr/bin/python3", (99, 0))
    assert not install.python_at_least("/bin/false", (3, 8))
    assert not install.python_at_least("/nonexistent/python", (3, 8))


def test_default_interpreter_falls_back_to_the_real_running_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(install, "SYSTEM_PYTHON", "/nonexistent/python3")
    chosen = install.default_interpreter()
    assert chosen == os.path.realpath(sys.executable)
    assert "/.venv/" not in chosen and "/shims/" not in chosen
