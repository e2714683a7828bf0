"""``pymultus cert-approver``: approve the CSRs of the nodes' Multus daemons, and only those.

Go Multus's ``cert-approver`` rules, checked in this order, plus one of ours (the node must
exist). A CSR that is not a Multus one (another signer, another CN) is not ours: it is left
alone without a word. For a Multus CSR:

====================================================  =========================================
rule                                                  when broken
====================================================  =========================================
the request parses, CN ``system:multus:<node>``       left alone (not ours)
signer ``kubernetes.io/kube-apiserver-client``        left alone (not ours)
O exactly ``system:multus``                           left unapproved, logged
usages exactly ``digital signature``, ``client auth`` **denied** (as Go)
``expirationSeconds`` set and at most one year        left unapproved, logged
requested by ``system:node:<node>`` or                left unapproved, logged
``system:multus:<node>`` (the CN's node), with no
group but ``system:nodes``/``system:multus``/
``system:authenticated``
the node exists (beyond Go)                           left unapproved, logged
====================================================  =========================================

CSRs already approved, denied or issued are skipped. The controller lists, then watches, and
lists again after any failure (2 s later).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightkube
from cryptography import x509
from cryptography.x509.oid import NameOID

from pymultus.cni.errors import CniError
from pymultus.k8s.certs import CERT_NAME_PREFIX, SIGNER_NAME, USAGES
from pymultus.k8s.client import API_ERRORS, http_status, map_api_error
from pymultus.k8s.csr import RawCsr, RawCsrApproval, RawNode, condition

log = logging.getLogger(__name__)

MAX_EXPIRATION_S = 365 * 24 * 3600
ALLOWED_GROUPS = frozenset({"system:nodes", CERT_NAME_PREFIX, "system:authenticated"})
RETRY_INTERVAL = 2.0

APPROVE, DENY, IGNORE, LEAVE = "approve", "deny", "ignore", "leave"
#: The approver's API calls; deploy/cert-approver-pernode.yaml grants these, plus ``approve``
#: on the signer ``kubernetes.io/kube-apiserver-client`` (the API server asks for it).
APPROVER_API_ACCESS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("certificates.k8s.io", "certificatesigningrequests", "list"),
        ("certificates.k8s.io", "certificatesigningrequests", "watch"),
        ("certificates.k8s.io", "certificatesigningrequests/approval", "update"),
        ("", "nodes", "get"),
    }
)


@dataclass(frozen=True)
class Decision:
    action: str  # APPROVE, DENY, IGNORE (not ours, silent), LEAVE (ours, unapproved, logged)
    reason: str


def decide(csr: dict[str, Any], node_exists: Callable[[str], bool]) -> Decision:
    """What to do with one CSR, by Go's rules (see the module docstring)."""
    status = csr.get("status") or {}
    if status.get("certificate") or condition(csr, "Approved") or condition(csr, "Denied"):
        return Decision(IGNORE, "already decided")
    spec = csr.get("spec") or {}
    subject = _subject(spec.get("request") or "")
    if subject is None:
        return Decision(IGNORE, "the request is not a PEM certificate request")
    cn, orgs = subject
    prefix = f"{CERT_NAME_PREFIX}:"
    if not cn.startswith(prefix) or spec.get("signerName") != SIGNER_NAME:
        return Decision(IGNORE, "not a Multus CSR")
    node = cn[len(prefix) :]
    return _check_multus(spec, node, orgs, node_exists)


def _check_multus(
    spec: dict[str, Any], node: str, orgs: list[str], node_exists: Callable[[str], bool]
) -> Decision:
    if not node:
        return Decision(LEAVE, f"the common name names no node ({CERT_NAME_PREFIX}:)")
    if orgs != [CERT_NAME_PREFIX]:
        return Decision(LEAVE, f"organization must be exactly [{CERT_NAME_PREFIX}], got {orgs}")
    usages = spec.get("usages") or []
    if sorted(usages) != sorted(USAGES) or len(usages) != len(USAGES):
        return Decision(DENY, f"usages must be exactly {list(USAGES)}, got {usages}")
    seconds = spec.get("expirationSeconds")
    if not isinstance(seconds, int) or seconds > MAX_EXPIRATION_S:
        return Decision(LEAVE, f"expirationSeconds must be set and at most one year, got {seconds}")
    user = spec.get("username") or ""
    if user not in (f"system:node:{node}", f"{CERT_NAME_PREFIX}:{node}"):
        return Decision(LEAVE, f"requested by {user!r}, not by node {node}'s own identity")
    extra = sorted(set(spec.get("groups") or []) - ALLOWED_GROUPS)
    if extra:
        return Decision(LEAVE, f"the requester is also in groups {extra}")
    if not node_exists(node):
        return Decision(LEAVE, f"node {node} does not exist")
    return Decision(APPROVE, f"Multus certificate of node {node}")


def _subject(request_b64: str) -> tuple[str, list[str]] | None:
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(request_b64))
    except ValueError:
        return None
    cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", [str(o.value) for o in orgs])


class Approver:
    """The controller: ``handle`` one CSR; ``run`` lists and watches until ``stop``."""

    def __init__(self, client: lightkube.Client) -> None:
        self.client = client
        self.server: str = client.config.cluster.server
        self.stop = threading.Event()

    def node_exists(self, node: str) -> bool:
        try:
            self.client.get(RawNode, node)
        except API_ERRORS as e:
            if http_status(e) == 404:
                return False
            raise map_api_error(e, server=self.server, action=f"get node {node}") from e
        return True

    def handle(self, csr: dict[str, Any]) -> Decision:
        name = str((csr.get("metadata") or {}).get("name") or "")
        decision = decide(csr, self.node_exists)
        if decision.action in (APPROVE, DENY):
            self._set_condition(csr, decision)
            log.info(
                "CSR %s %s: %s",
                name,
                "approved" if decision.action == APPROVE else "denied",
                decision.reason,
            )
        elif decision.action == LEAVE:
            log.warning("CSR %s left unapproved: %s", name, decision.reason)
        return decision

    def _set_condition(self, csr: dict[str, Any], decision: Decision) -> None:
        approved = decision.action == APPROVE
        cond = {
            "type": "Approved" if approved else "Denied",
            "status": "True",
            "reason": "AutoApproved" if approved else "AutoDenied",
            "message": decision.reason,
        }
        body = dict(csr)
        body["status"] = {**(csr.get("status") or {})}
        body["status"]["conditions"] = [*(body["status"].get("conditions") or []), cond]
        name = str(csr["metadata"]["name"])
        try:
            self.client.replace(RawCsrApproval(**body), name)
        except API_ERRORS as e:
            raise map_api_error(
                e, server=self.server, action=f"update approval of CSR {name}"
            ) from e

    def run(self) -> None:
        """List and watch CSRs until ``stop`` is set; any failure re-lists 2 s later."""
        while not self.stop.is_set():
            try:
                self._list_and_watch()
            except (CniError, *API_ERRORS) as e:
                if self.stop.is_set():
                    return
                log.error("cert-approver: %s; listing again in %.0f s", e, RETRY_INTERVAL)
                self.stop.wait(RETRY_INTERVAL)

    def _list_and_watch(self) -> None:
        listing = self.client.list(RawCsr)
        for csr in listing:
            self.handle(dict(csr))
            if self.stop.is_set():
                return
        version = listing.resourceVersion
        for kind, csr in self.client.watch(RawCsr, resource_version=version):
            if self.stop.is_set():
                return
            if kind in ("ADDED", "MODIFIED"):
                self.handle(dict(csr))
