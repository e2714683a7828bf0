"""``cert-approver`` against the stand-in API server (HTTPS, signing what gets approved): the
daemon's CSR is approved and signed, a wrong one denied or left alone."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID
from tests.support.apiserver import StandInApiServer
from tests.support.apiserver_store import CSRS
from tests.support.thick import wait_for

from pymultus.daemon.certapprover import Approver
from pymultus.k8s.certmanager import CertManager, CertSettings
from pymultus.k8s.certs import csr_pem, new_key
from pymultus.k8s.client import load_client
from pymultus.k8s.csr import csr_object

NODE = "node-a"
PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[StandInApiServer]:
    with StandInApiServer(tls=True) as server:
        assert server.signer is not None
        server.signer.mode = "sign"  # the approver decides; the stand-in signs
        server.put_object({"kind": "Node", "metadata": {"name": NODE}})
        yield server


@pytest.fixture
def approver(api: StandInApiServer, tmp_path: Path) -> Iterator[Approver]:
    client = load_client(str(api.write_kubeconfig(tmp_path / "approver.kubeconfig")))
    assert client is not None
    controller = Approver(client)
    thread = threading.Thread(target=controller.run, daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        controller.stop.set()
        api.stop()  # ends the watch
        thread.join(timeout=10)
        client.close()
        assert not thread.is_alive()


def conditions(api: StandInApiServer, name: str) -> list[str]:
    csr = api.get_object("certificatesigningrequests", "", name) or {}
    return [c["type"] for c in (csr.get("status") or {}).get("conditions") or []]


def post_csr(api: StandInApiServer, node: str, **spec: object) -> str:
    body = csr_object(csr_pem(new_key(), node), node=node, duration_s=600)
    body["spec"].update(spec)
    body["spec"]["username"] = f"system:node:{node}"
    body["spec"]["groups"] = ["system:nodes", "system:authenticated"]
    return str(api.store.create(CSRS, "", body)["metadata"]["name"])


def test_the_daemons_csr_is_approved_and_signed(
    api: StandInApiServer, approver: Approver, tmp_path: Path
) -> None:
    api.token_user = (f"system:node:{NODE}", ["system:nodes", "system:authenticated"])
    bootstrap = api.write_kubeconfig(tmp_path / "bootstrap.kubeconfig")
    manager = CertManager(CertSettings(NODE, str(bootstrap), str(tmp_path / "certs"), 600.0))
    pair = manager.ensure()
    [csr] = [r for r in api.requests("PUT") if r.path.endswith("/approval")]
    assert csr.json()["status"]["conditions"][-1]["reason"] == "AutoApproved"
    assert pair.subject(NameOID.COMMON_NAME) == [f"system:multus:{NODE}"]


def test_wrong_usages_are_denied(api: StandInApiServer, approver: Approver) -> None:
    name = post_csr(api, NODE, usages=["digital signature", "client auth", "server auth"])
    wait_for(lambda: conditions(api, name) == ["Denied"])


def test_a_csr_for_a_missing_node_is_left_unapproved_with_a_log_line(
    api: StandInApiServer, approver: Approver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pymultus.daemon.certapprover")
    name = post_csr(api, "node-z")
    wait_for(lambda: "node node-z does not exist" in caplog.text)
    good = post_csr(api, NODE)
    wait_for(lambda: conditions(api, good) == ["Approved"])
    assert conditions(api, name) == []


def test_the_cli_command_approves(api: StandInApiServer, tmp_path: Path) -> None:
    kubeconfig = api.write_kubeconfig(tmp_path / "approver.kubeconfig")
    proc = subprocess.Popen(
        [PYMULTUS, "cert-approver", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        name = post_csr(api, NODE)
        wait_for(lambda: conditions(api, name) == ["Approved"], timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_the_cli_command_without_credentials_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    done = subprocess.run(
        [PYMULTUS, "cert-approver"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "not running in a cluster" in done.stderr
    assert "Traceback" not in done.stderr
