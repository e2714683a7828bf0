"""Feed a child its stdin and collect its stdout and stderr within a deadline, then reap it
the moment it exits.

``Popen.communicate(timeout=...)`` does the same, but it reaps with a polling loop that
sleeps 0.5, 1, 2 ... ms between ``waitpid(WNOHANG)`` tries: a plugin that closes its pipes and
exits a moment later costs up to a few milliseconds of pure sleep, on every delegate of
every pod. Here the exit is awaited on a pidfd (Linux >= 5.3), which wakes up at once; where
there is none, ``Popen.wait`` with the time left is the fallback.
"""

from __future__ import annotations

import os
import select
import selectors
import subprocess
import time
from typing import IO

_CHUNK = 32768
_PIPE_BUF = select.PIPE_BUF  # a write of at most this much to a writable pipe never blocks


def exchange(proc: subprocess.Popen[bytes], stdin: bytes, timeout: float) -> tuple[bytes, bytes]:
    """Write ``stdin``, read stdout and stderr to their end, wait for the exit; everything
    within ``timeout`` seconds, else ``subprocess.TimeoutExpired`` carrying what was read so
    far (the child still runs)."""
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        _exchange(proc, stdin, time.monotonic() + timeout, timeout, out=out, err=err)
    except subprocess.TimeoutExpired as exc:
        exc.output, exc.stderr = b"".join(out), b"".join(err)
        raise
    return b"".join(out), b"".join(err)


def _exchange(
    proc: subprocess.Popen[bytes],
    stdin: bytes,
    deadline: float,
    timeout: float,
    *,
    out: list[bytes],
    err: list[bytes],
) -> None:
    with selectors.PollSelector() as sel:
        _register(sel, proc, stdin)
        sent = 0
        while sel.get_map():
            for key, _ in sel.select(_left(proc, deadline, timeout)):
                pipe: IO[bytes] = key.fileobj  # type: ignore[assignment]
                if pipe is proc.stdin:
                    sent = _write(sel, pipe, stdin, sent)
                else:
                    _read(sel, pipe, out if pipe is proc.stdout else err)
    _wait_exit(proc, deadline, timeout)


def _register(sel: selectors.BaseSelector, proc: subprocess.Popen[bytes], stdin: bytes) -> None:
    if proc.stdin is not None and not proc.stdin.closed:
        if stdin:
            sel.register(proc.stdin, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None and not pipe.closed:
            sel.register(pipe, selectors.EVENT_READ)


def _left(proc: subprocess.Popen[bytes], deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return left


def _write(sel: selectors.BaseSelector, pipe: IO[bytes], data: bytes, sent: int) -> int:
    """One non-blocking write; the pipe is closed once all is sent or the reader is gone."""
    try:
        sent += os.write(pipe.fileno(), data[sent : sent + _PIPE_BUF])
    except BrokenPipeError:
        sent = len(data)  # the plugin does not read its stdin: its answer still counts
    if sent >= len(data):
        sel.unregister(pipe)
        pipe.close()
    return sent


def _read(sel: selectors.BaseSelector, pipe: IO[bytes], into: list[bytes]) -> None:
    data = os.read(pipe.fileno(), _CHUNK)
    if data:
        into.append(data)
    else:
        sel.unregister(pipe)
        pipe.close()


def _wait_exit(proc: subprocess.Popen[bytes], deadline: float, timeout: float) -> None:
    """Reap the child as soon as it exits, or raise ``TimeoutExpired`` at the deadline."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd here, or already reaped
        proc.wait(timeout=max(deadline - time.monotonic(), 0))
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(_left(proc, deadline, timeout) * 1000):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    proc.wait()
