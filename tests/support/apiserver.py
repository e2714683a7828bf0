"""A stand-in Kubernetes API server for tests: real HTTP on 127.0.0.1, JSON only.

No kube-apiserver can run here, so tests talk to this one. It serves what pymultus uses,
with the real server's observable rules (see ``apiserver_store``): core/v1 pods (with
``pods/status``), core/v1 events and secrets, cluster-scoped
``admissionregistration.k8s.io/v1`` validatingwebhookconfigurations, ``k8s.cni.cncf.io/v1``
network-attachment-definitions, ``resource.k8s.io/v1`` resourceclaims and (cluster-scoped)
resourceslices (DRA; a pod's ``status.resourceClaimStatuses`` is whatever ``put_object``
stored),
each with get, list (field/label selectors, ``limit``/``continue``), create, replace, merge
patch, delete and watch (newline-delimited JSON events, bookmarks, ``timeoutSeconds``, an
ERROR event with a 410 Expired Status for a resourceVersion older than the compaction).

Knobs for tests: ``request_log``, ``fail_next``, ``drop_next``, ``set_delay``,
``on_request``, ``stop`` / ``restart`` on the same port, ``compact``, ``bookmark``, and
``put_object`` / ``get_object`` / ``delete_object`` to set up state as a controller would.
``token`` is the bearer token a request must carry (``None`` accepts any request; the user
it authenticates is ``token_user``). ``tls=True`` serves HTTPS with a throw-away CA
(``ca``), where a client certificate signed by it authenticates as CN/O, and adds the
``certificates.k8s.io/v1`` CSR signer ``signer`` (see ``apiserver_certs``);
or ``tls`` may be a server-side ``ssl.SSLContext`` of the test's own (the handshake runs in
the request's thread, so a client that rejects the certificate does not stall the server)::

    with StandInApiServer() as api:
        api.put_object({"kind": "Pod", "metadata": {"namespace": "ns", "name": "p"}})
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support import apiserver_store as st
from tests.support.apiserver_certs import Signer, TestCa, User, validate_csr
from tests.support.apiserver_store import ApiStatus, Kind, Obj
from tests.support.apiserver_watch import WatchSpec, list_items, selector, watch_events

_ROUTE = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}
_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
#: Watches without timeoutSeconds: the real server picks 30-60 minutes; stop() ends them.
DEFAULT_WATCH_TIMEOUT = 1800.0


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server received it, for counting and asserting in tests."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    content_type: str = ""  # the media type, without parameters
    user: str = ""  # who the request authenticated as ("" when it did not)

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], owner: StandInApiServer) -> None:
        self.owner = owner
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients that hang up (or connections we reset) are part of the tests."""

    def close_connections(self) -> None:
        """Cut every open connection, so kept-alive clients see the server gone."""
        with self.conns_lock:
            conns, self.conns = list(self.conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class StandInApiServer:
    """The stand-in API server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        *,
        token: str | None = "standin-token",
        history_limit: int = 1000,
        tls: bool | ssl.SSLContext = False,
    ) -> None:
        self.token = token
        self.token_user: User = ("standin", ["system:authenticated"])
        self.ca = TestCa() if tls is True else None
        self.signer = Signer(self, self.ca) if self.ca is not None else None
        self.tls: ssl.SSLContext | None = (
            self.ca.server_context() if self.ca is not None else (tls or None)
        )
        self.store = st.Store(history_limit=history_limit)
        self.request_log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._failures: list[tuple[int, bool]] = []
        self._path_failures: list[tuple[str, str, int]] = []  # method, path suffix, status
        self._drops = 0
        self._delay = 0.0
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        #: Called with each request before it is served, e.g. to make a concurrent write.
        self.on_request: Callable[[LoggedRequest], None] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> StandInApiServer:
        self.stopping.clear()
        self._server = _Server(("127.0.0.1", self._port), self)
        self._port = self._server.server_address[1]
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections and watches; the objects are kept."""
        if self._server is None:
            return
        self.stopping.set()
        with self.store.cond:
            self.store.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def restart(self) -> None:
        """Come back on the same port with the same objects (like etcd kept them)."""
        self.stop()
        self.start()

    def __enter__(self) -> StandInApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.signer is not None:
            self.signer.join()
        if self.ca is not None:
            self.ca.close()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self._port}"

    def write_kubeconfig(self, path: Path | str, *, namespace: str = "default") -> Path:
        """A kubeconfig for this server with a bearer token (JSON is valid YAML)."""
        user: Obj = {"token": self.token} if self.token else {"username": "u", "password": "p"}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": self._cluster()}],
            "users": [{"name": "standin", "user": user}],
            "contexts": [
                {
                    "name": "standin",
                    "context": {"cluster": "standin", "user": "standin", "namespace": namespace},
                }
            ],
            "current-context": "standin",
        }
        path = Path(path)
        path.write_text(json.dumps(config, indent=2))
        return path

    def _cluster(self) -> Obj:
        cluster: Obj = {"server": self.url}
        if self.ca is not None:
            cluster["certificate-authority"] = str(self.ca.ca_file)
        return cluster

    # --- knobs ----------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, *, plain: bool = False) -> None:
        """Answer the next ``n`` requests with ``status``: a Status object, or (``plain``) a
        text body without Content-Type, like a load balancer in front of the API."""
        with self._lock:
            self._failures.extend([(status, plain)] * n)

    def fail_matching(self, method: str, path_suffix: str, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` ``method`` requests whose path ends with ``path_suffix``
        with ``status`` (other requests are served as usual, whatever runs concurrently)."""
        with self._lock:
            self._path_failures.extend([(method, path_suffix, status)] * n)

    def clear_failures(self) -> None:
        """Forget every failure and drop still pending (``fail_next``, ``fail_matching``,
        ``drop_next``)."""
        with self._lock:
            self._failures.clear()
            self._path_failures.clear()
            self._drops = 0

    def drop_next(self, n: int = 1) -> None:
        """Reset the connection of the next ``n`` requests without answering."""
        with self._lock:
            self._drops += n

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each request."""
        self._delay = seconds

    def compact(self) -> None:
        self.store.compact()

    def bookmark(self) -> None:
        """Send a BOOKMARK to every open watch that asked for bookmarks."""
        self.store.bookmark()

    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally only one method and/or paths containing ``path``."""
        with self._lock:
            log = list(self.request_log)
        return [
            r
            for r in log
            if (method is None or r.method == method) and (path is None or path in r.path)
        ]

    def clear_log(self) -> None:
        with self._lock:
            self.request_log.clear()

    # --- direct access for test setup ---------------------------------------------------

    def put_object(self, obj: Obj) -> Obj:
        """Create or replace ``obj`` (a Pod, Event or NetworkAttachmentDefinition) directly.

        Bypasses validation but not the rules a client sees: the resourceVersion is bumped,
        a uid is assigned, and watches get the event. Returns the stored object.
        """
        kind = st.KINDS_BY_KIND[obj["kind"]]
        if kind.namespaced:
            obj = {**obj, "metadata": {"namespace": "default", **obj.get("metadata", {})}}
        return self.store.put(kind, obj)

    def get_object(self, resource: str, namespace: str, name: str) -> Obj | None:
        """The stored object (a copy) by plural resource name, or None."""
        try:
            return self.store.get(st.KINDS[resource], namespace, name)
        except ApiStatus:
            return None

    def delete_object(self, resource: str, namespace: str, name: str) -> None:
        """Remove the object at once (grace period 0); watches see DELETED."""
        with contextlib.suppress(ApiStatus):
            self.store.delete(st.KINDS[resource], namespace, name, 0)

    @property
    def events(self) -> list[Obj]:
        """core/v1 Events created so far, in creation order."""
        items, _ = self.store.select(st.EVENTS, None)
        return items

    # --- for the handler ------------------------------------------------------------------

    def _take_fault(self, entry: LoggedRequest) -> tuple[str, int, bool]:
        with self._lock:
            for i, (method, suffix, status) in enumerate(self._path_failures):
                if entry.method == method and entry.path.endswith(suffix):
                    del self._path_failures[i]
                    return "fail", status, False
            if self._drops:
                self._drops -= 1
                return "drop", 0, False
            if self._failures:
                status, plain = self._failures.pop(0)
                return "fail", status, plain
        return "", 0, False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    user: User = ("", [])

    def setup(self) -> None:
        # Headers and body go out as two writes; without NODELAY, Nagle plus the client's
        # delayed ACK add 40 ms to every request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()  # in this thread, not the accepting one
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``request_log`` instead."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- plumbing -------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        api = self.server.owner
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            user: User | None = self._authenticate(api)
        except ApiStatus:
            user = None
        entry = LoggedRequest(method, parts.path, query, body, ctype, user[0] if user else "")
        with api._lock:
            api.request_log.append(entry)
        if api.on_request is not None:
            api.on_request(entry)
        if api._delay:
            time.sleep(api._delay)
        fault, status, plain = api._take_fault(entry)
        if fault == "drop":
            self._reset()
            return
        try:
            if fault == "fail":
                self._fail(status, plain)
                return
            if user is None:
                raise ApiStatus(401, "Unauthorized", "Unauthorized")
            self.user = user
            self._route(method, parts.path, query, body)
        except ApiStatus as e:
            self._send(e.code, e.body())

    def _authenticate(self, api: StandInApiServer) -> User:
        """The request's user: the bearer token's, else the client certificate's (TLS)."""
        if api.token is None or self.headers.get("Authorization") == f"Bearer {api.token}":
            return api.token_user
        der = self.connection.getpeercert(binary_form=True) if api.ca is not None else None
        if api.ca is not None and der:
            return api.ca.authenticate(der)
        raise ApiStatus(401, "Unauthorized", "Unauthorized")

    def _fail(self, status: int, plain: bool) -> None:
        if plain:
            text = f"{status} injected failure\n".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return
        reason = _REASONS.get(status, "InternalError")
        raise ApiStatus(status, reason, f"injected failure ({status} {reason})")

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _send(self, code: int, obj: Obj) -> None:
        data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        m = _ROUTE.match(path)
        kind = st.KINDS.get(m["plural"]) if m else None
        if m is None or kind is None or (m["group"] or "") != kind.group:
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        ns, name, sub = m["ns"], m["name"], m["sub"]
        if not kind.namespaced:  # cluster-scoped: stored under "", not served in a namespace
            ns, name = ("", name) if ns is None else (None, name or "-")
        if (sub and sub not in kind.subresources) or (name and ns is None):
            raise ApiStatus(404, "NotFound", "the server could not find the requested resource", {})
        if name is None:
            self._collection(method, kind, ns, query, body)
        else:
            self._item(method, kind, ns, name, status=sub is not None, query=query, body=body)
            signer = self.server.owner.signer
            if kind is st.CSRS and sub == "approval" and signer is not None:
                signer.approval_written(name)

    def _collection(
        self, method: str, kind: Kind, ns: str | None, query: dict[str, str], body: bytes
    ) -> None:
        if method == "GET" and query.get("watch") in ("1", "true"):
            self._watch(kind, ns, query)
        elif method == "GET":
            self._list(kind, ns, query)
        elif method == "POST" and ns is not None:
            obj = _decode(body)
            if kind is st.CSRS:
                obj = self._csr_request(obj)
            created = self.server.owner.store.create(kind, ns, obj)
            self._send(201, created)
            signer = self.server.owner.signer
            if kind is st.CSRS and signer is not None:
                signer.created(created)
        else:
            raise _not_allowed(method)

    def _item(
        self,
        method: str,
        kind: Kind,
        ns: str,
        name: str,
        *,
        status: bool,
        query: dict[str, str],
        body: bytes,
    ) -> None:
        store = self.server.owner.store
        if method == "GET":
            self._send(200, store.get(kind, ns, name))
        elif method == "PUT":
            self._send(200, store.update(kind, ns, name, _decode(body), status=status))
        elif method == "PATCH":
            patched = _merge_patch(store.get(kind, ns, name), self._patch_body(body))
            self._send(200, store.update(kind, ns, name, patched, status=status))
        elif method == "DELETE" and not status:
            self._delete(kind, ns, name, query, body)
        else:
            raise _not_allowed(method)

    def _csr_request(self, obj: Obj) -> Obj:
        """A new CSR: validated, and the requesting user recorded as the real server does."""
        validate_csr(obj)
        spec = obj.setdefault("spec", {})
        spec["username"], spec["groups"] = self.user[0], list(self.user[1])
        obj.pop("status", None)
        return obj

    def _patch_body(self, body: bytes) -> Obj:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        # Strategic merge equals a merge patch for the maps pymultus touches (annotations).
        if ctype not in _PATCH_TYPES:
            msg = (
                "the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(_PATCH_TYPES)} (got {ctype!r})"
            )
            raise ApiStatus(415, "UnsupportedMediaType", msg)
        return _decode(body)

    def _delete(self, kind: Kind, ns: str, name: str, query: dict[str, str], body: bytes) -> None:
        opts = _decode(body) if body.strip() else {}
        grace_raw = query.get("gracePeriodSeconds", opts.get("gracePeriodSeconds"))
        grace = int(grace_raw) if grace_raw not in (None, "") else None
        obj = self.server.owner.store.delete(kind, ns, name, grace)
        if kind.returns_deleted or obj["metadata"].get("deletionTimestamp"):
            self._send(200, obj)
            return
        details = {**st.status_details(kind, name), "uid": obj["metadata"]["uid"]}
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        self._send(200, {**status, "details": details})

    def _list(self, kind: Kind, ns: str | None, query: dict[str, str]) -> None:
        store = self.server.owner.store
        match = selector(kind, query.get("fieldSelector", ""), query.get("labelSelector", ""))
        items, rv = store.select(kind, ns, match)
        meta: Obj = {"resourceVersion": str(rv)}
        start = int(query.get("continue") or 0)
        limit = int(query.get("limit") or 0)
        if limit and start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        page = items[start : start + limit] if limit else items[start:]
        obj = {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": meta}
        self._send(200, {**obj, "items": list_items(kind, page)})

    # --- watch ----------------------------------------------------------------------------

    def _watch(self, kind: Kind, ns: str | None, query: dict[str, str]) -> None:
        api = self.server.owner
        spec = WatchSpec(
            kind,
            ns,
            query.get("resourceVersion") or "",
            selector(kind, query.get("fieldSelector", ""), query.get("labelSelector", "")),
            time.monotonic() + float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT),
            query.get("allowWatchBookmarks") in ("1", "true"),
        )
        events = watch_events(api.store, api.stopping, spec)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with contextlib.suppress(OSError):
            for event in events:
                self._chunk(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _decode(body: bytes) -> Obj:
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise ApiStatus(
            400, "BadRequest", f"the body of the request could not be decoded: {e}"
        ) from e
    if not isinstance(obj, dict):
        raise ApiStatus(400, "BadRequest", "the body of the request is not a JSON object")
    return obj


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _not_allowed(method: str) -> ApiStatus:
    return ApiStatus(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method})",
        {},
    )
