"""``cni.pipes.exchange``: stdin in, stdout and stderr out, the exit reaped at once, all within
a deadline (``Popen.communicate`` would sleep-poll for the exit)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pymultus.cni.pipes import exchange


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _python(started: list[subprocess.Popen[bytes]], code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    started.append(proc)
    return proc


ECHO = "import sys; d = sys.stdin.buffer.read(); sys.stdout.buffer.write(d); sys.stderr.write('e')"


def test_a_large_stdin_comes_back_whole(started: list[subprocess.Popen[bytes]]) -> None:
    """More than a pipe buffer each way: writing and reading must interleave."""
    data = bytes(range(256)) * 1024  # 256 KiB
    proc = _python(started, ECHO)
    out, err = exchange(proc, data, 30)
    assert (out, err, proc.returncode) == (data, b"e", 0)


def test_empty_stdin_closes_it_at_once(started: list[subprocess.Popen[bytes]]) -> None:
    proc = _python(started, ECHO)
    assert exchange(proc, b"", 30) == (b"", b"e")
    assert proc.returncode == 0


def test_a_child_that_never_reads_stdin_still_answers(
    started: list[subprocess.Popen[bytes]],
) -> None:
    proc = _python(started, "import os; os.close(0); print('done')")
    out, _ = exchange(proc, b"x" * 300_000, 30)
    assert (out, proc.returncode) == (b"done\n", 0)


def test_the_exit_status_is_reaped(started: list[subprocess.Popen[bytes]]) -> None:
    proc = _python(started, "import sys; sys.exit(7)")
    exchange(proc, b"", 30)
    assert proc.returncode == 7


def test_a_hang_times_out_with_what_was_read(started: list[subprocess.Popen[bytes]]) -> None:
    code = "import sys, time; print('partial', flush=True); sys.stderr.write('why')"
    code += "; sys.stderr.flush(); time.sleep(60)"
    proc = _python(started, code)
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        exchange(proc, b"", 0.5)
    assert time.monotonic() - began < 5
    assert (caught.value.output, caught.value.stderr) == (b"partial\n", b"why")
    assert proc.poll() is None  # still running: stopping it is the caller's job


def test_a_child_that_closes_its_pipes_but_lives_on_times_out(
    started: list[subprocess.Popen[bytes]],
) -> None:
    proc = _python(started, "import os, time; [os.close(f) for f in (0, 1, 2)]; time.sleep(60)")
    with pytest.raises(subprocess.TimeoutExpired):
        exchange(proc, b"", 0.5)
    assert proc.poll() is None


def test_after_a_timeout_a_second_exchange_collects_the_rest(
    started: list[subprocess.Popen[bytes]],
) -> None:
    """What ``SubprocessExecutor._stop`` does after signalling the plugin."""
    code = "import sys, time; print('a', flush=True); time.sleep(1); print('b')"
    proc = _python(started, code)
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        exchange(proc, b"in", 0.3)
    out, _ = exchange(proc, b"", 30)
    assert (caught.value.output, out, proc.returncode) == (b"a\n", b"b\n", 0)
