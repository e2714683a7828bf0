"""The thin plugin's Kubernetes client: the standard library only, one kept-alive connection.

A one-shot process cannot afford a client whose import costs more than the whole call
(lightkube + httpx + anyio + h2: ~200 ms). This one speaks plain HTTP/1.1 over one socket
(TLS through ``ssl``, imported only for an ``https`` server and only when the first request
is made; ``http.client`` is not used: it imports the ``email`` package), JSON through msgspec.
The rules of the calls are ``k8s.calls.ApiCalls``'s, shared with the daemon's lightkube client,
and so are the error words (``calls.api_failure``):

::

    no response (refused, reset, timeout),    -> TryAgainLaterError (11)
    HTTP 429/500/502/503/504
    HTTP 401 / 403                             -> CniError (999): credentials / RBAC
    TLS verification failure                   -> CniError (999): not transient
    other HTTP errors                          -> CniError (999) with the API's message
    a reply that is not JSON                   -> DecodeError (6)

Events are kept and sent after the process has answered the runtime (``plugin.call``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec

from pymultus import __version__
from pymultus.cni.errors import CniError, DecodeError
from pymultus.k8s.calls import (
    DEFAULT_TIMEOUT,
    FIELD_MANAGER,
    TRANSIENT_STATUS,
    ApiCalls,
    JsonObj,
    Kind,
    api_failure,
)
from pymultus.k8s.lite_conf import Endpoint
from pymultus.k8s.refs import PodRef

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("pymultus.k8s.client")

USER_AGENT = f"multus/pymultus-{__version__}"
_MAX_HEADER_LINE = 65536
#: Seconds per request when sending kept events: a child nobody waits for must not linger a
#: minute per event behind an API server that does not answer.
EVENT_TIMEOUT = 10.0
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")


class LiteError(Exception):
    """A request that failed: ``status`` 0 when there was no HTTP response."""

    def __init__(
        self,
        *,
        status: int = 0,
        status_text: str = "",
        api_message: str = "",
        other: str = "",
        retriable: bool = False,
        decode: bool = False,
    ) -> None:
        super().__init__(status_text or other)
        self.status = status
        self.status_text = status_text
        self.api_message = api_message
        self.other = other
        self.retriable = retriable
        self.decode = decode


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


def _quote(part: str) -> str:
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in part)


def _path(kind: Kind, namespace: str, name: str, sub: str = "") -> str:
    base = "/api/v1" if kind == "pod" else "/apis/k8s.cni.cncf.io/v1"
    plural = "pods" if kind == "pod" else "network-attachment-definitions"
    path = f"{base}/namespaces/{_quote(namespace)}/{plural}/{_quote(name)}"
    return f"{path}/{sub}" if sub else path


class LiteApi(ApiCalls):
    """``ApiCalls`` over :class:`Connection`. With ``defer_events`` (the thin plugin's way)
    events are kept until ``send_events``."""

    errors = (LiteError,)

    def __init__(
        self, endpoint: Endpoint, *, timeout: float = DEFAULT_TIMEOUT, defer_events: bool = True
    ) -> None:
        super().__init__(endpoint.server)
        self.conn = Connection(endpoint, timeout)
        self.defer_events = defer_events
        self.pending: list[tuple[PodRef, str, str, str]] = []

    def close(self) -> None:
        self.conn.close()

    # --- classification ------------------------------------------------------------------

    def status_of(self, exc: BaseException) -> int:
        return exc.status if isinstance(exc, LiteError) else 0

    def transient(self, exc: BaseException) -> bool:
        if not isinstance(exc, LiteError):
            return False
        return exc.status in TRANSIENT_STATUS or (not exc.status and exc.retriable)

    def mapped(self, exc: BaseException, action: str) -> CniError:
        if isinstance(exc, CniError):
            return exc
        if not isinstance(exc, LiteError):
            return CniError(f"{action}: Kubernetes API server {self.server}: {exc}")
        if exc.decode:
            where = f"{action}: Kubernetes API server {self.server}"
            return DecodeError(f"{where} sent a reply that is not the expected JSON: {exc.other}")
        return api_failure(
            action=action,
            server=self.server,
            status=exc.status,
            status_text=exc.status_text,
            api_message=exc.api_message,
            other=exc.other,
            retriable=exc.retriable,
        )

    # --- primitives ----------------------------------------------------------------------

    def _fetch(self, kind: Kind, namespace: str, name: str) -> JsonObj:
        return self._call("GET", _path(kind, namespace, name))

    def _patch_status(self, ref: PodRef, patch: JsonObj) -> None:
        path = _path("pod", ref.namespace, ref.name, "status") + f"?fieldManager={FIELD_MANAGER}"
        self._call("PATCH", path, patch, "application/merge-patch+json")

    def _put_status(self, ref: PodRef, pod: JsonObj) -> None:
        path = _path("pod", ref.namespace, ref.name, "status") + f"?fieldManager={FIELD_MANAGER}"
        self._call("PUT", path, pod)

    def _create_event(self, event: JsonObj) -> None:
        namespace = _quote(event["metadata"]["namespace"])
        path = f"/api/v1/namespaces/{namespace}/events?fieldManager={FIELD_MANAGER}"
        self._call("POST", path, event)

    def _call(
        self, method: str, path: str, body: JsonObj | None = None, ctype: str = "application/json"
    ) -> JsonObj:
        data = msgspec.json.encode(body) if body is not None else None
        try:
            reply = self.conn.request(method, path, data, ctype)
        except OSError as e:
            self.conn.close()
            raise _transport_error(e) from e
        except ValueError as e:  # a malformed chunk size or Content-Length
            self.conn.close()
            raise LiteError(other=f"bad HTTP reply: {e}", retriable=True) from e
        if reply.status >= 300:
            raise _status_error(reply)
        try:
            obj = msgspec.json.decode(reply.body)
        except msgspec.DecodeError as e:
            raise LiteError(other=str(e), decode=True) from e
        if not isinstance(obj, dict):
            raise LiteError(other=f"expected a JSON object, got {type(obj).__name__}", decode=True)
        return obj

    # --- events after the answer ---------------------------------------------------------

    def emit_event(self, ref: PodRef, *, type_: str, reason: str, message: str) -> None:
        """Kept for ``send_events`` (events never lengthen the thin plugin's call), or sent
        now without ``defer_events``."""
        if not self.defer_events:
            super().emit_event(ref, type_=type_, reason=reason, message=message)
            return
        self.pending.append((ref, type_, reason, message))

    @property
    def events_pending(self) -> bool:
        return bool(self.pending)

    def send_events(self) -> int:
        """Send the kept events now; returns how many failed (each logged)."""
        self.conn.timeout = min(self.conn.timeout, EVENT_TIMEOUT)
        before = self.events_failed
        for ref, type_, reason, message in self.pending:
            super().emit_event(ref, type_=type_, reason=reason, message=message)
        failed = self.events_failed - before
        if failed:
            log.error("%d of %d events could not be sent", failed, len(self.pending))
        self.pending = []
        return failed


def _transport_error(e: OSError) -> LiteError:
    if isinstance(e, TimeoutError):
        return LiteError(other=f"timed out ({type(e).__name__})", retriable=True)
    verify = type(e).__name__ == "SSLCertVerificationError"
    return LiteError(other=str(e) or type(e).__name__, retriable=not verify)


def _status_error(reply: Response) -> LiteError:
    """The API's ``Status`` object when the body is one, else the bare status line."""
    plain = f"{reply.status} {reply.reason}"
    try:
        status = msgspec.json.decode(reply.body)
    except msgspec.DecodeError:
        status = None
    if not isinstance(status, dict) or status.get("kind") != "Status":
        return LiteError(status=reply.status, status_text=plain)
    message = str(status.get("message") or "")
    code = status.get("code") or reply.status
    text = f"{code} {status.get('reason') or ''}: {message}".replace(" :", ":")
    return LiteError(status=reply.status, status_text=text, api_message=message)
