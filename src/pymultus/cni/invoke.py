"""Running a delegate plugin the way libcni does (``pkg/invoke``): find the ``type`` binary,
give it ``CNI_*`` on top of the inherited environment and the config on stdin, and read the
result from stdout or the error from stdout + exit status.

Beyond libcni: every run has a timeout (a hung plugin would otherwise hang the pod sandbox
forever); the plugin runs in its own session so the kill reaches everything it started; and
it is always reaped.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from pymultus.cni import limits, pipes, version
from pymultus.cni.args import format_cni_args
from pymultus.cni.errors import (
    PLUGIN_FAILED,
    DecodeError,
    DelegateError,
    InvalidConfigError,
    decode_plugin_failure,
)

log = logging.getLogger(__name__)

# Seconds a plugin may run. Real plugins take milliseconds to a few seconds (dhcp waits for a
# lease); 60 s is well under the kubelet's 4-minute runtime-request timeout, so a hung plugin
# fails the sandbox with a clear error instead of hanging it.
DEFAULT_TIMEOUT = 60.0
# Seconds between SIGTERM and SIGKILL for a plugin past its timeout: enough to exit cleanly.
KILL_GRACE = 1.0
# Sleeps before retrying an exec that failed with "text file busy" (a plugin binary being
# written by an installer as we start it). libcni retries 5 times, 1 s apart; we back off from
# 0.1 s so the common case (the writer finishes quickly) costs little. Total 3.1 s.
BUSY_RETRY_DELAYS: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6)

_TAIL = 1024  # bytes of plugin stderr kept in messages


@dataclass(frozen=True)
class PluginEnv:
    """The ``CNI_*`` variables of one plugin run."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: tuple[tuple[str, str], ...] = ()
    path: tuple[str, ...] = ()

    def to_environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus all six ``CNI_*`` variables, which win over inherited ones (libcni's
        ``Args.AsEnv`` sets them all, empty or not)."""
        environ = dict(base)
        environ.update(
            CNI_COMMAND=self.command,
            CNI_CONTAINERID=self.container_id,
            CNI_NETNS=self.netns,
            CNI_ARGS=format_cni_args(self.args),
            CNI_IFNAME=self.ifname,
            CNI_PATH=os.pathsep.join(self.path),
        )
        return environ


class Executor(Protocol):
    """Runs a plugin binary; returns its stdout on success, raises ``DelegateError`` otherwise.

    ``plugin`` is the ``type`` name (for messages), ``path`` the binary to run.
    """

    def run(
        self, plugin: str, path: str, environ: Mapping[str, str], stdin: bytes, timeout: float
    ) -> bytes: ...


StderrSink = Callable[[str, bytes], None]


def _log_stderr(plugin: str, stderr: bytes) -> None:
    log.info("plugin %s wrote on stderr: %s", plugin, _tail(stderr))


class SubprocessExecutor:
    """The real executor: ``subprocess.Popen`` without a shell, in a new session.

    The stderr of a successful run goes to ``stderr_sink`` (default: this module's logger), as
    libcni copies it to its caller's stderr; it never reaches our stdout.
    """

    def __init__(
        self,
        *,
        busy_retry_delays: Sequence[float] = BUSY_RETRY_DELAYS,
        kill_grace: float = KILL_GRACE,
        stderr_sink: StderrSink | None = _log_stderr,
        root: str = "",
    ) -> None:
        #: ``chrootDir``: plugins are found under it and run chrooted into it (``chroot(8)``;
        #: ``preexec_fn`` is not safe in the multi-threaded daemon), so a containerised daemon
        #: runs the host's plugins against the host's files.
        self.root = root
        self.busy_retry_delays = tuple(busy_retry_delays)
        self.kill_grace = kill_grace
        self.stderr_sink = stderr_sink

    def run(
        self, plugin: str, path: str, environ: Mapping[str, str], stdin: bytes, timeout: float
    ) -> bytes:
        proc = self._start(plugin, path, environ)
        try:
            stdout, stderr = pipes.exchange(proc, stdin, timeout)
        except subprocess.TimeoutExpired as exc:
            _, stderr = self._stop(proc)
            stderr = (exc.stderr or b"") + stderr
            raise DelegateError(
                f"plugin {plugin!r} timed out after {timeout:g} s and was killed",
                details=_tail(stderr),
                plugin_code=PLUGIN_FAILED,
                plugin=plugin,
            ) from None
        except BaseException:  # KeyboardInterrupt, a signal turned exception: never orphan it
            self._stop(proc)
            raise
        if proc.returncode != 0:
            raise decode_plugin_failure(plugin, stdout, stderr, proc.returncode)
        if stderr and self.stderr_sink is not None:
            self.stderr_sink(plugin, stderr)
        return stdout

    def _start(self, plugin: str, path: str, environ: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start the plugin, retrying while its binary is busy being written (ETXTBSY)."""
        delays = iter(self.busy_retry_delays)
        while True:
            try:
                return subprocess.Popen(
                    ["chroot", self.root, path] if self.root else [path],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=dict(environ),
                    close_fds=True,
                    start_new_session=True,
                )
            except OSError as exc:
                delay = next(delays, None) if exc.errno == errno.ETXTBSY else None
                if delay is None:
                    raise DelegateError(
                        f"failed to execute plugin {plugin!r} ({path}): {exc.strerror or exc}",
                        plugin_code=PLUGIN_FAILED,
                        plugin=plugin,
                        path=path,
                    ) from exc
                time.sleep(delay)

    def _stop(self, proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
        """SIGTERM the plugin's whole process group, SIGKILL it after the grace, and reap."""
        out, err = b"", b""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal_group(proc.pid, sig)
            try:
                more_out, more_err = pipes.exchange(proc, b"", self.kill_grace)
            except subprocess.TimeoutExpired as exc:
                out, err = out + (exc.output or b""), err + (exc.stderr or b"")
                continue
            return out + more_out, err + more_err
        # Killed, yet a pipe is still open: a descendant left the group holding it. Stop
        # reading and reap the plugin itself.
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return out, err


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # The group leader is not reaped yet (we reap only after this), so its pid — and with it
    # the group id — cannot have been reused.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _tail(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()[-_TAIL:]


def find_plugin(plugin_type: str, dirs: Sequence[str], *, root: str = "") -> str:
    """The path of the ``plugin_type`` binary: the first regular file of that name in ``dirs``
    (libcni ``FindInPath``). A type that could leave the directory is refused. With ``root``
    (a chroot), ``dirs`` are looked up under it and the path is returned as seen inside it."""
    if not plugin_type:
        raise InvalidConfigError("no plugin name provided", field="type")
    if "/" in plugin_type or "\0" in plugin_type or plugin_type in (".", ".."):
        raise InvalidConfigError(f"invalid plugin name: {plugin_type}", field="type")
    if not dirs:
        raise InvalidConfigError(
            f"failed to find plugin {_go_quote(plugin_type)}: no paths provided", field="type"
        )
    for directory in dirs:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(root + candidate if root else candidate):
            return candidate
    raise InvalidConfigError(
        f"failed to find plugin {_go_quote(plugin_type)} in path [{' '.join(dirs)}]",
        field="type",
    )


def _go_quote(text: str) -> str:
    """Close to Go's ``%q`` for the names we quote."""
    import json  # noqa: PLC0415 - error messages only

    return json.dumps(text, ensure_ascii=False)


def exec_plugin(
    plugin_type: str,
    stdin: bytes,
    env: PluginEnv,
    dirs: Sequence[str],
    *,
    executor: Executor | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    base_environ: Mapping[str, str] | None = None,
) -> bytes:
    """Find and run one plugin; returns its stdout (the caller decodes the result).

    ``base_environ`` is the inherited environment (default: this process's). A failed run
    raises ``DelegateError`` keeping the plugin's own code (5 when it crashed, could not start or
    timed out, 6 when it printed garbage).
    """
    runner = executor if executor is not None else SubprocessExecutor()
    path = find_plugin(plugin_type, dirs, root=getattr(runner, "root", ""))
    environ = env.to_environ(os.environ if base_environ is None else base_environ)
    return runner.run(plugin_type, path, environ, stdin, timeout)


class _VersionInfo(msgspec.Struct):
    cniVersion: str = ""  # the wire names
    supportedVersions: list[str] = msgspec.field(default_factory=list)


_version_decoder = msgspec.json.Decoder(_VersionInfo)


def plugin_versions(
    plugin_type: str,
    dirs: Sequence[str],
    executor: Executor | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """The spec versions a plugin supports, asked with VERSION as libcni's
    ``GetVersionInfo`` does (dummy NETNS/IFNAME/PATH for plugins built on an old skel)."""
    env = PluginEnv(command="VERSION", netns="dummy", ifname="dummy", path=("dummy",))
    stdin = b'{"cniVersion":"%s"}' % version.CURRENT.encode()
    try:
        out = exec_plugin(plugin_type, stdin, env, dirs, executor=executor, timeout=timeout)
    except DelegateError as exc:
        if exc.msg == "unknown CNI_COMMAND: VERSION":  # a pre-0.2.0 plugin
            return ["0.1.0"]
        raise
    return _decode_versions(plugin_type, out)


def _decode_versions(plugin_type: str, out: bytes) -> list[str]:
    limits.check_json(out, field=f"version info of plugin {plugin_type!r}", error=DecodeError)
    try:
        info = _version_decoder.decode(out)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise DecodeError(f"decoding version info of plugin {plugin_type!r}: {exc}") from exc
    if not info.cniVersion:
        raise DecodeError(f"decoding version info of plugin {plugin_type!r}: missing cniVersion")
    if info.supportedVersions:
        return list(info.supportedVersions)
    if info.cniVersion == "0.2.0":
        return ["0.1.0", "0.2.0"]
    raise DecodeError(
        f"decoding version info of plugin {plugin_type!r}: missing field supportedVersions"
    )
