"""HTTP/1.1 over the daemon's unix socket (and the metrics TCP port), on asyncio.

A minimal server, not a framework: one request per connection (``Connection: close``, as Go
Multus disables keep-alive), ``Content-Length`` or chunked bodies, ``Expect: 100-continue``, a
body cap, a timeout for reading a request, and an optional cap on connections served at once
(``connectionLimit``; Go's ``netutil.LimitListener`` — a connection over the cap waits, it is
not refused). The loop only parses and routes: handlers do their work in threads.

Responses are laid out the way Go's ``net/http`` writes them (explicit headers, then ``Date``
and ``Content-Length``, then a sniffed ``Content-Type``, then ``Connection: close``), and
errors from ``http.Error`` keep Go's ``text/plain`` + ``nosniff`` headers and trailing newline,
so a byte log of this daemon looks like one of Go Multus's.

Routes of the daemon socket (behaviour §7): ``POST /cni``, ``POST /delegate``, ``GET|POST
/healthz`` (always 200), ``GET|POST /readyz`` (200; 500 once shutdown began), 404 for any other
path, 405 for a wrong method. Once shutdown began, a new ``/cni`` or ``/delegate`` gets 503 with
CNI error JSON (code 11) and runs nothing; requests already running finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pymultus.cni import gojson
from pymultus.cni.errors import CniError, DecodeError, InternalError, TryAgainLaterError
from pymultus.daemon.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

#: Largest request body accepted. A Multus config with a big prevResult is a few KiB; 1 MiB
#: leaves room for huge conflists while a runaway client cannot make the daemon buffer more.
DEFAULT_BODY_LIMIT = 1024 * 1024
#: Bytes of an over-limit body still read (and dropped) so the client can read our 400
#: instead of a reset while it is still sending; past this the connection is just closed.
DISCARD_LIMIT = 64 * 1024 * 1024
#: Largest request line plus headers (Go's default is 1 MiB; ours carry five headers).
HEADER_LIMIT = 64 * 1024
#: Seconds a client may take to send one whole request. Go has no limit; with a connection
#: cap, a client that connects and never writes must not hold a slot forever.
READ_TIMEOUT = 60.0

GET_POST = frozenset({"GET", "POST"})
POST = frozenset({"POST"})
NOT_FOUND_LABEL = "NotFound"  # Go's handler label for unrouted paths
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    """``headers`` are written before ``Date`` (Go's explicitly set headers); ``sniffed_type``
    after ``Content-Length`` (the type Go's server sniffs when a handler set none)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    sniffed_type: str = ""

    @classmethod
    def text_error(cls, status: int, text: str, *extra: tuple[str, str]) -> HttpResponse:
        """Go's ``http.Error``: text/plain, nosniff, the text and a newline."""
        headers = (("Content-Type", TEXT), *extra, ("X-Content-Type-Options", "nosniff"))
        return cls(status, text.encode() + b"\n", headers=tuple(sorted(headers)))

    @classmethod
    def cni_error(cls, exc: CniError) -> HttpResponse:
        """400 with the CNI error object ``{"code","msg","details"}`` (the delegate's own code
        kept), written through ``http.Error`` as Go Multus does."""
        return cls.text_error(400, gojson.marshal(exc.to_wire()).decode())

    def encode(self) -> bytes:
        reason = http.HTTPStatus(self.status).phrase
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines.append(f"Date: {email.utils.formatdate(usegmt=True)}")
        lines.append(f"Content-Length: {len(self.body)}")
        if self.sniffed_type:
            lines.append(f"Content-Type: {self.sniffed_type}")
        lines += ["Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1") + self.body


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    methods: frozenset[str] = POST


@dataclass(frozen=True)
class _Head:
    method: str
    path: str
    headers: dict[str, str]


class _BadRequest(Exception):
    """The bytes are not an HTTP/1.x request we can read; answered 400 and closed."""


class _TooLarge(Exception):
    def __init__(self, size: int, remaining: int | None) -> None:
        super().__init__(size)
        self.size = size
        self.remaining = remaining  # bytes still to drop; None: unknown (chunked)


@dataclass
class HttpServer:
    """Serves ``routes``; counts requests in flight so shutdown can wait for them."""

    routes: Mapping[str, Route]
    metrics: Metrics | None = None
    body_limit: int = DEFAULT_BODY_LIMIT
    connection_limit: int | None = None
    read_timeout: float = READ_TIMEOUT
    #: Told True when the first request starts and False when the last one ends.
    on_busy: Callable[[bool], None] | None = None
    _servers: list[asyncio.Server] = field(default_factory=list)
    _in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _slots: asyncio.Semaphore | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._idle.set()
        if self.connection_limit is not None:
            self._slots = asyncio.Semaphore(self.connection_limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start_unix(self, path: str) -> None:
        server = await asyncio.start_unix_server(self._connection, path=path, limit=HEADER_LIMIT)
        self._servers.append(server)

    async def start_tcp(self, host: str | None, port: int) -> int:
        """Listen on TCP (``host`` None: every address); returns the bound port."""
        server = await asyncio.start_server(self._connection, host, port, limit=HEADER_LIMIT)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no request is in flight; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, grace: float = 0.0) -> None:
        """Stop listening, give requests still in flight ``grace`` seconds (one may have
        arrived just before the listener closed), then drop every connection left."""
        for server in self._servers:
            server.close()
        if grace > 0:
            await self.wait_idle(grace)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    # ------------------------------------------------------------ one connection

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self._slots is None:
                await self._exchange(reader, writer)
            else:
                async with self._slots:
                    await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nobody to answer
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.read_timeout):
                head = await _read_head(reader)
        except _BadRequest as exc:
            log.info("bad HTTP request: %s", exc)
            await _send(writer, HttpResponse.text_error(400, "400 Bad Request"))
            return
        route = self.routes.get(head.path)
        label = head.path if route is not None else NOT_FOUND_LABEL
        started = time.monotonic()
        self._enter()
        try:
            response, drop = await self._respond(route, head, reader, writer)
            await _send(writer, response)
        finally:
            self._leave()
        if self.metrics is not None:
            self.metrics.observe_request(
                label, response.status, head.method, time.monotonic() - started
            )
        if drop:
            await _discard(reader, drop, self.read_timeout)

    async def _respond(
        self,
        route: Route | None,
        head: _Head,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> tuple[HttpResponse, int]:
        """The response, and how many body bytes to drop after sending it."""
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await _read_body(reader, writer, head.headers, self.body_limit)
        except _TooLarge as exc:
            err = DecodeError(
                f"request body of {exc.size} bytes or more is over the limit of "
                f"{self.body_limit} bytes",
                field="body",
            )
            return HttpResponse.cni_error(err), min(exc.remaining or 0, DISCARD_LIMIT)
        except _BadRequest as exc:
            return HttpResponse.text_error(400, f"400 Bad Request: {exc}"), 0
        if route is None:
            return HttpResponse.text_error(404, "404 page not found"), 0
        if head.method not in route.methods:
            allow = ("Allow", ", ".join(sorted(route.methods)))
            return HttpResponse.text_error(405, "Method not allowed", allow), 0
        request = HttpRequest(head.method, head.path, head.headers, body)
        try:
            return await route.handler(request), 0
        except Exception as exc:  # a handler bug must still get an answer
            log.exception("handler of %s failed", head.path)
            bug = InternalError(f"internal error: {type(exc).__name__}: {exc}")
            return HttpResponse.cni_error(bug), 0

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()
        if self._in_flight == 1 and self.on_busy is not None:
            self.on_busy(True)
        if self.metrics is not None:
            self.metrics.in_flight.inc()

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()
            if self.on_busy is not None:
                self.on_busy(False)
        if self.metrics is not None:
            self.metrics.in_flight.dec()


# ------------------------------------------------------------ HTTP/1.x parsing


async def _read_head(reader: asyncio.StreamReader) -> _Head:
    """Request line and headers; the path without query, absolute-form reduced to it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest("request line and headers are too long") from exc
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise _BadRequest(f"malformed request line {lines[0][:80]!r}")
    method, target, _ = parts
    if target.startswith(("http://", "https://")):
        target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(f"malformed header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return _Head(method, target.split("?", 1)[0], headers)


async def _read_body(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    headers: Mapping[str, str],
    limit: int,
) -> bytes:
    chunked = headers.get("transfer-encoding", "").lower()
    if chunked and chunked != "chunked":
        raise _BadRequest(f"unsupported Transfer-Encoding {chunked!r}")
    length = 0 if chunked else _content_length(headers)
    if length > limit:
        raise _TooLarge(length, length)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if chunked:
        return await _read_chunked(reader, limit)
    return await reader.readexactly(length) if length else b""


def _content_length(headers: Mapping[str, str]) -> int:
    text = headers.get("content-length", "0")
    if not text.isdigit():
        raise _BadRequest(f"invalid Content-Length {text[:40]!r}")
    return int(text)


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise _BadRequest(f"invalid chunk size {size_line[:20]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > limit:
            raise _TooLarge(len(body) + size, None)
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequest("chunk not followed by CRLF")


async def _discard(reader: asyncio.StreamReader, count: int, timeout: float) -> None:
    """Read and drop ``count`` bytes (the rest of an over-limit body)."""
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(timeout):
            while count > 0:
                data = await reader.read(min(count, 256 * 1024))
                if not data:
                    return
                count -= len(data)


async def _send(writer: asyncio.StreamWriter, response: HttpResponse) -> None:
    with contextlib.suppress(ConnectionError):
        writer.write(response.encode())
        await writer.drain()


# ------------------------------------------------------------ the daemon's routes


#: The answer to a call that arrives once shutdown began.
SHUTTING_DOWN = TryAgainLaterError("multus-daemon is shutting down")


@dataclass
class Health:
    """``/readyz`` answers 500 once ``shutting_down`` is set; ``/healthz`` always 200 (the
    shim's probe before a DEL when it cannot connect).

    Once ``shutting_down`` is set, new calls (``guarded`` handlers) get 503 without running:
    Go's shim probes ``/readyz`` before every call and so holds it until the next daemon is
    ready; ours sends the call at once and does the same on a 503. The error body (code 11)
    is what a client that does not retry shows.
    """

    shutting_down: bool = False

    async def healthz(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200)

    async def readyz(self, request: HttpRequest) -> HttpResponse:
        if self.shutting_down:
            return HttpResponse(500, headers=(("Content-Type", JSON),))
        return HttpResponse(200, headers=(("Content-Type", JSON),))

    def guarded(self, handler: Handler) -> Handler:
        """``handler``, refused with 503 once shutdown began."""

        async def unless_shutting_down(request: HttpRequest) -> HttpResponse:
            if self.shutting_down:
                body = gojson.marshal(SHUTTING_DOWN.to_wire()).decode()
                return HttpResponse.text_error(503, body)
            return await handler(request)

        return unless_shutting_down


def daemon_routes(cni: Handler, delegate: Handler, health: Health) -> dict[str, Route]:
    return {
        "/cni": Route(health.guarded(cni)),
        "/delegate": Route(health.guarded(delegate)),
        "/healthz": Route(health.healthz, GET_POST),
        "/readyz": Route(health.readyz, GET_POST),
    }


def metrics_routes(metrics: Metrics) -> dict[str, Route]:
    """The metrics port: ``GET /metrics`` (pprof has no Python equivalent)."""

    async def exposition(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, metrics.exposition(), headers=(("Content-Type", CONTENT_TYPE),))

    return {"/metrics": Route(exposition, GET_POST)}
