"""The lean path's Kubernetes calls: ``k8s.lite.LiteApi`` + ``k8s.calls.ApiCalls`` for the
few calls an ADD makes: GET a pod, GET a NAD, write the pod's network-status, send Events
(after the answer, from a detached child). ``kubeconf`` finds the server, ``http`` talks to
it; JSON bodies are msgspec's bytes (``dumps``).

Errors: a failed GET happens before any side effect, so it raises ``Unhandled`` (the full path
reads again and reports in its own words); 404 is ``None`` as in ``ApiCalls``. The status write
comes after the delegates ran: its failures are ``LeanError`` with the code and message
``k8s.calls.api_failure`` gives the full path's ``CniError``::

    no response (refused, reset, timeout), 429/5xx    -> 11, "... is not available: ..."
    401 / 403                                          -> 999, credentials / RBAC
    TLS verification failure, other statuses           -> 999
    a reply that is not JSON                           -> 6
"""

from __future__ import annotations

import time

from pymultus.plugin.lean import js
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.http import DEFAULT_TIMEOUT, Connection

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pymultus.plugin.lean.http import Reply
    from pymultus.plugin.lean.kubeconf import Endpoint

#: ``k8s.lite.EVENT_TIMEOUT``: seconds per request when the kept events are sent.
EVENT_TIMEOUT = 10.0
FIELD_MANAGER = "multus"
EVENT_COMPONENT = "multus"
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
STATUS_WRITE_TRIES = 5
STATUS_WRITE_INTERVAL = 0.01
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"
_PATCH_FALLBACK = frozenset({403, 409, 422})
_MERGE = "application/merge-patch+json"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

# --- JSON as msgspec writes it ----------------------------------------------------------------


def dumps(obj: Any) -> bytes:
    """``msgspec.json.encode(obj)`` for decoded JSON: compact, insertion order, UTF-8 as is.
    Not ``js.marshal``: msgspec does no HTML escaping (``<`` stays ``<``) and prints floats
    its own way (``1e20``, ``null`` for NaN), where ``js`` writes Go's bytes."""
    text = _slow(obj) if js.has_float(obj) else js.marshal_text(obj)
    return text.encode("utf-8")


def _slow(obj: Any) -> str:
    if isinstance(obj, dict):
        items = (js.marshal_text(k) + ":" + _slow(v) for k, v in obj.items())
        return "{" + ",".join(items) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_slow(v) for v in obj) + "]"
    if isinstance(obj, float):
        if obj - obj:  # NaN or an infinity (their difference is NaN, true; 0.0 otherwise)
            return "null"
        return _float(obj)
    return js.marshal_text(obj)


def _float(value: float) -> str:
    """msgspec's shortest round-trip text: ``repr``'s, but fixed-point down to 1e-5 (``repr``
    stops at 1e-4) and the exponent without ``+`` or leading zeros."""
    mantissa, e, exponent = repr(value).partition("e")
    if not e:
        return mantissa
    if int(exponent) == -5:
        sign, digits = ("-", mantissa[1:]) if mantissa[0] == "-" else ("", mantissa)
        return f"{sign}0.0000{digits.replace('.', '')}"
    return f"{mantissa}e{int(exponent)}"


def quote(part: str) -> str:
    """``k8s.lite.quote``: a path segment, percent-encoded."""
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in part)


# --- the calls -------------------------------------------------------------------------------


class _Failed(Exception):
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


class Api:
    """The calls of ``k8s.lite.LiteApi`` the lean ADD and DEL make, with its rules."""

    __slots__ = ("conn", "events_failed", "pending", "server", "status_patch")

    def __init__(self, endpoint: Endpoint, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.server = endpoint.server
        self.conn = Connection(endpoint, timeout)
        #: False once the API refused a PATCH of pods/status (403): GET + PUT from then on.
        self.status_patch = True
        self.pending: list[tuple[str, str, str, str, str, str]] = []
        self.events_failed = 0

    def close(self) -> None:
        self.conn.close()

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod as decoded JSON; ``None`` for 404; ``Unhandled`` for any failure."""
        return self._read(_path("pods", namespace, name))

    def get_nad(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The NetworkAttachmentDefinition; ``None`` for 404; ``Unhandled`` for any failure."""
        return self._read(_path("network-attachment-definitions", namespace, name))

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", path)
        except _Failed as exc:
            if exc.status == 404:
                return None
            raise Unhandled(f"GET {path}: {exc}") from None

    # --- the status write ------------------------------------------------------------------

    def set_annotation_status(
        self, namespace: str, name: str, key: str, value: str, expected_uid: str = ""
    ) -> bool:
        """``ApiCalls.set_pod_annotation_status``: one merge PATCH of pods/status with the uid
        as a precondition; on 403 (remembered), 409 or 422 Go Multus's GET + PUT. False when
        the pod is gone or (not static) has another uid; failures are ``LeanError``."""
        action = f"set annotation {key} on pod {namespace}/{name}"
        if self.status_patch:
            patch = annotation_patch(key, value, expected_uid)
            try:
                self._call("PATCH", _status_path(namespace, name), patch, _MERGE, exact=True)
            except _Failed as exc:
                if exc.status == 404:
                    return False
                if exc.status not in _PATCH_FALLBACK:
                    raise lean_error(exc, action, self.server) from None
                if exc.status == 403:
                    self.status_patch = False
            else:
                return True
        return self._get_put(namespace, name, key, value, expected_uid)

    def _get_put(self, namespace: str, name: str, key: str, value: str, uid: str) -> bool:
        """``ApiCalls._get_put_annotation``: again on 409, at most five times."""
        action = f"set annotation {key} on pod {namespace}/{name}"
        for attempt in range(STATUS_WRITE_TRIES):
            if attempt:
                time.sleep(STATUS_WRITE_INTERVAL)
            try:
                pod = self._call("GET", _path("pods", namespace, name), exact=True)
            except _Failed as exc:
                if exc.status == 404:
                    return False
                raise lean_error(exc, action, self.server) from None
            if uid and _pod_uid(pod) != uid and not _is_static(pod):
                return False
            meta = pod.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), key: value}
            try:
                self._call("PUT", _status_path(namespace, name), pod, exact=True)
            except _Failed as exc:
                if exc.status == 409:
                    continue
                if exc.status == 404:
                    return False
                raise lean_error(exc, action, self.server) from None
            return True
        raise LeanError(999, f"{action}: still conflicting after {STATUS_WRITE_TRIES} tries")

    # --- events --------------------------------------------------------------------------------

    def keep_event(
        self, namespace: str, name: str, uid: str, *, type_: str, reason: str, message: str
    ) -> None:
        """``LiteApi.emit_event`` with ``defer_events``: sent by ``send_events``."""
        self.pending.append((namespace, name, uid, type_, reason, message))

    @property
    def events_pending(self) -> bool:
        return bool(self.pending)

    def send_events(self) -> int:
        """``LiteApi.send_events``: the kept events now, each request waiting at most
        ``EVENT_TIMEOUT`` (on the open connection too); returns how many failed."""
        self.conn.set_timeout(min(self.conn.timeout, EVENT_TIMEOUT))
        failed = 0
        for namespace, name, uid, type_, reason, message in self.pending:
            sent = self.post_event(
                namespace, name, uid, type_=type_, reason=reason, message=message
            )
            failed += not sent
        self.pending = []
        return failed

    def post_event(
        self, namespace: str, name: str, uid: str, *, type_: str, reason: str, message: str
    ) -> bool:
        """Create one Event (``calls.make_event``'s, stamped now); False when it failed
        (counted in ``events_failed``: events are best effort)."""
        event = make_event(namespace, name, uid, type_=type_, reason=reason, message=message)
        path = f"/api/v1/namespaces/{quote(namespace)}/events?fieldManager={FIELD_MANAGER}"
        try:
            self._call("POST", path, event)
        except _Failed:
            self.events_failed += 1
            return False
        return True

    # --- one request ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        ctype: str = "application/json",
        *,
        exact: bool = False,
    ) -> dict[str, Any]:
        """``LiteApi._call``: the reply's JSON object, or ``_Failed``. ``exact``: a reply that
        is not JSON gets msgspec's words (the status write's; reads are redone by the full
        path, events only counted)."""
        data = dumps(body) if body is not None else None
        try:
            reply = self.conn.request(method, path, data, ctype)
        except OSError as exc:
            self.conn.close()
            raise _transport_error(exc) from None
        except ValueError as exc:  # a malformed chunk size or Content-Length
            self.conn.close()
            raise _Failed(other=f"bad HTTP reply: {exc}", retriable=True) from None
        if reply.status >= 300:
            raise _status_error(reply)
        return _object(reply.body, exact)


def annotation_patch(key: str, value: str, uid: str) -> dict[str, Any]:
    """``calls._annotation_patch``: the merge patch setting one annotation, the pod's UID as
    a precondition when known."""
    meta: dict[str, Any] = {"annotations": {key: value}}
    if uid:
        meta["uid"] = uid
    return {"metadata": meta}


def _path(plural: str, namespace: str, name: str) -> str:
    base = "/api/v1" if plural == "pods" else "/apis/k8s.cni.cncf.io/v1"
    return f"{base}/namespaces/{quote(namespace)}/{plural}/{quote(name)}"


def _status_path(namespace: str, name: str) -> str:
    return _path("pods", namespace, name) + f"/status?fieldManager={FIELD_MANAGER}"


def _pod_uid(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or "")


def _is_static(pod: dict[str, Any]) -> bool:
    """``calls.is_static_pod``: a config source other than ``api``."""
    meta = pod.get("metadata") or {}
    source = (meta.get("annotations") or {}).get(CONFIG_SOURCE_ANNOTATION, "")
    return bool(source) and source != "api"


def _object(body: bytes, exact: bool) -> dict[str, Any]:
    """The reply as a JSON object, else ``_Failed(decode=True)``."""
    try:
        obj = js.loads(body)
    except Unhandled as exc:
        if not exact:
            raise _Failed(other=str(exc), decode=True) from None
        obj = _strict_decode(body)
    if not isinstance(obj, dict):
        raise _Failed(other=f"expected a JSON object, got {type(obj).__name__}", decode=True)
    return obj


def _strict_decode(body: bytes) -> Any:
    """What msgspec makes of a reply ``js`` did not decode: the message of the full path's
    DecodeError (a broken API server, after the side effects: exactness over speed)."""
    import msgspec  # noqa: PLC0415 - never on the way of a working API server

    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise _Failed(other=str(exc), decode=True) from None


def _transport_error(exc: OSError) -> _Failed:
    if isinstance(exc, TimeoutError):
        return _Failed(other=f"timed out ({type(exc).__name__})", retriable=True)
    verify = type(exc).__name__ == "SSLCertVerificationError"
    return _Failed(other=str(exc) or type(exc).__name__, retriable=not verify)


def _status_error(reply: Reply) -> _Failed:
    """The API's ``Status`` object when the body is one, else the bare status line."""
    plain = f"{reply.status} {reply.reason}"
    try:
        status = js.loads(reply.body)
    except Unhandled:
        status = None
    if not isinstance(status, dict) or status.get("kind") != "Status":
        return _Failed(status=reply.status, status_text=plain)
    message = str(status.get("message") or "")
    code = status.get("code") or reply.status
    text = f"{code} {status.get('reason') or ''}: {message}".replace(" :", ":")
    return _Failed(status=reply.status, status_text=text, api_message=message)


def lean_error(exc: _Failed, action: str, server: str) -> LeanError:
    """``LiteApi.mapped`` + ``calls.api_failure``: the full path's code and message."""
    where = f"{action}: Kubernetes API server {server}"
    if exc.decode:
        return LeanError(6, f"{where} sent a reply that is not the expected JSON: {exc.other}")
    if exc.status in TRANSIENT_STATUS or (not exc.status and exc.retriable):
        return LeanError(
            11, f"{where} is not available: {exc.status_text if exc.status else exc.other}"
        )
    if exc.status in (401, 403):
        why = "rejected the credentials" if exc.status == 401 else "denied the request (RBAC)"
        return LeanError(999, f"{where} {why}: {exc.status_text}")
    if exc.status:
        return LeanError(999, f"{action}: {exc.api_message or exc.status_text}")
    return LeanError(999, f"{where}: {exc.other}")


def make_event(
    namespace: str, name: str, uid: str, *, type_: str, reason: str, message: str
) -> dict[str, Any]:
    """``calls.make_event``: client-go's Event for a pod, named ``<pod>.<ns hex>``."""
    now = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now // 1_000_000_000))
    involved: dict[str, Any] = {"kind": "Pod", "namespace": namespace, "name": name}
    if uid:
        involved["uid"] = uid
    involved["apiVersion"] = "v1"
    event_name = f"{name}.{now:x}"
    meta = (
        {"name": event_name, "namespace": namespace}
        if len(event_name) <= 253
        else {"generateName": f"{name[:200]}.", "namespace": namespace}
    )
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": meta,
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": EVENT_COMPONENT},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "type": type_,
        "reportingComponent": EVENT_COMPONENT,
        "reportingInstance": "",
    }


def send_detached(api: Api) -> int:
    """``plugin.call.send_detached``: the kept events from a child the runtime does not wait
    for (it keeps neither stdin nor stdout); sent here and now without ``fork``. Call it after
    the answer is written and flushed. Returns the child's pid (0: sent here, or none kept)."""
    if not api.events_pending:
        return 0
    try:
        pid = os.fork()
    except OSError:
        api.send_events()
        return 0
    if pid:
        return pid
    try:
        try:  # noqa: SIM105 - contextlib costs an import
            os.setsid()
        except OSError:  # already a session leader: stays in the group
            pass
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        api.send_events()
    finally:
        os._exit(0)
