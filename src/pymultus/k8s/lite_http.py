"""HTTP/1.1 over one socket for ``k8s.lite``: the standard library only, ``ssl`` imported when
an ``https`` server is first connected to (``http.client`` is not used: it imports the
``email`` package, more than a thin call can afford)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec

from pymultus import __version__
from pymultus.k8s.calls import DEFAULT_TIMEOUT
from pymultus.k8s.lite_conf import Endpoint

if TYPE_CHECKING:
    import ssl

USER_AGENT = f"multus/pymultus-{__version__}"
_MAX_HEADER_LINE = 65536


class Response(msgspec.Struct):
    status: int
    reason: str
    body: bytes


class Connection:
    """One HTTP/1.1 connection to ``endpoint``, opened at the first request, kept alive and
    opened again (once per request) when the server closed it in between."""

    def __init__(self, endpoint: Endpoint, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        scheme, _, rest = endpoint.server.partition("://")
        self.tls = scheme == "https"
        netloc, slash, prefix = rest.partition("/")
        self.prefix = (slash + prefix).rstrip("/")
        self.netloc = netloc
        self.host, self.port = _host_port(netloc, 443 if self.tls else 80)
        self._sock: socket.socket | None = None
        self._reader: Any = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> Response:
        head = self._head(method, path, body, content_type)
        reused = self._sock is not None
        try:
            return self._exchange(head, body)
        except (ConnectionError, _Eof):
            if not reused:
                raise
        self.close()  # a kept-alive connection the server had closed: once more, anew
        return self._exchange(head, body)

    def _head(self, method: str, path: str, body: bytes | None, content_type: str) -> bytes:
        lines = [
            f"{method} {self.prefix}{path} HTTP/1.1",
            f"Host: {self.netloc}",
            f"User-Agent: {USER_AGENT}",
            "Accept: application/json",
        ]
        auth = self._authorization()
        if auth:
            lines.append(f"Authorization: {auth}")
        if body is not None:
            lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _authorization(self) -> str:
        """The token file is read on every call: a rotated token is used at once."""
        e = self.endpoint
        token = e.token
        if e.token_file:
            with open(e.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        if token:
            return f"Bearer {token}"
        if e.username or e.password:
            import base64  # noqa: PLC0415 - basic auth is rare

            pair = base64.b64encode(f"{e.username}:{e.password}".encode()).decode()
            return f"Basic {pair}"
        return ""

    def _exchange(self, head: bytes, body: bytes | None) -> Response:
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        self._sock.sendall(head + body if body else head)
        status, reason, headers = self._read_head()
        data = self._read_body(headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, reason, data)

    def _connect(self) -> None:
        # An ASCII host as bytes: a str goes through the idna codec (~5 ms of imports).
        host: str | bytes = self.host.encode() if self.host.isascii() else self.host
        sock = socket.create_connection((host, self.port), timeout=self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                name = self.endpoint.tls_server_name or self.host
                sock = tls_context(self.endpoint).wrap_socket(sock, server_hostname=name)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._reader = sock.makefile("rb")

    def _line(self) -> bytes:
        line: bytes = self._reader.readline(_MAX_HEADER_LINE)
        if not line:
            raise _Eof("the server closed the connection")
        return line

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        version, _, rest = self._line().decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise _Eof(f"not an HTTP response: {version} {rest}"[:200])
        headers: dict[str, str] = {}
        while (line := self._line()) not in (b"\r\n", b"\n"):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(code), reason, headers

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            while size := int(self._line().split(b";")[0].strip(), 16):
                chunks.append(self._exactly(size))
                self._line()
            while self._line() not in (b"\r\n", b"\n"):
                pass  # trailers
            return b"".join(chunks)
        if "content-length" in headers:
            return self._exactly(int(headers["content-length"]))
        data: bytes = self._reader.read()
        self.close()
        return data

    def _exactly(self, size: int) -> bytes:
        data: bytes = self._reader.read(size)
        if len(data) != size:
            raise _Eof("the server closed the connection in the middle of a reply")
        return data


class _Eof(ConnectionError):
    pass


def _host_port(netloc: str, default: int) -> tuple[str, int]:
    if netloc.startswith("["):
        host, _, port = netloc[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = netloc.partition(":")
    return host, int(port) if port else default


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """Verification as client-go does it: the kubeconfig's CA (else the system's), unless
    ``insecure-skip-tls-verify``; a client certificate when the user has one."""
    import ssl  # noqa: PLC0415 - an https server only, and only once a request is made

    ctx = ssl.create_default_context(
        cafile=endpoint.ca_file or None, cadata=endpoint.ca_data or None
    )
    if endpoint.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if endpoint.cert_file or endpoint.cert_data:
        with _pem_files(endpoint) as (cert, key):
            ctx.load_cert_chain(cert, key or None)
    return ctx


@contextmanager
def _pem_files(endpoint: Endpoint) -> Iterator[tuple[str, str]]:
    """Certificate and key as files (``ssl`` loads them only from files); inline data goes
    to a private temporary directory, removed at once."""
    import tempfile  # noqa: PLC0415 - inline client certificates only

    with tempfile.TemporaryDirectory(prefix="multus-tls-") as tmp:
        paths = []
        for data, given, name in (
            (endpoint.cert_data, endpoint.cert_file, "cert.pem"),
            (endpoint.key_data, endpoint.key_file, "key.pem"),
        ):
            path = os.path.join(tmp, name) if data else given
            if data:
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                    f.write(data)
            paths.append(path)
        yield paths[0], paths[1]
