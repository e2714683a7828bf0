"""Running one plugin: ``cni.invoke.exec_plugin`` with the default executor, on
``os.posix_spawn`` (no ``subprocess``): found in the bin path, its own session, stdin
written and both outputs read within the timeout, SIGTERM/SIGKILL escalation, and the
plugin's error, crash or garbage mapped to the full path's ``DelegateError``.
"""

from __future__ import annotations

import select
import time

from pymultus.plugin.lean import js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.quirks import msgspec_reads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from pymultus.plugin.lean.chain import Runtime

#: ``cni.invoke``: seconds between SIGTERM and SIGKILL, retries while a binary is busy.
KILL_GRACE = 1.0
BUSY_RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6)
PLUGIN_FAILED = 5  # ``errors.PLUGIN_FAILED``: crashed, killed, timed out, not started
DECODE_FAILED = 6  # ``errors.DecodeError.code``: printed garbage
_SIGTERM, _SIGKILL, _SIGPIPE, _SIGXFSZ = 15, 9, 13, 25  # Linux (``signal`` imports enum)
_ETXTBSY = 26  # Linux (``errno``: an import for one number)
_CHUNK = 32768
_PIPE_BUF = select.PIPE_BUF
_TAIL = 1024


def lookup(plugin_type: str, dirs: Sequence[str]) -> str | None:
    """The first regular file ``plugin_type`` in ``dirs``; None when there is none."""
    for directory in dirs:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate):
            return candidate
    return None


def find_plugin(plugin_type: str, dirs: Sequence[str]) -> str:
    """``invoke.find_plugin``: the first regular file of that name, or its error (code 7)."""
    if not plugin_type:
        raise LeanError(7, "no plugin name provided")
    if "/" in plugin_type or "\0" in plugin_type or plugin_type in (".", ".."):
        raise LeanError(7, f"invalid plugin name: {plugin_type}")
    if not dirs:
        raise LeanError(
            7, f"failed to find plugin {js.marshal_text(plugin_type)}: no paths provided"
        )
    found = lookup(plugin_type, dirs)
    if found is None:
        raise LeanError(
            7, f"failed to find plugin {js.marshal_text(plugin_type)} in path [{' '.join(dirs)}]"
        )
    return found


def plugin_env(command: str, rt: Runtime, path: Sequence[str]) -> dict[str, str]:
    """``PluginEnv.to_environ(os.environ)``: all six ``CNI_*`` variables over ours."""
    environ = dict(os.environ)
    environ.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=rt.container_id,
        CNI_NETNS=rt.netns,
        CNI_ARGS=";".join(f"{k}={v}" for k, v in rt.args),
        CNI_IFNAME=rt.ifname,
        CNI_PATH=":".join(path),
    )
    return environ


class _Timeout(Exception):
    """``subprocess.TimeoutExpired`` with what was read before the deadline."""

    def __init__(self, out: bytes, err: bytes) -> None:
        super().__init__("timed out")
        self.out = out
        self.err = err


class _Proc:
    """A started plugin: its pid and the open ends of its three pipes."""

    __slots__ = ("pid", "returncode", "stderr", "stdin", "stdout")

    def __init__(self, pid: int, stdin: int, stdout: int, stderr: int) -> None:
        self.pid = pid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.returncode: int | None = None

    def close(self, fd: int) -> None:
        os.close(fd)
        if fd == self.stdin:
            self.stdin = -1
        elif fd == self.stdout:
            self.stdout = -1
        elif fd == self.stderr:
            self.stderr = -1

    def close_all(self) -> None:
        for fd in (self.stdin, self.stdout, self.stderr):
            if fd >= 0:
                self.close(fd)

    def reap(self) -> None:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)


def _inherited_fds() -> list[int]:
    """Our inheritable descriptors above 2: ``close_fds=True`` closes them in the plugin."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    found = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:
                continue  # the listing's own descriptor, closed by now
    return found


def _spawn(path: str, environ: dict[str, str]) -> _Proc:
    """``Popen([path], stdin/stdout/stderr=PIPE, env=..., close_fds=True,
    start_new_session=True)`` (with ``restore_signals``: SIGPIPE and SIGXFSZ back to
    default). One difference: glibc's ``posix_spawn`` leaves its internal signals 32 and 33
    ignored in the plugin (no way to name them in ``setsigdef``); glibc programs install
    their own handlers for them at start and Go leaves them alone, so no plugin notices."""
    pipes = [os.pipe(), os.pipe(), os.pipe()]
    child = (pipes[0][0], pipes[1][1], pipes[2][1])
    try:
        actions: list[tuple[int, ...]] = [
            (os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(child)
        ]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
        pid = os.posix_spawn(
            path, [path], environ, file_actions=actions, setsid=True, setsigdef=(_SIGPIPE, _SIGXFSZ)
        )
    except BaseException:
        for r, w in pipes:
            os.close(r)
            os.close(w)
        raise
    for fd in child:
        os.close(fd)
    return _Proc(pid, pipes[0][1], pipes[1][0], pipes[2][0])


def _start(plugin: str, path: str, environ: dict[str, str]) -> _Proc:
    """``SubprocessExecutor._start``: retried while the binary is busy being written."""
    delays = iter(BUSY_RETRY_DELAYS)
    while True:
        try:
            return _spawn(path, environ)
        except OSError as exc:
            delay = next(delays, None) if exc.errno == _ETXTBSY else None
            if delay is None:
                reason = exc.strerror or exc
                raise LeanError(
                    PLUGIN_FAILED, f"failed to execute plugin {plugin!r} ({path}): {reason}"
                ) from None
            time.sleep(delay)


def _exchange(proc: _Proc, stdin: bytes, timeout: float) -> tuple[bytes, bytes]:
    """``pipes.exchange``: write stdin, read both outputs to their end, reap the plugin, all
    within ``timeout`` seconds, else ``_Timeout`` (the plugin still runs)."""
    deadline = time.monotonic() + timeout
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        _pump(proc, stdin, deadline, out, err)
        _wait_exit(proc, deadline)
    except _Timeout:
        raise _Timeout(b"".join(out), b"".join(err)) from None
    return b"".join(out), b"".join(err)


def _left(deadline: float) -> int:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Timeout(b"", b"")
    return -int(-left * 1000 // 1)  # milliseconds, rounded up as ``selectors`` does


def _pump(proc: _Proc, stdin: bytes, deadline: float, out: list[bytes], err: list[bytes]) -> None:
    poller = select.poll()
    if proc.stdin >= 0:
        if stdin:
            poller.register(proc.stdin, select.POLLOUT)
        else:
            proc.close(proc.stdin)
    for fd in (proc.stdout, proc.stderr):
        if fd >= 0:
            poller.register(fd, select.POLLIN)
    sent = 0
    while proc.stdin >= 0 or proc.stdout >= 0 or proc.stderr >= 0:
        for fd, _ in poller.poll(_left(deadline)):
            if fd == proc.stdin:
                try:
                    sent += os.write(fd, stdin[sent : sent + _PIPE_BUF])
                except BrokenPipeError:
                    sent = len(stdin)  # the plugin does not read its stdin: its answer counts
                if sent >= len(stdin):
                    poller.unregister(fd)
                    proc.close(fd)
                continue
            data = os.read(fd, _CHUNK)
            if data:
                (out if fd == proc.stdout else err).append(data)
            else:
                poller.unregister(fd)
                proc.close(fd)


def _wait_exit(proc: _Proc, deadline: float) -> None:
    """Reap the plugin as soon as it exits (a pidfd wakes at once), or ``_Timeout``."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return
            _left(deadline)
            time.sleep(0.001)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(_left(deadline)):
            raise _Timeout(b"", b"")
    finally:
        os.close(pidfd)
    proc.reap()


def _stop(proc: _Proc) -> tuple[bytes, bytes]:
    """``SubprocessExecutor._stop``: SIGTERM the group, SIGKILL after the grace, reap."""
    out, err = b"", b""
    for sig in (_SIGTERM, _SIGKILL):
        try:  # noqa: SIM105 - contextlib is an import the lean path does without
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            more_out, more_err = _exchange(proc, b"", KILL_GRACE)
        except _Timeout as exc:
            out, err = out + exc.out, err + exc.err
            continue
        return out + more_out, err + more_err
    proc.close_all()
    proc.reap()
    return out, err


def _tail(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()[-_TAIL:]


def run_plugin(
    plugin: str,
    stdin: bytes,
    environ: dict[str, str],
    dirs: Sequence[str],
    *,
    timeout: float,
    stderr_sink: Callable[[str, bytes], None] | None = None,
) -> bytes:
    """``invoke.exec_plugin`` with the default executor: the plugin's stdout, or
    ``LeanError`` as the full path's ``DelegateError`` (the plugin's own code; 5 when it
    crashed, was killed, timed out or did not start; 6 when it printed garbage). The
    stderr of a successful run goes to ``stderr_sink`` (the full path logs it at info)."""
    path = find_plugin(plugin, dirs)
    proc = _start(plugin, path, environ)
    try:
        out, err = _exchange(proc, stdin, timeout)
    except _Timeout as exc:
        _, more = _stop(proc)
        raise LeanError(
            PLUGIN_FAILED,
            f"plugin {plugin!r} timed out after {timeout:g} s and was killed",
            _tail(exc.err + more),
        ) from None
    except BaseException:
        _stop(proc)
        raise
    finally:
        proc.close_all()
    assert proc.returncode is not None
    if proc.returncode != 0:
        raise plugin_failure(plugin, out, err, proc.returncode)
    if err and stderr_sink is not None:
        stderr_sink(plugin, err)
    return out


def plugin_failure(plugin: str, stdout: bytes, stderr: bytes, status: int) -> LeanError:
    """``errors.decode_plugin_failure``: the plugin's error object keeps its code, message
    and details; a crash without a word is code 5, garbage code 6."""
    if not stdout.strip():
        return LeanError(PLUGIN_FAILED, _crash_message(plugin, stderr, status))
    if stdout.lstrip(b" \t\n\r")[:1] != b"{":  # not a JSON object: msgspec refuses it
        return LeanError(DECODE_FAILED, _crash_message(plugin, stderr, status))
    try:
        wire = js.loads(stdout)
    except Unhandled:
        wire = None
    if isinstance(wire, dict) and msgspec_reads(stdout, wire):
        code, msg, details = wire.get("code"), wire.get("msg", ""), wire.get("details", "")
        if not isinstance(code, int) or isinstance(code, bool):
            return LeanError(DECODE_FAILED, _crash_message(plugin, stderr, status))
        if isinstance(msg, str) and isinstance(details, str):
            return LeanError(code, msg, details)
        return LeanError(DECODE_FAILED, _crash_message(plugin, stderr, status))
    from pymultus.cni.errors import decode_plugin_failure  # noqa: PLC0415 - the odd reply only

    full = decode_plugin_failure(plugin, stdout, stderr, status)
    return LeanError(full.error_code, full.msg, full.details)


def _crash_message(plugin: str, stderr: bytes, status: int) -> str:
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    tail = _tail(stderr)
    return f"plugin {plugin!r} {how}" + (f": {tail}" if tail else " and printed no error")
