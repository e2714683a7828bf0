"""Per-node client certificates (``perNodeCertificate``, behaviour row 61): key, CSR, store.

What Go Multus asks for through client-go's certificate manager: an ECDSA P-256 key, a CSR
with CN ``system:multus:<node>`` and O ``system:multus``, signer
``kubernetes.io/kube-apiserver-client``, usages ``digital signature`` + ``client auth``.

The store is client-go's ``FileStore`` layout in ``certDir``: ``multus-client-<stamp>.pem``
holds the certificate and then the key (mode 0600), ``multus-client-current.pem`` is a symlink
to the newest one, so a kubeconfig naming the symlink (the thin plugin's) always gets the
current pair. The key is made in memory and written only there, in ``certDir``.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pymultus.cni.atomic import write_atomic
from pymultus.cni.errors import InvalidConfigError, IOFailure

CERT_NAME_PREFIX = "system:multus"
SIGNER_NAME = "kubernetes.io/kube-apiserver-client"
USAGES = ("digital signature", "client auth")
PAIR_PREFIX = "multus-client"
CURRENT_NAME = f"{PAIR_PREFIX}-current.pem"
#: client-go's rotation window: a random point between 70 % and 90 % of the lifetime.
ROTATE_MIN, ROTATE_MAX = 0.7, 0.9

Key = ec.EllipticCurvePrivateKey


def common_name(node: str) -> str:
    """The identity a node's Multus gets: ``system:multus:<node>``."""
    return f"{CERT_NAME_PREFIX}:{node}"


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def csr_pem(key: Key, node: str) -> bytes:
    """The PEM certificate request for ``node``, signed with ``key``."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, CERT_NAME_PREFIX),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name(node)),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def check_issued(cert_pem: bytes, key: Key, node: str) -> x509.Certificate:
    """The signed certificate, if it is one for ``key`` and names ``node``; else
    ``InvalidConfigError`` (a signer that issued something else must not be trusted)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise InvalidConfigError(
            f"perNodeCertificate: the issued certificate is not PEM: {exc}", field="certificate"
        ) from exc
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cert.public_key() != key.public_key() or cns != [common_name(node)]:
        raise InvalidConfigError(
            f"perNodeCertificate: the issued certificate ({cert.subject.rfc4514_string()}) is "
            f"not the one requested for {common_name(node)}",
            field="certificate",
        )
    return cert


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class CertPair:
    """A signed certificate with its key, as stored in ``path``."""

    path: str
    cert: x509.Certificate

    @property
    def not_before(self) -> float:
        return self.cert.not_valid_before_utc.timestamp()

    @property
    def not_after(self) -> float:
        return self.cert.not_valid_after_utc.timestamp()

    def valid_at(self, now: float) -> bool:
        return self.not_before <= now < self.not_after

    def rotation_deadline(self, rng: random.Random) -> float:
        """When to ask for the next one: 70-90 % into the lifetime (client-go's jitter)."""
        lifetime = self.not_after - self.not_before
        return self.not_before + lifetime * rng.uniform(ROTATE_MIN, ROTATE_MAX)

    def subject(self, oid: x509.ObjectIdentifier) -> list[str]:
        return [str(a.value) for a in self.cert.subject.get_attributes_for_oid(oid)]


class CertStore:
    """The pairs in ``certDir``: read the current one, save a new one."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    @property
    def current_path(self) -> str:
        return os.path.join(self.directory, CURRENT_NAME)

    def load_current(self) -> CertPair | None:
        """The current pair, or None when there is none or it cannot be used (unreadable,
        not PEM, or a key that does not belong to the certificate)."""
        try:
            data = Path(self.current_path).read_bytes()
            cert = x509.load_pem_x509_certificate(data)
            key = serialization.load_pem_private_key(data, password=None)
        except (OSError, ValueError, TypeError):
            return None
        if key.public_key() != cert.public_key():
            return None
        return CertPair(self.current_path, cert)

    def save(self, cert_pem: bytes, key: Key, now: float) -> CertPair:
        """Write ``<prefix>-<stamp>.pem`` (certificate, then key; 0600) and point the current
        symlink at it; both steps atomic, so a reader sees the old pair or the new one."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d-%H-%M-%S-%f")
        name = f"{PAIR_PREFIX}-{stamp}.pem"
        path = os.path.join(self.directory, name)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            write_atomic(path, cert_pem.rstrip(b"\n") + b"\n" + key_pem(key), mode=0o600)
            link_tmp = f"{self.current_path}.tmp"
            if os.path.lexists(link_tmp):
                os.unlink(link_tmp)
            os.symlink(name, link_tmp)
            os.replace(link_tmp, self.current_path)
        except OSError as exc:
            raise IOFailure(
                f"perNodeCertificate: cannot store the certificate in {self.directory}: {exc}",
                path=self.directory,
            ) from exc
        self._prune(keep=name)
        return CertPair(self.current_path, cert)

    def _prune(self, keep: str) -> None:
        """Drop older pairs but the one before ``keep`` (connections may still use it)."""
        pairs = sorted(
            n
            for n in os.listdir(self.directory)
            if n.startswith(f"{PAIR_PREFIX}-")
            and n not in (CURRENT_NAME, keep)
            and n.endswith(".pem")
        )
        for old in pairs[:-1]:
            try:
                os.unlink(os.path.join(self.directory, old))
            except OSError:
                continue
