"""perNodeCertificate against the stand-in API server playing signer and approver (HTTPS)."""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tests.support.apiserver import StandInApiServer
from tests.support.apiserver_store import CSRS
from tests.support.thick import wait_for

from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError
from pymultus.daemon.credentials import follow_rotations
from pymultus.k8s.certmanager import CertManager, CertSettings
from pymultus.k8s.certs import CertStore
from pymultus.k8s.client import KubeApi, load_client
from pymultus.k8s.csr import CsrDenied
from pymultus.k8s.refs import PodRef

NODE = "node-a"
NODE_USER = ("system:node:node-a", ["system:nodes", "system:authenticated"])


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer(tls=True) as server:
        server.token_user = NODE_USER
        yield server


def settings(api: StandInApiServer, tmp_path: Path, **kw: float) -> CertSettings:
    tmp_path.mkdir(parents=True, exist_ok=True)
    bootstrap = api.write_kubeconfig(tmp_path / "bootstrap.kubeconfig")
    return CertSettings(
        node=NODE,
        bootstrap_kubeconfig=str(bootstrap),
        cert_dir=str(tmp_path / "certs"),
        duration_s=600.0,
        csr_timeout=kw.get("csr_timeout", 10.0),
        poll=0.05,
    )


def csrs(api: StandInApiServer) -> list[dict]:
    items, _ = api.store.select(CSRS, None)
    return items


def test_first_start_requests_a_certificate_with_go_multus_fields(
    api: StandInApiServer, tmp_path: Path
) -> None:
    manager = CertManager(settings(api, tmp_path))
    pair = manager.ensure()

    [csr] = csrs(api)
    spec = csr["spec"]
    assert spec["signerName"] == "kubernetes.io/kube-apiserver-client"
    assert spec["usages"] == ["digital signature", "client auth"]
    assert spec["expirationSeconds"] == 600
    assert spec["username"] == "system:node:node-a"  # sent with the bootstrap credentials
    request = x509.load_pem_x509_csr(base64.b64decode(spec["request"]))
    assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "system:multus:node-a"
    )
    assert request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:multus"
    )
    # The pair is in certDir only, 0600, and the current symlink points at it.
    assert os.path.islink(pair.path)
    target = os.path.realpath(pair.path)
    assert os.path.dirname(target) == str(tmp_path / "certs")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert b"PRIVATE KEY" in Path(target).read_bytes()

    # Every request made with the generated kubeconfig is the node's own identity.
    client = load_client(manager.kubeconfig_path)
    assert client is not None
    api.put_object({"kind": "Pod", "metadata": {"namespace": "ns", "name": "p"}})
    KubeApi(client).get_pod(PodRef("ns", "p"))
    assert api.requests("GET", "/pods/p")[-1].user == "system:multus:node-a"
    client.close()


def test_restart_with_a_valid_certificate_sends_no_csr(
    api: StandInApiServer, tmp_path: Path
) -> None:
    CertManager(settings(api, tmp_path)).ensure()
    api.clear_log()
    again = CertManager(settings(api, tmp_path))
    again.ensure()
    assert again.csrs_sent == 0
    assert api.requests("POST") == []


def test_expired_certificate_on_disk_is_replaced_through_the_bootstrap(
    api: StandInApiServer, tmp_path: Path
) -> None:
    assert api.ca is not None
    cert, key = api.ca.client_pair(
        "system:multus:node-a", ["system:multus"], lifetime=600, not_before=time.time() - 3600
    )
    CertStore(str(tmp_path / "certs")).save(cert, key, time.time() - 3600)
    manager = CertManager(settings(api, tmp_path))
    pair = manager.ensure()
    assert manager.csrs_sent == 1
    assert pair.valid_at(time.time())
    assert [r.user for r in api.requests("POST", "certificatesigningrequests")] == [
        "system:node:node-a"
    ]


def test_renewal_uses_the_current_certificate_not_the_bootstrap(
    api: StandInApiServer, tmp_path: Path
) -> None:
    manager = CertManager(settings(api, tmp_path))
    first = manager.ensure()
    second = manager.rotate()
    assert second.cert.serial_number != first.cert.serial_number
    users = [r.user for r in api.requests("POST", "certificatesigningrequests")]
    assert users == ["system:node:node-a", "system:multus:node-a"]


def test_signer_refusing_is_a_clear_error(api: StandInApiServer, tmp_path: Path) -> None:
    assert api.signer is not None
    api.signer.mode = "deny"
    with pytest.raises(CsrDenied, match="denied"):
        CertManager(settings(api, tmp_path)).ensure()
    assert CertStore(str(tmp_path / "certs")).load_current() is None


def test_signer_slow_waits_and_one_too_slow_times_out(
    api: StandInApiServer, tmp_path: Path
) -> None:
    assert api.signer is not None
    api.signer.delay = 0.5
    assert CertManager(settings(api, tmp_path)).ensure().valid_at(time.time())
    api.signer.mode = "pending"
    manager = CertManager(settings(api, tmp_path / "other", csr_timeout=0.3))
    with pytest.raises(TryAgainLaterError, match="approver"):
        manager.ensure()


def test_api_server_unavailable_at_start_is_waited_for(
    api: StandInApiServer, tmp_path: Path
) -> None:
    api.fail_next(3, 503)
    manager = CertManager(settings(api, tmp_path))
    assert manager.ensure().valid_at(time.time())
    assert manager.csrs_sent == 4


def test_bootstrap_kubeconfig_missing(api: StandInApiServer, tmp_path: Path) -> None:
    s = settings(api, tmp_path)
    os.unlink(s.bootstrap_kubeconfig)
    with pytest.raises(InvalidConfigError, match="bootstrapKubeconfig") as err:
        CertManager(s)
    assert err.value.field == "perNodeCertificate.bootstrapKubeconfig"


def test_node_name_missing(api: StandInApiServer, tmp_path: Path) -> None:
    s = settings(api, tmp_path)
    with pytest.raises(CniError, match="MULTUS_NODE_NAME"):
        CertManager(CertSettings("", s.bootstrap_kubeconfig, s.cert_dir, 600.0))


@pytest.fixture
def running(api: StandInApiServer, tmp_path: Path) -> Iterator[tuple[CertManager, KubeApi]]:
    """A started manager and a KubeApi following its rotations, as the daemon wires them."""
    manager = CertManager(settings(api, tmp_path))
    manager.ensure()
    client = load_client(manager.kubeconfig_path)
    assert client is not None
    kube = KubeApi(client)
    follow_rotations(manager, kube)
    manager.start()
    api.put_object({"kind": "Pod", "metadata": {"namespace": "ns", "name": "p"}})
    try:
        yield manager, kube
    finally:
        manager.stop()
        kube.close()


def test_a_401_rotates_at_once(api: StandInApiServer, running: tuple[CertManager, KubeApi]) -> None:
    manager, kube = running
    assert api.ca is not None and manager.current is not None
    old = manager.current.cert.serial_number
    api.ca.revoke(Path(manager.current.path).read_bytes())
    with pytest.raises(CniError, match="rejected the credentials"):
        kube.get_pod(PodRef("ns", "p"))
    wait_for(lambda: manager.current is not None and manager.current.cert.serial_number != old)
    assert kube.get_pod(PodRef("ns", "p")) is not None
    assert api.requests("GET", "/pods/p")[-1].user == "system:multus:node-a"


def test_old_certificate_serves_while_the_new_one_is_pending(
    api: StandInApiServer, running: tuple[CertManager, KubeApi]
) -> None:
    manager, kube = running
    assert api.signer is not None and manager.current is not None
    old = manager.current.cert.serial_number
    api.signer.mode = "pending"
    manager.request_rotation()
    wait_for(lambda: len(csrs(api)) == 2)
    for _ in range(5):
        assert kube.get_pod(PodRef("ns", "p")) is not None
    assert manager.current.cert.serial_number == old
    pending = csrs(api)[-1]["metadata"]["name"]
    api.signer.set_condition(pending, "Approved", "approved by the test")
    api.signer.issue(pending)
    wait_for(lambda: manager.current is not None and manager.current.cert.serial_number != old)
    assert kube.get_pod(PodRef("ns", "p")) is not None
