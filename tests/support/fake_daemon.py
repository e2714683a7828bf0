"""A recording fake multus-daemon on a unix socket, for tests of the shim and other clients.

Like Go's daemon it serves one HTTP request per connection and then closes it (keep-alive
off). It records every request's exact bytes, in arrival order, and answers from a script per
path: a ``Reply`` (status, body, content type), or exact response bytes (e.g. the golden
``responses/*.http``), optionally late, never, or not at all. A list of replies is used in
order and its last entry repeats. Each connection runs in its own thread, so a reply that
hangs does not block the next connection. ``stop()`` releases hanging replies, closes the
socket and removes the socket file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
REASONS[500] = "Internal Server Error"
READ_TIMEOUT = 5.0  # seconds a client may take to send its request


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``raw`` (exact bytes) wins over status/body/content_type."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    raw: bytes | None = None
    delay: float = 0.0  # seconds to wait before answering
    hang: bool = False  # never answer; the connection stays open until stop()
    close: bool = False  # close the connection without answering

    @classmethod
    def from_file(cls, path: str | Path) -> Reply:
        """Exact response bytes from a golden ``responses/*.http`` file."""
        return cls(raw=Path(path).read_bytes())

    @classmethod
    def json_error(cls, code: int, msg: str, details: str = "") -> Reply:
        """A 400 with a CNI error object, as the daemon sends a ``types.Error``."""
        import json

        body = {"code": code, "msg": msg} | ({"details": details} if details else {})
        return cls(400, json.dumps(body).encode(), "application/json")

    def render(self) -> bytes:
        if self.raw is not None:
            return self.raw
        head = f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}\r\n"
        if self.content_type:
            head += f"Content-Type: {self.content_type}\r\n"
        head += f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        return head.encode() + self.body


@dataclass(frozen=True)
class Recorded:
    """One request as received: the exact bytes and the parts tests look at."""

    raw: bytes
    method: str
    path: str
    body: bytes


def _default_script() -> dict[str, list[Reply]]:
    return {"/readyz": [Reply()], "/healthz": [Reply()], "/cni": [Reply()]}


@dataclass
class FakeDaemon:
    """Serve ``socket_path`` while started (use as a context manager)."""

    socket_path: str
    script: dict[str, list[Reply]] = field(default_factory=_default_script)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    def set(self, path: str, *replies: Reply) -> None:
        """Script ``path``: these replies in order, the last one repeating."""
        with self._lock:
            self.script[path] = list(replies)

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def start(self) -> FakeDaemon:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    def __enter__(self) -> FakeDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(READ_TIMEOUT)
            recorded = _read_request(conn)
            if recorded is None:
                return
            with self._lock:
                self.requests.append(recorded)
                queue = self.script.get(recorded.path, [Reply(404, b"404 page not found\n")])
                reply = queue.pop(0) if len(queue) > 1 else queue[0]
            if reply.hang:
                self._stopping.wait()
                return
            if reply.delay and self._stopping.wait(reply.delay):
                return
            if not reply.close:
                with contextlib.suppress(OSError):
                    conn.sendall(reply.render())


def _read_request(conn: socket.socket) -> Recorded | None:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            body += chunk
    except OSError:
        return None
    method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return Recorded(raw=head + b"\r\n\r\n" + body, method=method, path=path, body=body)


def dead_socket(path: str) -> None:
    """Leave a socket file at ``path`` that nothing listens on (connect: refused), as a
    crashed daemon does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()


@contextlib.contextmanager
def short_socket_dir() -> Iterator[str]:
    """A fresh directory under /tmp whose socket paths fit AF_UNIX's 108 bytes (pytest's
    tmp_path may not); removed afterwards with everything in it."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="pms-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
