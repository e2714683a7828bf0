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

import msgspec

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
from pymultus.k8s.lite_http import Connection, Response
from pymultus.k8s.refs import PodRef

log = logging.getLogger("pymultus.k8s.client")

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


def quote(part: str) -> str:
    """A path segment or query value, percent-encoded."""
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in part)


def _path(kind: Kind, namespace: str, name: str, sub: str = "") -> str:
    base = "/api/v1" if kind == "pod" else "/apis/k8s.cni.cncf.io/v1"
    plural = "pods" if kind == "pod" else "network-attachment-definitions"
    path = f"{base}/namespaces/{quote(namespace)}/{plural}/{quote(name)}"
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

    def get(self, path: str) -> JsonObj:
        """GET any API path (already quoted); raises ``LiteError``."""
        return self._call("GET", path)

    def _patch_status(self, ref: PodRef, patch: JsonObj) -> None:
        path = _path("pod", ref.namespace, ref.name, "status") + f"?fieldManager={FIELD_MANAGER}"
        self._call("PATCH", path, patch, "application/merge-patch+json")

    def _put_status(self, ref: PodRef, pod: JsonObj) -> None:
        path = _path("pod", ref.namespace, ref.name, "status") + f"?fieldManager={FIELD_MANAGER}"
        self._call("PUT", path, pod)

    def _create_event(self, event: JsonObj) -> None:
        namespace = quote(event["metadata"]["namespace"])
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
