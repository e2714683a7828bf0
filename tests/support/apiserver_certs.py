"""TLS, client-certificate users and a CSR signer for the stand-in API server.

What kube-apiserver and kube-controller-manager do with ``certificates.k8s.io/v1``
CertificateSigningRequests, as far as a client sees it:

- :class:`TestCa` is the cluster CA: it signs the server's certificate and the clients'.
- A client certificate authenticates as user CN with groups O (checked on every request,
  expiry included: an expired or revoked certificate gets 401, not a TLS failure).
- :class:`Signer` plays the approver and the ``kubernetes.io/kube-apiserver-client``
  signer: ``mode`` ``approve`` (approve, then sign after ``delay`` s), ``deny``, ``pending``
  (leave it alone: no approver), ``sign`` (a real approver decides; what it approves is
  signed). The certificate's lifetime is the CSR's
  ``expirationSeconds`` (``max_duration`` caps it, like ``--cluster-signing-duration``).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.apiserver_store import ApiStatus, Obj

if TYPE_CHECKING:
    from tests.support.apiserver import StandInApiServer

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: the handshake accepts an expired client certificate
#: so the server can answer 401 like kube-apiserver does.
_NO_CHECK_TIME = 0x200000

User = tuple[str, list[str]]


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs or []]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class TestCa:
    """A throw-away cluster CA, with a server certificate for 127.0.0.1."""

    __test__ = False

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("standin-ca"))
            .issuer_name(_name("standin-ca"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.revoked: set[int] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="standin-ca-")
        self.ca_file = Path(self._dir.name, "ca.crt")
        self.ca_file.write_bytes(_pem(self.cert))

    @property
    def ca_pem(self) -> bytes:
        return _pem(self.cert)

    def sign(
        self,
        public_key: Any,
        subject: x509.Name,
        *,
        lifetime: float,
        not_before: float | None = None,
        server: bool = False,
    ) -> x509.Certificate:
        start = dt.datetime.fromtimestamp(
            not_before if not_before is not None else time.time() - 1, dt.UTC
        )
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(seconds=lifetime))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def sign_csr(self, request_pem: bytes, lifetime: float) -> bytes:
        csr = x509.load_pem_x509_csr(request_pem)
        return _pem(self.sign(csr.public_key(), csr.subject, lifetime=lifetime))

    def client_pair(
        self, cn: str, orgs: list[str], *, lifetime: float = 3600.0, not_before: float | None = None
    ) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
        """A client certificate (PEM) and its key, e.g. one already on disk at a restart."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.sign(
            key.public_key(), _name(cn, orgs), lifetime=lifetime, not_before=not_before
        )
        return _pem(cert), key

    def server_context(self) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.sign(key.public_key(), _name("127.0.0.1"), lifetime=30 * 86400.0, server=True)
        pem = Path(self._dir.name, "server.pem")
        pem.write_bytes(
            _pem(cert)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pem)
        ctx.load_verify_locations(cadata=self.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.verify_flags |= ssl.VerifyFlags(_NO_CHECK_TIME)
        return ctx

    def authenticate(self, der: bytes) -> User:
        """The user of a verified client certificate; 401 when expired or revoked."""
        cert = x509.load_der_x509_certificate(der)
        now = dt.datetime.now(dt.UTC)
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            raise ApiStatus(401, "Unauthorized", "Unauthorized")
        if cert.serial_number in self.revoked:
            raise ApiStatus(401, "Unauthorized", "Unauthorized")
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        groups = [str(o.value) for o in orgs]
        return str(cns[0].value) if cns else "", [*groups, "system:authenticated"]

    def revoke(self, cert_pem: bytes) -> None:
        """Make the server refuse this certificate from now on (401)."""
        self.revoked.add(x509.load_pem_x509_certificate(cert_pem).serial_number)

    def close(self) -> None:
        self._dir.cleanup()


class Signer:
    """The approver + signer the stand-in plays for new CSRs; see the module docstring."""

    def __init__(self, api: StandInApiServer, ca: TestCa) -> None:
        self.api, self.ca = api, ca
        self.mode = "approve"
        self.delay = 0.0
        self.max_duration = 365 * 86400.0
        self.not_before_offset = -1.0  # backdate like the real signer (clock skew)
        self._threads: list[threading.Thread] = []

    def created(self, csr: Obj) -> None:
        """Called for each new CSR, after it was stored."""
        if self.mode in ("pending", "sign"):
            return
        name = csr["metadata"]["name"]
        thread = threading.Thread(
            target=self._handle, args=(name, self.mode, self.delay), daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def approval_written(self, name: str) -> None:
        """Called after a PUT of ``/approval``: in ``sign`` mode, sign what was approved."""
        csr = self.api.get_object("certificatesigningrequests", "", name) or {}
        conds = (csr.get("status") or {}).get("conditions") or []
        if self.mode == "sign" and any(c.get("type") == "Approved" for c in conds):
            self.issue(name)

    def _handle(self, name: str, mode: str, delay: float) -> None:
        time.sleep(delay)
        if self.api.stopping.is_set():
            return
        kind = "Denied" if mode == "deny" else "Approved"
        self.set_condition(name, kind, f"standin {kind.lower()} it")
        if kind == "Approved":
            self.issue(name)

    def set_condition(self, name: str, type_: str, message: str) -> None:
        csr = self.api.get_object("certificatesigningrequests", "", name)
        if csr is None:
            return
        cond = {"type": type_, "status": "True", "reason": f"Standin{type_}", "message": message}
        csr.setdefault("status", {}).setdefault("conditions", []).append(cond)
        self.api.put_object(csr)

    def issue(self, name: str) -> None:
        """Sign an approved CSR, as the kube-apiserver-client signer does."""
        csr = self.api.get_object("certificatesigningrequests", "", name)
        if csr is None:
            return
        spec = csr["spec"]
        lifetime = min(float(spec.get("expirationSeconds") or self.max_duration), self.max_duration)
        pem = self.ca.sign_csr(base64.b64decode(spec["request"]), lifetime)
        csr["status"]["certificate"] = base64.b64encode(pem).decode()
        self.api.put_object(csr)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5)


def validate_csr(body: Obj) -> None:
    """What the real server refuses in a new CSR (422)."""
    spec = body.get("spec") or {}
    name = (body.get("metadata") or {}).get("name", "")

    def bad(path: str, why: str) -> ApiStatus:
        msg = f'CertificateSigningRequest.certificates.k8s.io "{name}" is invalid: {path}: {why}'
        return ApiStatus(422, "Invalid", msg)

    try:
        x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
    except ValueError as e:
        raise bad("spec.request", f"Invalid value: []byte{{...}}: {e}") from e
    if not spec.get("signerName"):
        raise bad("spec.signerName", "Required value")
    if not spec.get("usages"):
        raise bad("spec.usages", "Required value")
    seconds = spec.get("expirationSeconds")
    if seconds is not None and int(seconds) < 600:
        raise bad(
            "spec.expirationSeconds",
            f"Invalid value: {seconds}: may not specify a duration less than 600 seconds "
            "(10 minutes)",
        )
