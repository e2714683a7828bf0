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
from collections.abc import Callable
from pathlib import Path

import httpx2
import lightkube
import msgspec
import yaml
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.types import PatchType

from pymultus.cni import limits
from pymultus.cni.errors import CniError, DecodeError, InvalidConfigError
from pymultus.k8s.calls import (
    DEFAULT_TIMEOUT,
    FIELD_MANAGER,
    TRANSIENT_STATUS,
    ApiCalls,
    JsonObj,
    Kind,
    api_failure,
    is_static_pod,
    nad_not_found_text,
    pod_uid,
)
from pymultus.k8s.refs import PodRef
from pymultus.k8s.resources import NetworkAttachmentDefinition, RawEvent, RawPod, RawPodStatus

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TIMEOUT",
    "FIELD_MANAGER",
    "KubeApi",
    "is_static_pod",
    "is_transient",
    "load_client",
    "map_api_error",
    "nad_not_found_text",
    "pod_uid",
]


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
        return exc.response.status_code in TRANSIENT_STATUS
    if isinstance(exc, httpx2.TransportError):
        return not _is_tls_failure(exc)
    return False


def map_api_error(exc: BaseException, *, server: str, action: str) -> CniError:
    """Turn what lightkube/httpx/msgspec raised during ``action`` into a pymultus error."""
    if isinstance(exc, CniError):
        return exc
    exc = _unwrap(exc)
    status = http_status(exc)
    if status or isinstance(exc, httpx2.TransportError):
        return api_failure(
            action=action,
            server=server,
            status=status,
            status_text=_status_text(exc),
            api_message=_api_message(exc),
            other=_transport_text(exc),
            retriable=is_transient(exc),
        )
    where = f"{action}: Kubernetes API server {server}"
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


class KubeApi(ApiCalls):
    """``ApiCalls`` over lightkube (the daemon); may be shared between threads."""

    errors = API_ERRORS

    def __init__(self, client: lightkube.Client) -> None:
        super().__init__(client.config.cluster.server)
        self._client = client
        self._swap = threading.Lock()
        #: Called when the API answers 401 (per-node certificates rotate then).
        self.on_unauthorized: Callable[[], None] | None = None
        self._retired: lightkube.Client | None = None

    def use_client(self, client: lightkube.Client) -> None:
        """Send every later request through ``client`` (new credentials). The client it
        replaces may still be in use by requests in flight: it is closed one swap later."""
        with self._swap:
            retired, self._retired, self._client = self._retired, self._client, client
        if retired is not None:
            retired.close()

    @property
    def client(self) -> lightkube.Client:
        """The lightkube client, for list+watch sources that need more than these calls."""
        return self._client

    def close(self) -> None:
        """Close the client, and the one it replaced if any."""
        with self._swap:
            clients = [c for c in (self._retired, self._client) if c is not None]
            self._retired = None
        for client in clients:
            client.close()

    def status_of(self, exc: BaseException) -> int:
        return http_status(exc)

    def transient(self, exc: BaseException) -> bool:
        return is_transient(exc)

    def mapped(self, exc: BaseException, action: str) -> CniError:
        """``map_api_error`` for this server, telling ``on_unauthorized`` about a 401."""
        if http_status(exc) == 401 and self.on_unauthorized is not None:
            self.on_unauthorized()
        return map_api_error(exc, server=self.server, action=action)

    def _fetch(self, kind: Kind, namespace: str, name: str) -> JsonObj:
        # A plain dict: lightkube's Generic answers None for any unknown attribute. (Each
        # class named at its call: tests/unit/deploy/test_rbac_matches_code.py reads them.)
        if kind == "pod":
            return dict(self._client.get(RawPod, name, namespace=namespace))
        return dict(self._client.get(NetworkAttachmentDefinition, name, namespace=namespace))

    def _patch_status(self, ref: PodRef, patch: JsonObj) -> None:
        self._client.patch(
            RawPodStatus, ref.name, patch, namespace=ref.namespace, patch_type=PatchType.MERGE
        )

    def _put_status(self, ref: PodRef, pod: JsonObj) -> None:
        self._client.replace(RawPodStatus(**pod), ref.name, namespace=ref.namespace)

    def _create_event(self, event: JsonObj) -> None:
        self._client.create(RawEvent(**event))
