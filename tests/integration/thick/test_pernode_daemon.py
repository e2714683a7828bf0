"""The thick daemon with ``perNodeCertificate`` (issue #16), against the stand-in API server
serving HTTPS and playing approver and signer: the daemon asks for its certificate, uses it
for every request, rotates it under load without a failed CNI call, and reuses it after a
restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.support.apiserver import StandInApiServer
from tests.support.multus import PodId
from tests.support.netns import make_pair
from tests.support.thick import ThickCluster, wait_for

from pymultus.k8s.certs import CertStore

NS = "default"
NODE_USER = ("system:node:pm-node-a", ["system:nodes", "system:authenticated"])
MULTUS_USER = "system:multus:pm-node-a"


@pytest.fixture
def pernode(tmp_path: Path) -> Iterator[ThickCluster]:
    """A thick world whose daemon config enables perNodeCertificate; bootstrap credentials
    are the stand-in's token, which authenticates as the node (as a kubelet.conf would)."""
    with make_pair() as pair:
        api = StandInApiServer(tls=True)
        api.token_user = NODE_USER
        with pair.in_host():
            api.start()
        world: ThickCluster | None = None
        try:
            world = ThickCluster(pair, tmp_path, api)
            conf = world.daemon_config()
            conf["perNodeCertificate"] = {
                "enabled": True,
                "bootstrapKubeconfig": str(world.kubeconfig),
                "certDir": str(tmp_path / "certs"),
                "certDuration": "10m",
            }
            world.daemon_config_path.write_text(json.dumps(conf))
            yield world
        finally:
            if world is not None:
                world.cleanup()
            api.__exit__()


def current_valid(tmp_path: Path) -> bool:
    pair = CertStore(str(tmp_path / "certs")).load_current()
    return pair is not None and pair.valid_at(time.time())


def csr_posts(api: StandInApiServer) -> list[str]:
    return [r.user for r in api.requests("POST", "/certificatesigningrequests")]


def test_first_start_gets_a_certificate_and_uses_it_for_everything(
    pernode: ThickCluster,
) -> None:
    pod = pernode.put_pod(NS, "web")
    pernode.start_daemon()
    assert csr_posts(pernode.api) == [NODE_USER[0]]
    pernode.shim("ADD", pod).check_ok()
    assert pernode.status_annotation(pod) is not None
    pernode.shim("DEL", pod).check_ok()
    # After the CSR, the bootstrap identity is never used again.
    after = pernode.api.requests()
    first_csr = next(i for i, r in enumerate(after) if "certificatesigningrequests" in r.path)
    later = [r for r in after[first_csr:] if "certificatesigningrequests" not in r.path]
    assert later
    assert {r.user for r in later} == {MULTUS_USER}
    assert any(r.method == "PATCH" and r.path.endswith("/status") for r in later)


def test_restart_with_a_valid_certificate_sends_no_new_csr(pernode: ThickCluster) -> None:
    pernode.start_daemon()
    assert len(csr_posts(pernode.api)) == 1
    pernode.restart_daemon()
    assert len(csr_posts(pernode.api)) == 1
    pod = pernode.put_pod(NS, "web")
    pernode.shim("ADD", pod).check_ok()
    pernode.shim("DEL", pod).check_ok()


def test_rotation_under_load_fails_no_cni_call(pernode: ThickCluster) -> None:
    signer = pernode.api.signer
    assert signer is not None
    signer.max_duration = 6.0  # --cluster-signing-duration: rotate every 4.2-5.4 s
    pernode.start_daemon()
    pods = [(pernode.put_pod(NS, f"p{i}"), pernode.new_netns()) for i in range(4)]
    deadline = time.monotonic() + 13.0

    def churn(pod_netns: tuple[PodId, str]) -> int:
        pod, netns = pod_netns
        calls = 0
        while time.monotonic() < deadline:
            pernode.shim("ADD", pod, netns=netns).check_ok()
            pernode.shim("DEL", pod, netns=netns).check_ok()
            calls += 2
        return calls

    with ThreadPoolExecutor(len(pods)) as pool:
        calls = sum(pool.map(churn, pods))
    assert calls > 40
    posts = csr_posts(pernode.api)
    assert len(posts) >= 3, pernode.tail()
    # Renewals were sent with the current certificate, and no request was refused.
    assert posts[1:] == [MULTUS_USER] * (len(posts) - 1)
    assert all(r.user for r in pernode.api.requests())


def test_expired_certificate_on_disk_is_replaced(pernode: ThickCluster, tmp_path: Path) -> None:
    ca = pernode.api.ca
    assert ca is not None
    hour_ago = time.time() - 3600
    cert, key = ca.client_pair(MULTUS_USER, ["system:multus"], lifetime=600, not_before=hour_ago)
    CertStore(str(tmp_path / "certs")).save(cert, key, hour_ago)
    pernode.start_daemon()
    assert csr_posts(pernode.api) == [NODE_USER[0]]  # the expired one cannot ask
    assert current_valid(tmp_path)
    pod = pernode.put_pod(NS, "web")
    pernode.shim("ADD", pod).check_ok()
    pernode.shim("DEL", pod).check_ok()


def test_bootstrap_kubeconfig_missing_exits_with_a_clear_error(pernode: ThickCluster) -> None:
    os.unlink(pernode.kubeconfig)
    with pytest.raises(AssertionError, match="exited 1") as err:
        pernode.start_daemon()
    assert "perNodeCertificate.bootstrapKubeconfig" in str(err.value)


def test_signer_refusing_exits_with_a_clear_error(pernode: ThickCluster) -> None:
    signer = pernode.api.signer
    assert signer is not None
    signer.mode = "deny"
    with pytest.raises(AssertionError, match="exited 1") as err:
        pernode.start_daemon()
    assert "denied" in str(err.value)


def test_a_refused_certificate_is_replaced_at_once(pernode: ThickCluster, tmp_path: Path) -> None:
    """The API server stops accepting the certificate (a CA rotation, a revocation): the call
    that met the 401 fails and is rolled back, the daemon asks for a new certificate through
    the bootstrap credentials, and the next call works."""
    ca = pernode.api.ca
    assert ca is not None
    pod = pernode.put_pod(NS, "web")
    pernode.start_daemon()
    ca.revoke((tmp_path / "certs" / "multus-client-current.pem").read_bytes())
    failed = pernode.shim("ADD", pod)
    assert failed.rc != 0 and b"rejected the credentials" in failed.stdout
    wait_for(lambda: len(csr_posts(pernode.api)) == 2, 20.0, pernode.tail)
    assert csr_posts(pernode.api)[-1] == NODE_USER[0]
    wait_for(lambda: pernode.shim("ADD", pod).rc == 0, 20.0, pernode.tail)
    pernode.shim("DEL", pod).check_ok()
