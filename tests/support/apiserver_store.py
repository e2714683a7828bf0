"""The object store behind the stand-in API server: what etcd plus the registry do.

It keeps the rules a client can observe on a real kube-apiserver: one global
``resourceVersion`` bumped by every write (not by a no-op update), optimistic concurrency
(409 on a stale ``resourceVersion``), the ``pods/status`` subresource that changes only status
and metadata, graceful deletion of scheduled pods, field and label selectors, and a bounded
event history whose compaction makes old watches fail with 410 Expired.
"""

from __future__ import annotations

import bisect
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

_T = TypeVar("_T")


def _clone(obj: _T) -> _T:
    """A deep copy of a JSON value; a msgspec round trip is ~10x faster than ``copy.deepcopy``
    (every read and write of the store copies, and the tests make thousands)."""
    copied: _T = msgspec.json.decode(msgspec.json.encode(obj))
    return copied


Obj = dict[str, Any]

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)
#: Pod spec fields a plain update may change (everything else is immutable on a real server).
_POD_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


@dataclass(frozen=True)
class Kind:
    """A served resource type and the API conventions that differ between types."""

    plural: str
    group: str
    version: str
    kind: str
    field_labels: frozenset[str]
    #: Built-in types drop kind/apiVersion from list items; custom resources keep them.
    typed_list_items: bool = False
    #: Pods allow an update without resourceVersion; custom resources do not.
    unconditional_update: bool = True
    #: Pods answer DELETE with the object; the generic registry answers with a Status.
    returns_deleted: bool = False
    #: Cluster-scoped kinds (nodes, CSRs, ResourceSlices) live outside namespaces (stored
    #: under ""): no namespace in the path or the metadata.
    namespaced: bool = True
    #: Subresources served besides the main resource (``status``, ``approval``).
    subresources: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How messages name the resource: ``pods`` or ``x.k8s.cni.cncf.io``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
PODS = Kind(
    "pods",
    "",
    "v1",
    "Pod",
    _META_FIELDS
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    returns_deleted=True,
    subresources=frozenset({"status"}),
)
EVENTS = Kind(
    "events",
    "",
    "v1",
    "Event",
    _META_FIELDS
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "reason",
        "source",
        "type",
        "reportingComponent",
    },
)
NADS = Kind(
    "network-attachment-definitions",
    "k8s.cni.cncf.io",
    "v1",
    "NetworkAttachmentDefinition",
    _META_FIELDS,
    typed_list_items=True,
    unconditional_update=False,
)
#: Dynamic Resource Allocation (``resource.k8s.io/v1``): claims are namespaced, slices are
#: cluster-scoped and selectable by node and driver, as the real registry's field labels.
RESOURCECLAIMS = Kind("resourceclaims", "resource.k8s.io", "v1", "ResourceClaim", _META_FIELDS)
RESOURCESLICES = Kind(
    "resourceslices",
    "resource.k8s.io",
    "v1",
    "ResourceSlice",
    frozenset({"metadata.name", "spec.nodeName", "spec.driver"}),
    namespaced=False,
)
CSRS = Kind(
    "certificatesigningrequests",
    "certificates.k8s.io",
    "v1",
    "CertificateSigningRequest",
    frozenset({"metadata.name", "spec.signerName"}),
    namespaced=False,
    subresources=frozenset({"status", "approval"}),
)
NODES = Kind("nodes", "", "v1", "Node", frozenset({"metadata.name"}), namespaced=False)
#: For ``pymultus webhook-certs``: the Secret it writes, the configuration it patches.
SECRETS = Kind("secrets", "", "v1", "Secret", _META_FIELDS | {"type"})
VALIDATING_WEBHOOK_CONFIGURATIONS = Kind(
    "validatingwebhookconfigurations",
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingWebhookConfiguration",
    frozenset({"metadata.name"}),
    namespaced=False,
)
_ALL_KINDS = (
    PODS,
    EVENTS,
    NADS,
    RESOURCECLAIMS,
    RESOURCESLICES,
    CSRS,
    NODES,
    SECRETS,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
)
KINDS = {k.plural: k for k in _ALL_KINDS}
KINDS_BY_KIND = {k.kind: k for k in _ALL_KINDS}


class ApiStatus(Exception):
    """A failure the way the API reports it: a ``Status`` object and its HTTP code."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> Obj:
        status: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        status["message"] = self.message
        status["reason"] = self.reason
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status


def status_details(kind: Kind, name: str) -> Obj:
    d: Obj = {"name": name}
    if kind.group:
        d["group"] = kind.group
    d["kind"] = kind.plural
    return d


def not_found(kind: Kind, name: str) -> ApiStatus:
    return ApiStatus(
        404, "NotFound", f'{kind.qualified} "{name}" not found', status_details(kind, name)
    )


def conflict(kind: Kind, name: str, why: str) -> ApiStatus:
    msg = f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}'
    return ApiStatus(409, "Conflict", msg, status_details(kind, name))


def invalid(kind: Kind, name: str, path: str, value: Any, why: str) -> ApiStatus:
    msg = f'{kind.kind} "{name}" is invalid: {path}: Invalid value: {value!r}: {why}'
    msg = msg.replace("'", '"') if isinstance(value, str) else msg
    return ApiStatus(422, "Invalid", msg, {**status_details(kind, name), "kind": kind.kind})


def now_rfc3339(offset: float = 0.0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


@dataclass(frozen=True)
class Change:
    """One write as a watch sees it: the object after, and before (for selector moves)."""

    rv: int
    kind: Kind
    type: str
    obj: Obj
    old: Obj | None


@dataclass
class Store:
    """Objects by (plural, namespace, name), the global resourceVersion, and the history."""

    history_limit: int = 1000
    rv: int = 1000
    compacted_rv: int = 1000
    bookmarks: int = 0
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    history: list[Change] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    # --- reads --------------------------------------------------------------------------

    def get(self, kind: Kind, ns: str, name: str) -> Obj:
        with self.cond:
            obj = self.objects.get((kind.plural, ns, name))
            if obj is None:
                raise not_found(kind, name)
            return _clone(obj)

    def select(
        self, kind: Kind, ns: str | None, match: Callable[[Obj], bool] | None = None
    ) -> tuple[list[Obj], int]:
        """Copies of the matching objects (all namespaces for ``ns=None``), and the version."""
        with self.cond:
            items = [_clone(o) for o in self._all(kind, ns) if match is None or match(o)]
            return items, self.rv

    def _all(self, kind: Kind, ns: str | None) -> Iterator[Obj]:
        for (plural, o_ns, _), obj in self.objects.items():
            if plural == kind.plural and (ns is None or o_ns == ns):
                yield obj

    def changes_after(self, rv: int) -> list[Change]:
        """History entries newer than ``rv``; caller holds ``cond``."""
        i = bisect.bisect_right(self.history, rv, key=lambda c: c.rv)
        return self.history[i:]

    # --- writes -------------------------------------------------------------------------

    def _commit(self, kind: Kind, type_: str, obj: Obj, old: Obj | None) -> Obj:
        """Bump the resourceVersion, store, record for watches, wake them; holds ``cond``."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (kind.plural, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.history.append(Change(self.rv, kind, type_, _clone(obj), old))
        if len(self.history) > self.history_limit:
            dropped = self.history[: len(self.history) - self.history_limit]
            del self.history[: len(dropped)]
            self.compacted_rv = dropped[-1].rv
        self.cond.notify_all()
        return _clone(obj)

    def create(self, kind: Kind, ns: str, body: Obj, *, validate: bool = True) -> Obj:
        obj = _clone(body)
        meta = obj.setdefault("metadata", {})
        if validate and meta.get("namespace") not in (None, "", ns):
            raise ApiStatus(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
            )
        name = meta.get("name") or ""
        if validate:
            _validate_new(kind, ns, obj)
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if kind.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        meta["uid"] = meta.get("uid") if not validate and meta.get("uid") else str(uuid.uuid4())
        meta.setdefault("creationTimestamp", now_rfc3339())
        if kind is PODS and (validate or not obj.get("status")):
            # A new pod's status is the server's: Pending, with the QoS class it computed.
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj)}
        with self.cond:
            if (kind.plural, ns, name) in self.objects:
                msg = f'{kind.qualified} "{name}" already exists'
                raise ApiStatus(409, "AlreadyExists", msg, status_details(kind, name))
            return self._commit(kind, "ADDED", obj, None)

    def update(self, kind: Kind, ns: str, name: str, body: Obj, *, status: bool = False) -> Obj:
        """PUT semantics: optimistic concurrency, immutable fields, status vs main resource."""
        body_meta = body.get("metadata") or {}
        if body_meta.get("name", name) != name:
            msg = (
                f"the name of the object ({body_meta.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
            raise ApiStatus(400, "BadRequest", msg)
        with self.cond:
            cur = self.objects.get((kind.plural, ns, name))
            if cur is None:
                raise not_found(kind, name)
            _check_preconditions(kind, name, cur, body_meta)
            new = _merge_update(kind, cur, body, status=status)
            if new == cur:
                return _clone(cur)  # a no-op update writes nothing, keeps the version
            return self._commit(kind, "MODIFIED", new, _clone(cur))

    def delete(self, kind: Kind, ns: str, name: str, grace: int | None) -> Obj:
        with self.cond:
            cur = self.objects.get((kind.plural, ns, name))
            if cur is None:
                raise not_found(kind, name)
            old = _clone(cur)
            if kind is PODS and cur.get("spec", {}).get("nodeName") and grace != 0:
                if "deletionTimestamp" in cur["metadata"]:
                    return _clone(cur)
                grace = grace if grace is not None else _pod_grace(cur)
                new = _clone(cur)
                new["metadata"]["deletionTimestamp"] = now_rfc3339(grace)
                new["metadata"]["deletionGracePeriodSeconds"] = grace
                return self._commit(kind, "MODIFIED", new, old)
            return self._commit(kind, "DELETED", _clone(cur), old)

    def put(self, kind: Kind, obj: Obj) -> Obj:
        """Test setup: create or replace without validation, as if a controller wrote it."""
        ns = obj.get("metadata", {}).get("namespace", "")
        name = obj["metadata"]["name"]
        with self.cond:
            cur = self.objects.get((kind.plural, ns, name))
            if cur is None:
                return self.create(kind, ns, obj, validate=False)
            new = _clone(obj)
            new["apiVersion"], new["kind"] = kind.api_version, kind.kind
            new["metadata"].setdefault("uid", cur["metadata"]["uid"])
            new["metadata"].setdefault("creationTimestamp", cur["metadata"]["creationTimestamp"])
            return self._commit(kind, "MODIFIED", new, _clone(cur))

    def compact(self) -> None:
        """Forget the history: a watch from any older resourceVersion now gets 410."""
        with self.cond:
            self.history.clear()
            self.compacted_rv = self.rv
            self.cond.notify_all()

    def bookmark(self) -> None:
        with self.cond:
            self.bookmarks += 1
            self.cond.notify_all()


def _validate_new(kind: Kind, ns: str, obj: Obj) -> None:
    name = obj["metadata"].get("name") or ""
    if not name:
        raise invalid(kind, "", "metadata.name", "", "name or generateName is required")
    if not _NAME_RE.match(name) or len(name) > 253:
        raise invalid(kind, name, "metadata.name", name, _NAME_ERR)
    if kind is EVENTS:
        inv_ns = (obj.get("involvedObject") or {}).get("namespace", "")
        if inv_ns and inv_ns != ns:
            raise invalid(
                kind, name, "involvedObject.namespace", inv_ns, "does not match event.namespace"
            )


def _check_preconditions(kind: Kind, name: str, cur: Obj, meta: Obj) -> None:
    want_rv = meta.get("resourceVersion") or ""
    if not want_rv and not kind.unconditional_update:
        raise invalid(
            kind, name, "metadata.resourceVersion", "0x0", "must be specified for an update"
        )
    if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
        raise conflict(
            kind,
            name,
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
        )
    uid = meta.get("uid") or ""
    if uid and uid != cur["metadata"]["uid"]:
        why = (
            f"Precondition failed: UID in precondition: {cur['metadata']['uid']}, "
            f"UID in object meta: {uid}"
        )
        raise conflict(kind, name, why)


def _merge_update(kind: Kind, cur: Obj, body: Obj, *, status: bool) -> Obj:
    """The object a PUT leads to. Server-owned metadata always stays the server's."""
    if status:
        # pods/status: the status endpoint ignores spec; metadata labels/annotations apply.
        new = _clone(cur)
        new["status"] = _clone(body.get("status") or {})
        for key in ("annotations", "labels"):
            value = (body.get("metadata") or {}).get(key)
            if value:
                new["metadata"][key] = _clone(value)
            else:
                new["metadata"].pop(key, None)
        return new
    new = _clone(body)
    new["apiVersion"], new["kind"] = kind.api_version, kind.kind
    meta = new.setdefault("metadata", {})
    meta.pop("namespace", None)
    for key in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion"):
        if key in cur["metadata"]:  # cluster-scoped objects have no namespace
            meta[key] = cur["metadata"][key]
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if key in cur["metadata"]:
            meta[key] = cur["metadata"][key]
    if kind is PODS:
        # The main pod endpoint ignores status, and most of spec is immutable.
        new["status"] = _clone(cur.get("status") or {})
        if _pod_spec_core(new.get("spec")) != _pod_spec_core(cur.get("spec")):
            raise invalid(
                kind,
                meta["name"],
                "spec",
                "",
                "Forbidden: pod updates may not change fields other than `spec.containers[*]"
                ".image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions "
                "to existing tolerations) or `spec.terminationGracePeriodSeconds`",
            )
    return new


def _pod_spec_core(spec: Obj | None) -> Obj:
    core = _clone(spec or {})
    for key in _POD_MUTABLE_SPEC:
        core.pop(key, None)
    for group in ("containers", "initContainers"):
        for c in core.get(group) or []:
            c.pop("image", None)
    return core


def _pod_grace(pod: Obj) -> int:
    grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
    return int(grace) if grace is not None else 30


def _qos_class(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        set((r.get("limits") or {}).keys()) >= {"cpu", "memory"}
        and all(
            (r.get("requests") or r.get("limits") or {}).get(k) == v
            for k, v in (r.get("limits") or {}).items()
        )
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"
