"""``pymultus webhook-certs`` against the stand-in API server: creates the CA and serving pair,
patches the caBundle, changes nothing when run again, renews before expiry, and what it writes
is served and trusted over real TLS."""

from __future__ import annotations

import base64
import datetime
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightkube
import pytest
from tests.support.apiserver import StandInApiServer
from tests.unit.deploy.test_rbac_matches_code import SRC, scan_sources
from typer.testing import CliRunner

from pymultus.cli.main import app
from pymultus.cni.errors import InvalidConfigError
from pymultus.k8s.client import load_client
from pymultus.webhook.app import Webhook
from pymultus.webhook.certs import Outcome, Target, ensure
from pymultus.webhook.main import rules_conf
from pymultus.webhook.pki import dns_names
from pymultus.webhook.server import WebhookServer, start_in_thread
from pymultus.webhook.tls import ReloadingTls

TARGET = Target("kube-system", "pymultus-webhook", "pymultus-webhook-tls", "pymultus-webhook")
NOW = datetime.datetime.now(datetime.UTC)


def hook(name: str, service: str) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"service": {"namespace": "kube-system", "name": service}},
    }


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer() as server:
        server.put_object(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "pymultus-webhook"},
                "webhooks": [
                    hook("pods.webhook.pymultus.io", "pymultus-webhook"),
                    hook("nads.webhook.pymultus.io", "pymultus-webhook"),
                    hook("other.example.com", "someone-else"),
                ],
            }
        )
        yield server


@pytest.fixture
def client(api: StandInApiServer, tmp_path: Path) -> Iterator[lightkube.Client]:
    made = load_client(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    assert made is not None
    with made:
        yield made


def secret_data(api: StandInApiServer) -> dict[str, bytes]:
    secret = api.get_object("secrets", "kube-system", "pymultus-webhook-tls")
    assert secret is not None
    assert secret["type"] == "kubernetes.io/tls"
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def bundles(api: StandInApiServer) -> list[str | None]:
    config = api.get_object("validatingwebhookconfigurations", "", "pymultus-webhook")
    assert config is not None
    return [w["clientConfig"].get("caBundle") for w in config["webhooks"]]


def writes(api: StandInApiServer) -> int:
    return len(api.requests("POST")) + len(api.requests("PUT"))


def test_first_run_creates_everything(api: StandInApiServer, client: lightkube.Client) -> None:
    assert ensure(client, TARGET, NOW) == Outcome(True, True, True)
    data = secret_data(api)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt", "ca.key"}
    assert sorted(dns_names(data["tls.crt"])) == sorted(TARGET.names)
    ours = base64.b64encode(data["ca.crt"]).decode()
    assert bundles(api) == [ours, ours, None]


def test_second_run_writes_nothing(api: StandInApiServer, client: lightkube.Client) -> None:
    ensure(client, TARGET, NOW)
    before, data = writes(api), secret_data(api)
    assert ensure(client, TARGET, NOW + datetime.timedelta(days=300)) == Outcome(
        False, False, False
    )
    assert writes(api) == before
    assert secret_data(api) == data


def test_serving_certificate_renewed_under_30_days_same_ca(
    api: StandInApiServer, client: lightkube.Client
) -> None:
    ensure(client, TARGET, NOW)
    first = secret_data(api)
    assert ensure(client, TARGET, NOW + datetime.timedelta(days=340)) == Outcome(False, True, False)
    second = secret_data(api)
    assert second["ca.crt"] == first["ca.crt"]
    assert second["tls.crt"] != first["tls.crt"]


def test_new_ca_keeps_the_old_one_in_the_bundle(
    api: StandInApiServer, client: lightkube.Client
) -> None:
    ensure(client, TARGET, NOW)
    old_ca = secret_data(api)["ca.crt"]
    later = NOW + datetime.timedelta(days=3640)  # 10 days left on the CA
    assert ensure(client, TARGET, later) == Outcome(True, True, True)
    new_ca = secret_data(api)["ca.crt"]
    (bundle, *_rest) = bundles(api)
    assert bundle is not None
    assert base64.b64decode(bundle) == new_ca + old_ca


def test_missing_webhook_configuration_is_named(
    api: StandInApiServer, client: lightkube.Client
) -> None:
    api.delete_object("validatingwebhookconfigurations", "", "pymultus-webhook")
    with pytest.raises(InvalidConfigError) as caught:
        ensure(client, TARGET, NOW)
    assert caught.value.field == "webhook-config"


def test_the_written_pair_is_served_and_trusted_by_the_bundle(
    api: StandInApiServer, client: lightkube.Client, tmp_path: Path
) -> None:
    ensure(client, TARGET, NOW)
    data = secret_data(api)
    (tmp_path / "tls.crt").write_bytes(data["tls.crt"])
    (tmp_path / "tls.key").write_bytes(data["tls.key"])
    tls = ReloadingTls(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))
    server = WebhookServer(("127.0.0.1", 0), Webhook(rules_conf(None)), tls)
    thread = start_in_thread(server)
    try:
        (bundle, *_rest) = bundles(api)
        assert bundle is not None
        context = ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=TARGET.names[0]) as conn,
        ):
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert conn.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
        thread.join(timeout=10)


def test_cli_reports_what_it_did(api: StandInApiServer, tmp_path: Path) -> None:
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    args = ["webhook-certs", "--namespace", "kube-system", "--service", "pymultus-webhook"]
    args += ["--secret", "pymultus-webhook-tls", "--webhook-config", "pymultus-webhook"]
    args += ["--kubeconfig", kubeconfig]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "new CA" in first.output and "caBundle updated" in first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "certificates are current" in again.output
    api.delete_object("validatingwebhookconfigurations", "", "pymultus-webhook")
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 1 and "does not exist" in " ".join(missing.output.split())
    assert "Traceback" not in missing.output


def test_its_api_calls_are_the_documented_ones() -> None:
    path = SRC / "pymultus" / "webhook" / "certs.py"
    scan = scan_sources({"pymultus.webhook.certs": path.read_text()})
    assert not scan.untraced
    assert scan.triples == {
        ("", "secrets", "get"),
        ("", "secrets", "create"),
        ("", "secrets", "update"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "get"),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations", "update"),
    }
