"""HTTP/1.1 to the API server over one kept-alive connection: ``k8s.lite_http.Connection``
on ``_socket`` and ``_ssl`` (``socket`` and ``ssl`` cost ~30 ms of imports, mostly enum
conversions), the same bytes on the wire (request line, headers), opened again once when the
server closed it in between.

TLS is configured as ``lite_http.tls_context`` does it, on ``_ssl._SSLContext`` directly;
when that private API is missing or changed, ``ssl`` is imported after all (correct, slower).
"""

from __future__ import annotations

import _socket
import binascii

from pymultus import __version__
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import Unhandled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pymultus.plugin.lean.kubeconf import Endpoint

#: ``k8s.calls``: one minute per request (Go Multus's client timeout, behaviour row 49).
DEFAULT_TIMEOUT = 60.0
USER_AGENT = f"multus/pymultus-{__version__}"
_MAX_HEADER_LINE = 65536
_RECV = 65536


class _Eof(ConnectionError):
    """The server closed the connection before a whole reply."""


class Reply:
    """One HTTP reply: status code, reason phrase, the body (de-chunked)."""

    __slots__ = ("body", "reason", "status")

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.body = body


class Connection:
    """``lite_http.Connection``: opened at the first request, kept alive, opened again (once
    per request) when the server closed it in between. The constructor raises ``Unhandled``
    for a server address ``lite_http`` would trip over (bad port, non-ASCII or unusable TLS
    name) and for ``SSLKEYLOGFILE`` (the full path honours it)."""

    __slots__ = (
        "_buf",
        "_sock",
        "_tls",
        "endpoint",
        "host",
        "netloc",
        "port",
        "prefix",
        "timeout",
        "tls",
    )

    def __init__(self, endpoint: Endpoint, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        scheme, _, rest = endpoint.server.partition("://")
        self.tls = scheme == "https"
        netloc, slash, prefix = rest.partition("/")
        self.prefix = (slash + prefix).rstrip("/")
        self.netloc = netloc
        self.host, self.port = _host_port(netloc, 443 if self.tls else 80)
        if self.tls and (os.environ.get("SSLKEYLOGFILE") or not _tls_name_ok(self.server_name)):
            raise Unhandled("TLS settings the lean client does not do")
        self._sock: Any = None
        self._tls: Any = None
        self._buf = b""

    @property
    def server_name(self) -> str:
        return self.endpoint.tls_server_name or self.host

    def set_timeout(self, timeout: float) -> None:
        """Every request from now on, on the open connection too, waits at most ``timeout``."""
        self.timeout = timeout
        if self._sock is not None:
            self._sock.settimeout(timeout)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self._tls = None
        self._buf = b""

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> Reply:
        head = self._head(method, path, body, content_type)
        reused = self._sock is not None
        try:
            return self._exchange(head, body)
        except ConnectionError:  # _Eof included
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
        """The token file is read on every request: a rotated token is used at once."""
        e = self.endpoint
        token = e.token
        if e.token_file:
            with open(e.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        if token:
            return f"Bearer {token}"
        if e.username or e.password:
            pair = binascii.b2a_base64(f"{e.username}:{e.password}".encode(), newline=False)
            return f"Basic {pair.decode()}"
        return ""

    def _exchange(self, head: bytes, body: bytes | None) -> Reply:
        if self._sock is None:
            self._connect()
        self._send(head + body if body else head)
        status, reason, headers = self._read_head()
        data = self._read_body(headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, reason, data)

    def _connect(self) -> None:
        sock = _open_socket(self.host.encode(), self.port, self.timeout)
        owner, tls = sock, None
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if self.tls:
                owner, tls = _tls_wrap(self.endpoint, sock, self.server_name)
        except BaseException:
            sock.close()
            raise
        self._sock, self._tls, self._buf = owner, tls, b""

    # --- bytes in and out ------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self._tls is None:
            self._sock.sendall(data)
            return
        view, count = memoryview(data), 0  # ssl.SSLSocket.sendall
        while count < len(view):
            count += self._tls.write(view[count:])

    def _recv(self) -> bytes:
        """One read; b"" at the end, a TLS end without close_notify included (``ssl``'s
        ``suppress_ragged_eofs``)."""
        if self._tls is None:
            data: bytes = self._sock.recv(_RECV)
            return data
        import _ssl  # noqa: PLC0415 - loaded already for an https server

        try:
            data = self._tls.read(_RECV)
        except _ssl.SSLError as exc:
            if exc.args and exc.args[0] == _ssl.SSL_ERROR_EOF:
                return b""
            raise
        return data

    def _line(self) -> bytes:
        """``BufferedReader.readline(65536)``."""
        buf = self._buf
        end = buf.find(b"\n", 0, _MAX_HEADER_LINE)
        while end < 0 and len(buf) < _MAX_HEADER_LINE:
            chunk = self._recv()
            if not chunk:
                break
            buf += chunk
            end = buf.find(b"\n", 0, _MAX_HEADER_LINE)
        cut = end + 1 if end >= 0 else min(len(buf), _MAX_HEADER_LINE)
        line, self._buf = buf[:cut], buf[cut:]
        if not line:
            raise _Eof("the server closed the connection")
        return line

    def _exactly(self, size: int) -> bytes:
        """``BufferedReader.read(size)``, which must give ``size`` bytes."""
        if size < -1:
            raise ValueError("read length must be non-negative or -1")
        if size == -1:
            self._to_end()
            raise _Eof("the server closed the connection in the middle of a reply")
        chunks, have = [self._buf], len(self._buf)
        while have < size:
            chunk = self._recv()
            if not chunk:
                break
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
        self._buf = data[size:]
        if len(data) < size:
            raise _Eof("the server closed the connection in the middle of a reply")
        return data[:size]

    def _to_end(self) -> bytes:
        chunks = [self._buf]
        while chunk := self._recv():
            chunks.append(chunk)
        self._buf = b""
        return b"".join(chunks)

    # --- HTTP framing: lite_http's, step for step ------------------------------------------

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
        data = self._to_end()
        self.close()
        return data


def _host_port(netloc: str, default: int) -> tuple[str, int]:
    """``lite_http._host_port``; ``Unhandled`` for what would fail later (a bad port, a host
    that is not plain ASCII: ``socket`` would load the idna codec)."""
    if netloc.startswith("["):
        host, _, port = netloc[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = netloc.partition(":")
    if not host or not _printable(host) or any(c in host for c in "@?#"):
        raise Unhandled(f"API server host {host!r}")
    if not port:
        return host, default
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise Unhandled(f"API server port {port!r}")
    return host, int(port)


def _printable(text: str) -> bool:
    return text.isascii() and text.isprintable() and " " not in text


def _tls_name_ok(name: str) -> bool:
    """What ``ssl`` accepts as ``server_hostname`` without an error of its own: the ASCII fast
    path of the idna codec (labels of 1-63 characters) and ``_ssl``'s "not empty, no leading
    dot"."""
    if not name or not _printable(name) or name.startswith("."):
        return False
    labels = name.split(".")
    return all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64


class _Socket(_socket.socket):
    """``_socket.socket`` with weak references, which ``_ssl`` keeps to it (as to
    ``socket.socket``, a subclass too)."""

    __slots__ = ("__weakref__",)


def _open_socket(host: bytes, port: int, timeout: float) -> _socket.socket:
    """``socket.create_connection((host, port), timeout)``: each address in turn, the last
    error raised."""
    error: OSError | None = None
    for family, type_, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = None
        try:
            sock = _Socket(family, type_, proto)
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
            continue
        return sock
    if error is not None:
        raise error
    raise OSError("getaddrinfo returns an empty list")


# --- TLS: lite_http.tls_context on _ssl --------------------------------------------------------


def _tls_wrap(endpoint: Endpoint, sock: _socket.socket, name: str) -> tuple[Any, Any]:
    """The connection's (owner to close, object with ``read``/``write``) after the handshake.

    ``ssl.create_default_context`` + ``SSLContext.wrap_socket`` on ``_ssl`` directly: a
    ``PROTOCOL_TLS_CLIENT`` context (hostname check on, certificates required), the
    kubeconfig's CA, else the system's (``set_default_verify_paths``, ~30 ms: only then), no
    verification with ``insecure-skip-tls-verify``, the client certificate; SNI and the
    hostname check from ``server_hostname`` as ``ssl`` passes it."""
    import _ssl  # noqa: PLC0415 - https only (~2 ms)

    try:
        ctx: Any = _ssl._SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = _ssl.CERT_REQUIRED
        ctx.check_hostname = True
        if endpoint.ca_file or endpoint.ca_data:
            ctx.load_verify_locations(endpoint.ca_file or None, None, endpoint.ca_data or None)
        elif not endpoint.insecure:
            ctx.set_default_verify_paths()
        if endpoint.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = _ssl.CERT_NONE
        _load_chain(ctx, endpoint)
        tls = ctx._wrap_socket(sock, False, name, owner=None, session=None)
    except (AttributeError, TypeError):
        return _tls_by_ssl(endpoint, sock, name)
    tls.do_handshake()
    return sock, tls


def _tls_by_ssl(endpoint: Endpoint, sock: _socket.socket, name: str) -> tuple[Any, Any]:
    """``lite_http.tls_context`` itself, for an interpreter whose ``_ssl`` differs."""
    import ssl  # noqa: PLC0415 - only when _ssl's private API is not what we expect

    ctx = ssl.create_default_context(
        cafile=endpoint.ca_file or None, cadata=endpoint.ca_data or None
    )
    if endpoint.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    _load_chain(ctx, endpoint)
    wrapped = ctx.wrap_socket(sock, server_hostname=name)  # type: ignore[arg-type]
    return wrapped, wrapped


def _load_chain(ctx: Any, endpoint: Endpoint) -> None:
    """The client certificate; inline PEM goes to a private directory (0700, files 0600),
    removed at once (``_ssl`` loads certificates from files only)."""
    e = endpoint
    if not (e.cert_file or e.cert_data):
        return
    if not (e.cert_data or e.key_data):
        ctx.load_cert_chain(e.cert_file, e.key_file or None)
        return
    tmp = _private_dir()
    made: list[str] = []
    try:
        cert = _pem_file(tmp, "cert.pem", e.cert_data, made) if e.cert_data else e.cert_file
        key = _pem_file(tmp, "key.pem", e.key_data, made) if e.key_data else e.key_file
        ctx.load_cert_chain(cert, key or None)
    finally:
        for path in made:
            os.unlink(path)
        os.rmdir(tmp)


def _private_dir() -> str:
    base = os.environ.get("TMPDIR") or "/tmp"
    for _ in range(100):
        path = os.path.join(base, f"multus-tls-{os.urandom(8).hex()}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(17, "No usable temporary directory name found", base)


def _pem_file(tmp: str, name: str, data: str, made: list[str]) -> str:
    path = os.path.join(tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    made.append(path)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    return path
