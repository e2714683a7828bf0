"""The cert-approver's rules, one by one (Go Multus's, plus "the node must exist")."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pymultus.daemon.certapprover import APPROVE, DENY, IGNORE, LEAVE, decide
from pymultus.k8s.certs import csr_pem, new_key
from pymultus.k8s.csr import csr_object

NODE = "node-a"


def request(cn: str, orgs: list[str]) -> str:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    key = ec.generate_private_key(ec.SECP256R1())
    built = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    pem = built.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return base64.b64encode(pem).decode()


def good_csr(**spec: Any) -> dict[str, Any]:
    """What the daemon sends, as the API server stores it (requester recorded)."""
    csr = csr_object(csr_pem(new_key(), NODE), node=NODE, duration_s=600)
    csr["metadata"]["name"] = "multus-node-a-x"
    csr["spec"]["username"] = f"system:node:{NODE}"
    csr["spec"]["groups"] = ["system:nodes", "system:authenticated"]
    csr["spec"].update(spec)
    return csr


def exists(node: str) -> bool:
    return node == NODE


def test_the_daemons_csr_is_approved() -> None:
    assert decide(good_csr(), exists).action == APPROVE


def test_renewal_by_the_nodes_multus_identity_is_approved() -> None:
    csr = good_csr(
        username="system:multus:node-a", groups=["system:multus", "system:authenticated"]
    )
    assert decide(csr, exists).action == APPROVE


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"signerName": "kubernetes.io/kubelet-serving"}, "not a Multus CSR"),
        ({"request": request("system:node:node-a", ["system:nodes"])}, "not a Multus CSR"),
        ({"request": base64.b64encode(b"junk").decode()}, "not a PEM"),
    ],
)
def test_csrs_that_are_not_multus_ones_are_ignored(spec: dict[str, Any], why: str) -> None:
    decision = decide(good_csr(**spec), exists)
    assert (decision.action, why in decision.reason) == (IGNORE, True)


@pytest.mark.parametrize(
    "usages",
    [
        ["digital signature", "client auth", "server auth"],
        ["client auth"],
        ["digital signature", "key encipherment", "client auth"],
        ["digital signature", "client auth", "client auth"],
    ],
)
def test_wrong_usages_are_denied(usages: list[str]) -> None:
    decision = decide(good_csr(usages=usages), exists)
    assert decision.action == DENY
    assert "usages" in decision.reason


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"request": request("system:multus:node-a", [])}, "organization"),
        ({"request": request("system:multus:node-a", ["system:masters"])}, "organization"),
        (
            {"request": request("system:multus:node-a", ["system:multus", "system:masters"])},
            "organization",
        ),
        ({"request": request("system:multus:", ["system:multus"])}, "names no node"),
        ({"expirationSeconds": None}, "expirationSeconds"),
        ({"expirationSeconds": 365 * 86400 + 1}, "expirationSeconds"),
        ({"username": "system:node:node-b"}, "requested by"),
        ({"username": "system:multus:node-b"}, "requested by"),
        ({"username": "alice"}, "requested by"),
        ({"groups": ["system:nodes", "system:masters"]}, "groups"),
    ],
)
def test_other_wrong_fields_are_left_unapproved(spec: dict[str, Any], why: str) -> None:
    decision = decide(good_csr(**spec), exists)
    assert decision.action == LEAVE
    assert why in decision.reason


def test_a_node_that_does_not_exist_is_left_unapproved() -> None:
    decision = decide(good_csr(), lambda node: False)
    assert (decision.action, decision.reason) == (LEAVE, "node node-a does not exist")


def test_one_year_exactly_is_fine() -> None:
    assert decide(good_csr(expirationSeconds=365 * 86400), exists).action == APPROVE


@pytest.mark.parametrize("cond", ["Approved", "Denied"])
def test_decided_csrs_are_skipped(cond: str) -> None:
    csr = good_csr()
    csr["status"] = {"conditions": [{"type": cond, "status": "True"}]}
    assert decide(csr, exists).action == IGNORE
