"""pymultus's access to the Kubernetes API: lightkube's sync client, raw JSON dicts.

What the core calls goes through :class:`KubeApi`; how a kubeconfig becomes a client is
:func:`load_client`; and :func:`map_api_error` is the one place where lightkube, httpx and
msgspec exceptions become pymultus errors:

::

    no response (refused, reset, timeout),    -> TryAgainLaterError (11), names the server
    HTTP 429/500/502/503/504
    HTTP 401 / 403                             -> CniError (999): credentials rejected / RBAC
    HTTP 404                                   -> CniError (999) with the API's own message
                                                  (callers that expect 404 check first)
    TLS verification failure                   -> CniError (999): not transient
    body that is not JSON / not the shape      -> DecodeError (6)
    anything else from the API                 -> CniError (999) with the API's message

Pods and NADs come back as the raw JSON objects (``dict``): the core reads a few fields
and passes a NAD's ``spec.config`` on byte for byte, so typed models would only cost time.

The rules followed are the real API server's, not the test stand-in's: status is written with
one merge PATCH of ``pods/status`` whose ``metadata.uid`` is a precondition, falling back to
Go Multus's GET + PUT carrying the ``resourceVersion`` just read (409 means someone else
wrote in between: read again), and events are core/v1 Events like client-go's recorder
creates them.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import lightkube
import msgspec
import yaml
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.types import PatchType

from pymultus.cni import limits
from pymultus.cni.errors import CniError, DecodeError, InvalidConfigError, TryAgainLaterError
from pymultus.k8s.refs import PodRef
from pymultus.k8s.resources import NetworkAttachmentDefinition, RawEvent, RawPod, RawPodStatus

log = logging.getLogger(__name__)

#: Go Multus's client timeout (behaviour row 49): one minute for any single API request.
DEFAULT_TIMEOUT = 60.0
#: Conflict retries for the status write: client-go's ``retry.DefaultRetry`` (5 tries, 10 ms).
STATUS_WRITE_TRIES = 5
STATUS_WRITE_INTERVAL = 0.01
#: The component name Go Multus's event recorder uses; ``kubectl describe`` shows it.
EVENT_COMPONENT = "multus"
#: The field manager client-go derives from the binary name; shows up in managedFields.
FIELD_MANAGER = "multus"
#: Pod annotation whose value is not ``api`` for static (mirror) pods (behaviour row 40).
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"

_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
#: A refused status PATCH falls back to GET + PUT: RBAC without patch, or a UID mismatch.
_PATCH_FALLBACK = frozenset({403, 409, 422})
_JsonObj = dict[str, Any]


def load_client(
    kubeconfig: str | None, *, timeout: float = DEFAULT_TIMEOUT
) -> lightkube.Client | None:
    """Build the API client the way Go Multus's ``GetK8sClient`` does (behaviour row 49).

    A ``kubeconfig`` path wins; else in-cluster credentials when ``KUBERNETES_SERVICE_HOST``
    and ``KUBERNETES_SERVICE_PORT`` are set; else ``None``: no Kubernetes, only static
    ``delegates`` can work. A kubeconfig that cannot be used is a config error naming the
    ``kubeconfig`` field, raised now rather than at the first request.
    """
    if kubeconfig:
        try:
            return _client(_read_kubeconfig(kubeconfig), timeout)
        except _CONFIG_ERRORS as e:
            raise InvalidConfigError(
                f"error getting k8s client: kubeconfig {kubeconfig!r} is not usable: {_brief(e)}",
                field="kubeconfig",
                path=kubeconfig,
            ) from e
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.environ.get("KUBERNETES_SERVICE_PORT"):
        try:
            return _client(KubeConfig.from_service_account(), timeout)
        except _CONFIG_ERRORS as e:
            raise InvalidConfigError(
                "error getting k8s client: no kubeconfig set and the in-cluster service "
                f"account is not usable: {_brief(e)}",
                field="kubeconfig",
            ) from e
    return None


#: What reading a kubeconfig (lightkube parses it loosely) and its files can raise.
_CONFIG_ERRORS = (
    ConfigError,
    OSError,
    yaml.YAMLError,
    msgspec.ValidationError,
    KeyError,
    TypeError,
    AttributeError,
    ValueError,
)


def _read_kubeconfig(path: str) -> KubeConfig:
    docs = limits.load_yaml(Path(path).expanduser().read_bytes(), field="kubeconfig")
    conf = docs[0] if len(docs) == 1 else None
    if not isinstance(conf, dict):
        raise ConfigError("not a kubeconfig (expected a YAML mapping)")
    return KubeConfig.from_dict(conf, fname=Path(path).expanduser())


def _client(config: KubeConfig, timeout: float) -> lightkube.Client:
    return lightkube.Client(
        config=config, timeout=httpx2.Timeout(timeout), field_manager=FIELD_MANAGER
    )


def _brief(e: BaseException) -> str:
    """An exception as text; a bare ``KeyError`` ('clusters') gets its meaning spelled out."""
    if isinstance(e, KeyError):
        return f"missing or unknown entry {e}"
    return str(e) or type(e).__name__


# --- error mapping: the one place -----------------------------------------------------------


def http_status(exc: BaseException) -> int:
    """The HTTP status an API call failed with, or 0 when there was no HTTP response."""
    exc = _unwrap(exc)
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code
    return 0


def is_transient(exc: BaseException) -> bool:
    """True for failures that a later try may not meet: no response, or a 429/5xx.

    Go's ``isCriticalRequestRetriable`` lists 500, 503, connection reset and refused; timeouts,
    502/504 (load balancers) and 429 (API priority and fairness) are just as transient.
    """
    exc = _unwrap(exc)
    if isinstance(exc, httpx2.HTTPStatusError):
        return exc.response.status_code in _TRANSIENT_STATUS
    if isinstance(exc, httpx2.TransportError):
        return not _is_tls_failure(exc)
    return False


def map_api_error(exc: BaseException, *, server: str, action: str) -> CniError:
    """Turn what lightkube/httpx/msgspec raised during ``action`` into a pymultus error."""
    if isinstance(exc, CniError):
        return exc
    exc = _unwrap(exc)
    where = f"{action}: Kubernetes API server {server}"
    status = http_status(exc)
    if is_transient(exc):
        what = _status_text(exc) if status else _transport_text(exc)
        return TryAgainLaterError(f"{where} is not available: {what}")
    if status in (401, 403):
        why = "rejected the credentials" if status == 401 else "denied the request (RBAC)"
        return CniError(f"{where} {why}: {_status_text(exc)}")
    if status:
        return CniError(f"{action}: {_api_message(exc)}")
    if isinstance(exc, httpx2.TransportError):
        return CniError(f"{where}: {_transport_text(exc)}")
    if isinstance(exc, msgspec.DecodeError | msgspec.ValidationError | ValueError):
        return DecodeError(f"{where} sent a reply that is not the expected JSON: {exc}")
    if isinstance(exc, ConfigError):
        return InvalidConfigError(f"{where}: {exc}", field="kubeconfig")
    return CniError(f"{where}: {type(exc).__name__}: {exc}")


#: What KubeApi catches and hands to map_api_error; anything else is a bug and propagates.
API_ERRORS = (httpx2.HTTPError, msgspec.DecodeError, msgspec.ValidationError, ConfigError, KeyError)


def _unwrap(exc: BaseException) -> BaseException:
    """lightkube raises KeyError when an error reply has no Content-Type; use the real error."""
    if isinstance(exc, KeyError) and isinstance(exc.__context__, httpx2.HTTPStatusError):
        return exc.__context__
    return exc


def _api_message(exc: BaseException) -> str:
    """The API's own message (``pods "x" not found``), like client-go's error text."""
    if isinstance(exc, ApiError) and exc.status.message:
        return str(exc.status.message)
    return _status_text(exc)


def _status_text(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        reason = exc.status.reason or ""
        return f"{exc.status.code} {reason}: {exc.status.message or ''}".replace(" :", ":")
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"{exc.response.status_code} {exc.response.reason_phrase}"
    return str(exc)


def _transport_text(exc: BaseException) -> str:
    if isinstance(exc, httpx2.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    text = str(exc)
    return text if text else type(exc).__name__


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# --- the API the core uses ------------------------------------------------------------------


def nad_not_found_text(name: str) -> str:
    """The API server's NotFound message for a NAD, which Go Multus ends its error with."""
    return f'network-attachment-definitions.k8s.cni.cncf.io "{name}" not found'


def is_static_pod(pod: Mapping[str, Any]) -> bool:
    """Static (mirror) pods carry a config source other than ``api``; their API UID differs."""
    source = _annotations(pod).get(CONFIG_SOURCE_ANNOTATION, "")
    return bool(source) and source != "api"


def pod_uid(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or "")


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("annotations") or {}


class KubeApi:
    """The few API calls pymultus makes, with its error rules; may be shared between threads."""

    def __init__(self, client: lightkube.Client) -> None:
        self._client = client
        self.server: str = client.config.cluster.server
        #: Events that could not be created; events are best effort, so this is all that's left.
        self.events_failed = 0
        self._lock = threading.Lock()
        #: False once the API refused a PATCH of pods/status (403): GET + PUT from then on.
        self._status_patch = True
        #: Called when the API answers 401 (per-node certificates rotate then).
        self.on_unauthorized: Callable[[], None] | None = None
        self._retired: lightkube.Client | None = None

    def use_client(self, client: lightkube.Client) -> None:
        """Send every later request through ``client`` (new credentials). The client it
        replaces may still be in use by requests in flight: it is closed one swap later."""
        with self._lock:
            retired, self._retired, self._client = self._retired, self._client, client
        if retired is not None:
            retired.close()

    def close(self) -> None:
        """Close the client, and the one it replaced if any."""
        with self._lock:
            clients = [c for c in (self._retired, self._client) if c is not None]
            self._retired = None
        for client in clients:
            client.close()

    def _failed(self, exc: BaseException, action: str) -> CniError:
        """``map_api_error`` for this server, telling ``on_unauthorized`` about a 401."""
        if http_status(exc) == 401 and self.on_unauthorized is not None:
            self.on_unauthorized()
        return map_api_error(exc, server=self.server, action=action)

    @property
    def client(self) -> lightkube.Client:
        """The lightkube client, for list+watch sources that need more than these calls."""
        return self._client

    def get_pod(self, ref: PodRef) -> _JsonObj | None:
        """The pod as raw JSON, or ``None`` if the API says it does not exist."""
        return self._get(RawPod, ref.namespace, ref.name, f"get pod {ref}")

    def get_nad(self, namespace: str, name: str) -> _JsonObj | None:
        """The NAD as raw JSON, or ``None`` if it does not exist (no retry: row 50)."""
        action = f"get network-attachment-definition {namespace}/{name}"
        return self._get(NetworkAttachmentDefinition, namespace, name, action)

    def get_pod_with_retry(
        self, ref: PodRef, *, attempts: int, interval: float, retry_not_found: bool = False
    ) -> _JsonObj | None:
        """GET the pod, trying again on transient failures (behaviour row 50).

        Up to ``attempts`` tries, ``interval`` seconds apart. A 404 ends it with ``None``
        unless ``retry_not_found`` (the informer-lag case), in which case a pod still missing
        after the last try is ``None`` too. The last transient failure is raised as
        :class:`TryAgainLaterError`.
        """
        last: CniError | None = None
        for attempt in range(max(1, attempts)):
            if attempt:
                time.sleep(interval)
            try:
                pod = self._get_or_raise(RawPod, ref.namespace, ref.name)
            except API_ERRORS as e:
                if http_status(e) == 404:
                    if retry_not_found:
                        last = None
                        continue
                    return None
                if not is_transient(e):
                    raise self._failed(e, f"get pod {ref}") from e
                last = self._failed(e, f"get pod {ref}")
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
                self._client.patch(
                    RawPodStatus,
                    ref.name,
                    _annotation_patch(key, value, expected_uid),
                    namespace=ref.namespace,
                    patch_type=PatchType.MERGE,
                )
            except API_ERRORS as e:
                status = http_status(e)
                if status == 404:
                    return False
                if status not in _PATCH_FALLBACK:
                    action = f"set annotation {key} on pod {ref}"
                    raise self._failed(e, action) from e
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
            pod = self._get(RawPod, ref.namespace, ref.name, action)
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
                self._client.replace(RawPodStatus(**pod), ref.name, namespace=ref.namespace)
            except API_ERRORS as e:
                status = http_status(e)
                if status == 409:
                    continue
                if status == 404:
                    return False
                raise self._failed(e, action) from e
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
            self._client.create(RawEvent(**_event(ref, type_, reason, message)))
        except API_ERRORS as e:
            with self._lock:
                self.events_failed += 1
            err = self._failed(e, f"create event {reason} on {ref}")
            log.warning("%s", err)

    def _get(
        self, res: type[RawPod | NetworkAttachmentDefinition], ns: str, name: str, action: str
    ) -> _JsonObj | None:
        try:
            return self._get_or_raise(res, ns, name)
        except API_ERRORS as e:
            if http_status(e) == 404:
                return None
            raise self._failed(e, action) from e

    def _get_or_raise(
        self, res: type[RawPod | NetworkAttachmentDefinition], ns: str, name: str
    ) -> _JsonObj:
        # A plain dict: lightkube's Generic answers None for any unknown attribute.
        return dict(self._client.get(res, name, namespace=ns))


def _annotation_patch(key: str, value: str, uid: str) -> _JsonObj:
    """The JSON merge patch that sets one annotation, with ``uid`` as a precondition."""
    meta: _JsonObj = {"annotations": {key: value}}
    if uid:
        meta["uid"] = uid
    return {"metadata": meta}


def _event(ref: PodRef, type_: str, reason: str, message: str) -> _JsonObj:
    """The Event object client-go's ``makeEvent`` builds for a pod (name ``<pod>.<ns hex>``)."""
    now = time.time_ns()
    stamp = datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: _JsonObj = {"kind": "Pod", "namespace": ref.namespace, "name": ref.name}
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


def _event_name(ref: PodRef, now_ns: int) -> _JsonObj:
    name = f"{ref.name}.{now_ns:x}"
    if len(name) <= 253:
        return {"name": name, "namespace": ref.namespace}
    # A 253-character pod name leaves no room: let the server make the name unique.
    return {"generateName": f"{ref.name[:200]}.", "namespace": ref.namespace}
