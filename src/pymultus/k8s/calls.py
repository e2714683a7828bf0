"""The few API calls pymultus makes and their rules, independent of the HTTP client under them.

:class:`ApiCalls` holds the logic (retries, the status write with its PATCH → GET + PUT
fallback, client-go-shaped events); a subclass supplies four primitive requests and the way
its own exceptions are classified. Two do: ``k8s.client.KubeApi`` (lightkube, the daemon) and
``k8s.lite.LiteApi`` (standard library, the one-shot thin plugin). This module imports no HTTP
library, so the thin plugin pays for none it does not use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

from pymultus.cni.errors import CniError, TryAgainLaterError
from pymultus.k8s.objects import CONFIG_SOURCE_ANNOTATION
from pymultus.k8s.refs import PodRef

log = logging.getLogger("pymultus.k8s.client")

#: Go Multus's client timeout (behaviour row 49): one minute for any single API request.
DEFAULT_TIMEOUT = 60.0
#: Conflict retries for the status write: client-go's ``retry.DefaultRetry`` (5 tries, 10 ms).
STATUS_WRITE_TRIES = 5
STATUS_WRITE_INTERVAL = 0.01
#: The component name Go Multus's event recorder uses; ``kubectl describe`` shows it.
EVENT_COMPONENT = "multus"
#: The field manager client-go derives from the binary name; shows up in managedFields.
FIELD_MANAGER = "multus"
#: HTTP statuses a later try may not meet (API priority and fairness, load balancers).
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
#: A refused status PATCH falls back to GET + PUT: RBAC without patch, or a UID mismatch.
_PATCH_FALLBACK = frozenset({403, 409, 422})

JsonObj = dict[str, Any]
Kind = Literal["pod", "nad"]


def nad_not_found_text(name: str) -> str:
    """The API server's NotFound message for a NAD, which Go Multus ends its error with."""
    return f'network-attachment-definitions.k8s.cni.cncf.io "{name}" not found'


def is_static_pod(pod: Mapping[str, Any]) -> bool:
    """Static (mirror) pods carry a config source other than ``api``; their API UID differs."""
    meta = pod.get("metadata") or {}
    source = (meta.get("annotations") or {}).get(CONFIG_SOURCE_ANNOTATION, "")
    return bool(source) and source != "api"


def pod_uid(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or "")


def api_failure(
    *,
    action: str,
    server: str,
    status: int,
    status_text: str = "",
    api_message: str = "",
    other: str = "",
    retriable: bool = False,
) -> CniError:
    """The pymultus error of a failed request, in the same words whatever the client.

    ``status`` is the HTTP status (``status_text`` "503 ServiceUnavailable: ...",
    ``api_message`` the Status object's message); 0 means no response, and ``other`` then
    says what happened instead, ``retriable`` whether a later try may not meet it (a refused
    or reset connection, a timeout; not a TLS verification failure).
    """
    where = f"{action}: Kubernetes API server {server}"
    if status in TRANSIENT_STATUS or (not status and retriable):
        return TryAgainLaterError(f"{where} is not available: {status_text if status else other}")
    if status in (401, 403):
        why = "rejected the credentials" if status == 401 else "denied the request (RBAC)"
        return CniError(f"{where} {why}: {status_text}")
    if status:
        return CniError(f"{action}: {api_message or status_text}")
    return CniError(f"{where}: {other}")


class ApiCalls:
    """The API calls the core makes, with their rules; may be shared between threads.

    A subclass sets ``errors`` (what its primitives raise for a failed request) and implements
    the primitives and the three classifiers below.
    """

    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, server: str) -> None:
        self.server = server
        #: Events that could not be created; events are best effort, so this is all that's left.
        self.events_failed = 0
        self._lock = threading.Lock()
        #: False once the API refused a PATCH of pods/status (403): GET + PUT from then on.
        self._status_patch = True

    def close(self) -> None:
        """Close the client's connections."""

    def send_events(self) -> int:
        """Send events the client kept back (``k8s.lite`` keeps them until the call has
        answered); returns how many failed. Clients that send at once keep none."""
        return 0

    @property
    def events_pending(self) -> bool:
        return False

    # --- what a subclass provides -------------------------------------------------------

    def _fetch(self, kind: Kind, namespace: str, name: str) -> JsonObj:
        raise NotImplementedError

    def _patch_status(self, ref: PodRef, patch: JsonObj) -> None:
        raise NotImplementedError

    def _put_status(self, ref: PodRef, pod: JsonObj) -> None:
        raise NotImplementedError

    def _create_event(self, event: JsonObj) -> None:
        raise NotImplementedError

    def status_of(self, exc: BaseException) -> int:
        """The HTTP status a request failed with, 0 when there was no response."""
        raise NotImplementedError

    def transient(self, exc: BaseException) -> bool:
        """True for failures a later try may not meet (no response, 429/5xx; not TLS)."""
        raise NotImplementedError

    def mapped(self, exc: BaseException, action: str) -> CniError:
        """The pymultus error for a failed request."""
        raise NotImplementedError

    # --- the calls ----------------------------------------------------------------------

    def get_pod(self, ref: PodRef) -> JsonObj | None:
        """The pod as raw JSON, or ``None`` if the API says it does not exist."""
        return self._get("pod", ref.namespace, ref.name, f"get pod {ref}")

    def get_nad(self, namespace: str, name: str) -> JsonObj | None:
        """The NAD as raw JSON, or ``None`` if it does not exist (no retry: row 50)."""
        action = f"get network-attachment-definition {namespace}/{name}"
        return self._get("nad", namespace, name, action)

    def get_pod_with_retry(
        self, ref: PodRef, *, attempts: int, interval: float, retry_not_found: bool = False
    ) -> JsonObj | None:
        """GET the pod, trying again on transient failures (behaviour row 50).

        Up to ``attempts`` tries, ``interval`` seconds apart. A 404 ends it with ``None``
        unless ``retry_not_found`` (the informer-lag case), in which case a pod still missing
        after the last try is ``None`` too. The last transient failure is raised as
        ``TryAgainLaterError``.
        """
        last: CniError | None = None
        for attempt in range(max(1, attempts)):
            if attempt:
                time.sleep(interval)
            try:
                pod = self._fetch("pod", ref.namespace, ref.name)
            except self.errors as e:
                if self.status_of(e) == 404:
                    if retry_not_found:
                        last = None
                        continue
                    return None
                if not self.transient(e):
                    raise self.mapped(e, f"get pod {ref}") from e
                last = self.mapped(e, f"get pod {ref}")
                last.__cause__ = e
                continue
            return pod
        if last is not None:
            raise last
        return None

    def set_pod_annotation_status(
        self, ref: PodRef, key: str, value: str, *, expected_uid: str = ""
    ) -> bool:
        """Set one annotation on ``pods/status``: one merge PATCH, else GET + PUT.

        The PATCH carries ``metadata.uid`` = ``expected_uid``, which the API server holds as a
        precondition: a pod deleted and recreated under the same name refuses it (409, or 422
        "field is immutable") instead of receiving someone else's network-status. It touches
        only this annotation, so no other writer's update can be lost and no
        ``resourceVersion`` is needed: one request on the ADD's critical path instead of Go
        Multus's two.

        Go Multus's GET + PUT is the fallback: when the PATCH is refused with 403 (a role
        that grants ``update`` only, as Go Multus's does; remembered for this client), 409 or
        422 (the PUT path then reads the pod and applies the UID rules below).

        Returns False, writing nothing, when the pod is gone or, for a non-static pod, its
        UID is not ``expected_uid`` (a pod of the same name that is not ours).
        """
        if self._status_patch:
            try:
                self._patch_status(ref, _annotation_patch(key, value, expected_uid))
            except self.errors as e:
                status = self.status_of(e)
                if status == 404:
                    return False
                if status not in _PATCH_FALLBACK:
                    raise self.mapped(e, f"set annotation {key} on pod {ref}") from e
                if status == 403:
                    self._status_patch = False
                    log.warning("PATCH of pods/status refused (403): using GET + PUT from now on")
            else:
                return True
        return self._get_put_annotation(ref, key, value, expected_uid)

    def _get_put_annotation(self, ref: PodRef, key: str, value: str, expected_uid: str) -> bool:
        """Go Multus's way: GET + PUT ``pods/status``, again on 409 Conflict (someone updated
        the pod between our GET and PUT)."""
        action = f"set annotation {key} on pod {ref}"
        for attempt in range(STATUS_WRITE_TRIES):
            if attempt:
                time.sleep(STATUS_WRITE_INTERVAL)
            pod = self._get("pod", ref.namespace, ref.name, action)
            if pod is None:
                return False
            if expected_uid and pod_uid(pod) != expected_uid and not is_static_pod(pod):
                log.warning(
                    "pod %s has UID %s, expected %s: status not written",
                    ref,
                    pod_uid(pod),
                    expected_uid,
                )
                return False
            meta = pod.setdefault("metadata", {})
            meta["annotations"] = {**(meta.get("annotations") or {}), key: value}
            try:
                self._put_status(ref, pod)
            except self.errors as e:
                status = self.status_of(e)
                if status == 409:
                    continue
                if status == 404:
                    return False
                raise self.mapped(e, action) from e
            return True
        raise CniError(
            f"{action}: still conflicting after {STATUS_WRITE_TRIES} tries", pod=str(ref)
        )

    def emit_event(self, ref: PodRef, *, type_: str, reason: str, message: str) -> None:
        """Create a core/v1 Event on the pod, as client-go's recorder does; never raises.

        Events are best effort (Go Multus may even exit before sending them): a failure is
        logged and counted in ``events_failed``.
        """
        try:
            self._create_event(make_event(ref, type_, reason, message))
        except self.errors as e:
            with self._lock:
                self.events_failed += 1
            log.warning("%s", self.mapped(e, f"create event {reason} on {ref}"))

    def _get(self, kind: Kind, ns: str, name: str, action: str) -> JsonObj | None:
        try:
            return self._fetch(kind, ns, name)
        except self.errors as e:
            if self.status_of(e) == 404:
                return None
            raise self.mapped(e, action) from e


def _annotation_patch(key: str, value: str, uid: str) -> JsonObj:
    """The JSON merge patch that sets one annotation, with ``uid`` as a precondition."""
    meta: JsonObj = {"annotations": {key: value}}
    if uid:
        meta["uid"] = uid
    return {"metadata": meta}


def make_event(ref: PodRef, type_: str, reason: str, message: str) -> JsonObj:
    """The Event object client-go's ``makeEvent`` builds for a pod (name ``<pod>.<ns hex>``)."""
    now = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now // 1_000_000_000))
    involved: JsonObj = {"kind": "Pod", "namespace": ref.namespace, "name": ref.name}
    if ref.uid:
        involved["uid"] = ref.uid
    involved["apiVersion"] = "v1"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _event_name(ref, now),
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


def _event_name(ref: PodRef, now_ns: int) -> JsonObj:
    name = f"{ref.name}.{now_ns:x}"
    if len(name) <= 253:
        return {"name": name, "namespace": ref.namespace}
    # A 253-character pod name leaves no room: let the server make the name unique.
    return {"generateName": f"{ref.name[:200]}.", "namespace": ref.namespace}
