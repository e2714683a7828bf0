"""The stand-in API server in a process of its own, as a real kube-apiserver is.

In the harness's own process its Python threads (status writes, events, watch streams) would
compete for the harness's GIL with the threads that time the calls, and add milliseconds
to the modes that talk to the API. Forked from the thread that is in the benchmark's host
network namespace, the child listens there. The harness drives it over a pipe: put objects,
count them, read the request log (``time.monotonic()`` is one clock for every process).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.support import apiserver_store as st
from tests.support.apiserver import StandInApiServer

#: (arrival time, method, path, is a watch)
RequestTime = tuple[float, str, str, bool]
_KINDS = {"pods": st.PODS, "nads": st.NADS}
_START_TIMEOUT = 30.0


class ApiProcess:
    """``StandInApiServer`` running in a forked child; see the module docstring."""

    def __init__(self, history_limit: int = 20000) -> None:
        self.history_limit = history_limit
        self.pid = 0
        self._conn: multiprocessing.connection.Connection | None = None
        self._proc: multiprocessing.process.BaseProcess | None = None

    def start(self, kubeconfig: Path) -> None:
        """Start the child; it writes its kubeconfig to ``kubeconfig``."""
        ours, theirs = multiprocessing.Pipe()
        proc = multiprocessing.get_context("fork").Process(
            target=_serve, args=(theirs, self.history_limit, str(kubeconfig)), daemon=True
        )
        proc.start()
        theirs.close()
        self._conn, self._proc, self.pid = ours, proc, proc.pid or 0
        if not ours.poll(_START_TIMEOUT):
            raise RuntimeError("the stand-in API server did not start")
        ours.recv()

    def stop(self) -> None:
        if self._proc is None or self._conn is None:
            return
        with contextlib.suppress(OSError, EOFError):
            self._call("stop")
        self._proc.join(5)
        if self._proc.is_alive():
            os.kill(self.pid, signal.SIGKILL)
            self._proc.join()
        self._conn.close()
        self._proc = self._conn = None

    def put_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        stored: dict[str, Any] = self._call("put", obj)
        return stored

    def delete_pods(self, names: list[tuple[str, str]]) -> None:
        """Remove these (namespace, name) pods at once, as after their sandboxes went."""
        self._call("delete_pods", names)

    def count(self, kind: str) -> int:
        """How many ``pods`` or ``nads`` the server holds."""
        counted: int = self._call("count", kind)
        return counted

    def request_times(self) -> list[RequestTime]:
        times: list[RequestTime] = self._call("times")
        return times

    def _call(self, op: str, arg: Any = None) -> Any:
        assert self._conn is not None, "the API server is not running"
        self._conn.send((op, arg))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"API server {op}: {value}")
        return value


def _serve(conn: multiprocessing.connection.Connection, history: int, kubeconfig: str) -> None:
    times: list[RequestTime] = []
    api = StandInApiServer(history_limit=history, tls=True)  # HTTPS, as a kube-apiserver
    api.on_request = lambda r: times.append(
        (time.monotonic(), r.method, r.path, r.query.get("watch") in ("1", "true"))
    )
    api.start()
    api.write_kubeconfig(Path(kubeconfig))
    conn.send(None)
    try:
        while True:
            op, arg = conn.recv()
            if op == "stop":
                conn.send((True, None))
                return
            try:
                conn.send((True, _do(api, times, op, arg)))
            except Exception as exc:  # reported to the harness, which raises it
                conn.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        api.stop()


def _do(api: StandInApiServer, times: list[RequestTime], op: str, arg: Any) -> Any:
    if op == "put":
        return api.put_object(arg)
    if op == "delete_pods":
        for namespace, name in arg:
            api.delete_object("pods", namespace, name)
        return None
    if op == "count":
        items, _ = api.store.select(_KINDS[arg], None)
        return len(items)
    if op == "times":
        return list(times)
    raise ValueError(f"unknown operation {op!r}")
