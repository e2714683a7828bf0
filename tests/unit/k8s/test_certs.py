"""perNodeCertificate's pieces without an API server: CSR fields, certDir store, rotation
deadline, settings checks."""

from __future__ import annotations

import datetime as dt
import os
import random
import stat
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from pymultus.cni.errors import InvalidConfigError
from pymultus.k8s.certmanager import check_settings, per_node_kubeconfig
from pymultus.k8s.certs import (
    CURRENT_NAME,
    CertPair,
    CertStore,
    Key,
    check_issued,
    csr_pem,
    new_key,
)


def self_signed(key: Key, *, start: float, lifetime: float) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:multus:n")])
    begin = dt.datetime.fromtimestamp(start, dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(begin)
        .not_valid_after(begin + dt.timedelta(seconds=lifetime))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_csr_names_the_node_in_group_system_multus() -> None:
    request = x509.load_pem_x509_csr(csr_pem(new_key(), "worker-1"))
    assert request.is_signature_valid
    assert request.subject.rfc4514_string() == "CN=system:multus:worker-1,O=system:multus"


def test_an_issued_certificate_for_another_key_or_name_is_refused() -> None:
    key = new_key()
    good = self_signed(key, start=time.time(), lifetime=600)  # CN system:multus:n
    assert check_issued(good, key, "n").serial_number > 0
    with pytest.raises(InvalidConfigError, match="not the one requested"):
        check_issued(self_signed(new_key(), start=time.time(), lifetime=600), key, "n")
    with pytest.raises(InvalidConfigError, match="not the one requested"):
        check_issued(good, key, "other-node")
    with pytest.raises(InvalidConfigError, match="not PEM"):
        check_issued(b"junk", key, "n")


def test_store_writes_0600_pairs_behind_the_current_symlink(tmp_path: Path) -> None:
    store = CertStore(str(tmp_path / "certs"))
    assert store.load_current() is None
    key = new_key()
    now = time.time()
    pair = store.save(self_signed(key, start=now, lifetime=600), key, now)
    assert os.readlink(tmp_path / "certs" / CURRENT_NAME).startswith("multus-client-2")
    assert stat.S_IMODE(os.stat(pair.path).st_mode) == 0o600
    loaded = store.load_current()
    assert loaded is not None and loaded.cert == pair.cert


def test_store_keeps_the_previous_pair_and_drops_older_ones(tmp_path: Path) -> None:
    store = CertStore(str(tmp_path))
    for i in range(4):
        key = new_key()
        store.save(self_signed(key, start=time.time(), lifetime=600), key, time.time() + i)
    pairs = sorted(p.name for p in tmp_path.iterdir() if p.name != CURRENT_NAME)
    assert len(pairs) == 2
    assert os.readlink(tmp_path / CURRENT_NAME) == pairs[-1]


def test_a_pair_whose_key_does_not_match_is_not_used(tmp_path: Path) -> None:
    store = CertStore(str(tmp_path))
    key = new_key()
    store.save(self_signed(key, start=time.time(), lifetime=600), new_key(), time.time())
    assert store.load_current() is None


@given(seed=st.integers(0, 2**32), lifetime=st.floats(600, 365 * 86400))
def test_rotation_deadline_is_70_to_90_percent_into_the_lifetime(
    seed: int, lifetime: float
) -> None:
    key = new_key()
    start = 1_700_000_000.0
    pem = self_signed(key, start=start, lifetime=lifetime)
    pair = CertPair("x", x509.load_pem_x509_certificate(pem))
    span = pair.not_after - pair.not_before
    deadline = pair.rotation_deadline(random.Random(seed))
    assert pair.not_before + 0.7 * span <= deadline <= pair.not_before + 0.9 * span


def test_deadlines_are_jittered() -> None:
    key = new_key()
    pair = CertPair("x", x509.load_pem_x509_certificate(self_signed(key, start=0, lifetime=600)))
    rng = random.Random(1)
    assert len({round(pair.rotation_deadline(rng)) for _ in range(20)}) > 5


@pytest.mark.parametrize(
    ("node", "bootstrap", "cert_dir", "field"),
    [
        ("", "EXISTS", "/d", "MULTUS_NODE_NAME"),
        ("n", "", "/d", "perNodeCertificate.bootstrapKubeconfig"),
        ("n", "/no/such/file", "/d", "perNodeCertificate.bootstrapKubeconfig"),
        ("n", "EXISTS", "", "perNodeCertificate.certDir"),
    ],
)
def test_missing_settings_name_the_field(
    tmp_path: Path, node: str, bootstrap: str, cert_dir: str, field: str
) -> None:
    existing = tmp_path / "bootstrap"
    existing.write_text("{}")
    with pytest.raises(InvalidConfigError) as err:
        check_settings(node, str(existing) if bootstrap == "EXISTS" else bootstrap, cert_dir)
    assert err.value.field == field


def test_per_node_kubeconfig_keeps_the_bootstraps_cluster(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("x")
    bootstrap = tmp_path / "kubelet.conf"
    bootstrap.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://192.0.2.1:6443', "
        "certificate-authority: ca.crt}}]\n"
        "users: [{name: u, user: {token: secret}}]\n"
    )
    conf = yaml.safe_load(per_node_kubeconfig(str(bootstrap), "/certs/current.pem"))
    assert conf["clusters"][0]["cluster"] == {
        "server": "https://192.0.2.1:6443",
        "certificate-authority": str(tmp_path / "ca.crt"),
    }
    assert conf["users"][0]["user"] == {
        "client-certificate": "/certs/current.pem",
        "client-key": "/certs/current.pem",
    }
    assert "secret" not in per_node_kubeconfig(str(bootstrap), "/c").decode()


def test_unusable_bootstrap_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("just a string")
    with pytest.raises(InvalidConfigError, match="not a usable kubeconfig"):
        per_node_kubeconfig(str(bad), "/c")
