"""``certificates.k8s.io/v1`` CertificateSigningRequests: submit one, wait for its certificate.

The resource types are raw JSON dicts like the others in ``k8s.resources``; the approver
(``pymultus.daemon.certapprover``) uses the same types plus ``nodes`` and ``/approval``.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import lightkube
from lightkube.core import resource as res
from lightkube.generic_resource import Generic, GenericGlobalResource

from pymultus.cni.errors import CniError, TryAgainLaterError
from pymultus.k8s.certs import SIGNER_NAME, USAGES
from pymultus.k8s.client import API_ERRORS, http_status, is_transient, map_api_error

log = logging.getLogger(__name__)

_CSR = res.ResourceDef("certificates.k8s.io", "v1", "CertificateSigningRequest")


class RawCsr(GenericGlobalResource):
    """A CertificateSigningRequest as its raw JSON object."""

    _api_info = res.ApiInfo(
        resource=_CSR,
        plural="certificatesigningrequests",
        verbs=["delete", "get", "global_list", "global_watch", "list", "post", "watch"],
    )


class RawCsrApproval(res.GlobalSubResource, Generic):  # type: ignore[misc]
    """``certificatesigningrequests/approval``: where the Approved/Denied condition goes."""

    _api_info = res.ApiInfo(
        resource=_CSR,
        parent=_CSR,
        plural="certificatesigningrequests",
        verbs=["put"],
        action="approval",
    )


class RawNode(GenericGlobalResource):
    """A core/v1 Node (the approver only checks that it exists)."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef("", "v1", "Node"), plural="nodes", verbs=["get"]
    )


class CsrDenied(CniError):
    """The CSR was denied or failed: asking again with the same request will not help."""


def csr_object(request_pem: bytes, *, node: str, duration_s: float) -> dict[str, Any]:
    """The CSR object Go Multus's certificate manager creates for ``node``."""
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": f"multus-{node}-"[:200]},
        "spec": {
            "request": base64.b64encode(request_pem).decode(),
            "signerName": SIGNER_NAME,
            "usages": list(USAGES),
            # The API server refuses less than 10 minutes; Go would fail there, we ask for 10m.
            "expirationSeconds": max(600, int(duration_s)),
        },
    }


def condition(csr: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (csr.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def request_certificate(
    client: lightkube.Client,
    request_pem: bytes,
    *,
    node: str,
    duration_s: float,
    timeout: float,
    poll: float = 1.0,
) -> bytes:
    """Create the CSR and wait up to ``timeout`` s for its signed certificate (PEM), looking
    after 0.1 s, then at doubling intervals up to ``poll`` s.

    ``CsrDenied`` when it is denied or failed; ``TryAgainLaterError`` when nothing was
    issued in time or the API is unreachable; other API failures as ``CniError``.
    """
    server = client.config.cluster.server
    body = csr_object(request_pem, node=node, duration_s=duration_s)
    try:
        created = dict(client.create(RawCsr(**body)))
    except API_ERRORS as e:
        raise map_api_error(e, server=server, action="create certificate signing request") from e
    name = str(created["metadata"]["name"])
    log.info("perNodeCertificate: certificate signing request %s created", name)
    deadline = time.monotonic() + timeout
    wait = min(0.1, poll)  # most signers answer within milliseconds: look soon, then slower
    while True:
        csr = _get(client, name, server)
        if csr is not None:
            issued = _issued(csr, name)
            if issued:
                return issued
        if time.monotonic() >= deadline:
            raise TryAgainLaterError(
                f"perNodeCertificate: no certificate issued for {name} within {timeout:.0f} s "
                "(is the CSR approver running?)"
            )
        time.sleep(wait)
        wait = min(wait * 2, poll)


def _get(client: lightkube.Client, name: str, server: str) -> dict[str, Any] | None:
    try:
        return dict(client.get(RawCsr, name))
    except API_ERRORS as e:
        if is_transient(e) or http_status(e) == 404:
            return None
        raise map_api_error(
            e, server=server, action=f"get certificate signing request {name}"
        ) from e


def _issued(csr: dict[str, Any], name: str) -> bytes:
    for bad in ("Denied", "Failed"):
        cond = condition(csr, bad)
        if cond is not None and cond.get("status", "True") == "True":
            why = cond.get("message") or cond.get("reason") or bad
            raise CsrDenied(
                f"perNodeCertificate: certificate signing request {name} {bad.lower()}: {why}"
            )
    cert = (csr.get("status") or {}).get("certificate") or ""
    return base64.b64decode(cert) if cert else b""


#: What the per-node identity needs beyond ``REQUIRED_API_ACCESS``: its own CSRs (renewal with
#: the current certificate). deploy/rbac-pernode.yaml grants both to the group system:multus.
PER_NODE_API_ACCESS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("certificates.k8s.io", "certificatesigningrequests", "create"),
        ("certificates.k8s.io", "certificatesigningrequests", "get"),
    }
)
