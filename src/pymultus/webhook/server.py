"""HTTPS for the webhook: the stdlib's threaded HTTP/1.1 server, TLS per connection.

Why not asyncio like the daemon: a review is a short CPU-bound check plus, for pods, blocking
NAD GETs through the sync API client, so a thread per connection is the natural shape; the
API server keeps its connections alive, so threads are few and long-lived. The stdlib parses
HTTP; this module adds what a webhook needs on top:

- TLS from :class:`~pymultus.webhook.tls.ReloadingTls`, chosen per accepted connection (the
  handshake runs in the connection's thread, so a slow client does not stall ``accept``);
- routes ``POST /validate``, ``GET /healthz``, ``GET /readyz`` (503 once shutdown began),
  ``GET /metrics``;
- a body limit checked on ``Content-Length`` before reading (an over-limit body is drained,
  up to ``DRAIN_LIMIT``, so the client reads the 400 instead of a reset);
- no traceback ever reaches a client or stderr: a failed handshake is a debug line, a bug in
  a handler a 500 with one line and a logged exception.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pymultus.webhook.app import JSON, METRICS_TYPE, TEXT, Answer, Webhook
from pymultus.webhook.review import MAX_BODY
from pymultus.webhook.tls import ReloadingTls

log = logging.getLogger(__name__)

DEFAULT_PORT = 8443
#: Seconds a connection may sit idle or take to send a request (the API server reuses its
#: connections and sends a review in one write; 90 s is Go's idle keep-alive default).
IDLE_TIMEOUT = 90.0
#: Bytes of an over-limit body read and dropped before answering; more closes the connection.
DRAIN_LIMIT = 64 * 1024 * 1024


class WebhookServer(ThreadingHTTPServer):
    """``serve_forever`` in one thread, ``shutdown`` from another."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], webhook: Webhook, tls: ReloadingTls) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.webhook = webhook
        self.tls = tls
        self.shutting_down = False
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        wrapped = self.tls.context().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("connection from %s failed", client_address)

    def stop(self) -> None:
        """Answer ``/readyz`` 503, stop accepting, close the listener."""
        self.shutting_down = True
        self.shutdown()
        self.server_close()


#: Seconds between checks for ``shutdown`` in ``serve_forever``: how long ``stop`` waits.
POLL_INTERVAL = 0.05


def start_in_thread(server: WebhookServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, args=(POLL_INTERVAL,), name="webhook", daemon=True
    )
    thread.start()
    return thread


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall
    timeout = IDLE_TIMEOUT

    def handle(self) -> None:
        try:
            self.connection.do_handshake()
            super().handle()
        except (ssl.SSLError, OSError) as err:
            log.debug("connection from %s ended: %s", self.client_address, err)

    def do_GET(self) -> None:
        webhook = self.server.webhook
        if self.path == "/healthz":
            self._send(Answer(200, b"ok\n", TEXT))
        elif self.path == "/readyz":
            ready = not self.server.shutting_down
            self._send(Answer(200 if ready else 503, b"ok\n" if ready else b"stopping\n", TEXT))
        elif self.path == "/metrics" and webhook.metrics is not None:
            self._send(Answer(200, webhook.metrics.exposition(), METRICS_TYPE))
        elif self.path == "/validate":
            self._send(Answer(405, b"use POST\n", TEXT), ("Allow", "POST"))
        else:
            self._send(Answer(404, b"not found\n", TEXT))

    def do_POST(self) -> None:
        if self.path != "/validate":
            self._send(Answer(404, b"not found\n", TEXT))
            return
        body = self._body()
        if body is None:
            return
        try:
            answer = self.server.webhook.validate(body)
        except Exception as exc:  # a bug in a rule must still get an answer
            log.exception("review failed")
            answer = Answer(500, f"internal error: {type(exc).__name__}\n".encode(), TEXT)
        self._send(answer)

    def _body(self) -> bytes | None:
        """The request body, or None after answering a body the webhook will not read."""
        if self.headers.get("Transfer-Encoding"):
            self._refuse("Transfer-Encoding is not supported: send Content-Length")
            return None
        text = self.headers.get("Content-Length", "")
        if not text.isdigit():
            self._refuse("Content-Length is required")
            return None
        length = int(text)
        if length > MAX_BODY:
            self._drain(length)
            self._refuse(f"body: {length} bytes is over the limit of {MAX_BODY} bytes")
            return None
        return self.rfile.read(length)

    def _drain(self, length: int) -> None:
        remaining = min(length, DRAIN_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 256 * 1024))
            if not chunk:
                return
            remaining -= len(chunk)

    def _refuse(self, message: str) -> None:
        self.close_connection = True
        self._send(Answer(400, f"{message}\n".encode(), TEXT), ("Connection", "close"))

    def _send(self, answer: Answer, *extra: tuple[str, str]) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


__all__ = ["DEFAULT_PORT", "JSON", "WebhookServer", "start_in_thread"]
