"""A running webhook over real TLS on 127.0.0.1, its CA, and the stand-in API server with the
NADs the golden reviews refer to."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.apiserver import StandInApiServer

from pymultus.k8s.client import KubeApi, load_client
from pymultus.webhook.app import Webhook, WebhookMetrics
from pymultus.webhook.main import rules_conf
from pymultus.webhook.pki import KeyPair, make_ca, make_serving
from pymultus.webhook.server import WebhookServer, start_in_thread
from pymultus.webhook.tls import ReloadingTls

#: The daemon config the golden reviews are judged under.
DAEMON_CONFIG = {"namespaceIsolation": True, "globalNamespaces": "shared,default"}
#: NADs that exist in the stand-in API server.
EXISTING_NADS = [("team-a", "macvlan-a"), ("team-a", "bridge-a"), ("shared", "common")]
SERVING_NAMES = ["localhost", "127.0.0.1"]


@dataclass
class Running:
    server: WebhookServer
    ca: KeyPair
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        return context

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.server.port, context=self.client_context(), timeout=10
        )

    def post(
        self, body: bytes, conn: http.client.HTTPSConnection | None = None
    ) -> tuple[int, bytes]:
        own = conn is None
        conn = conn or self.connect()
        try:
            conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            if own:
                conn.close()

    def get(self, path: str) -> tuple[int, bytes]:
        conn = self.connect()
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def review(self, review: Any) -> Any:
        status, body = self.post(json.dumps(review).encode())
        assert status == 200, body
        return json.loads(body)


def write_pair(pair: KeyPair, cert_file: Path, key_file: Path) -> None:
    key_file.write_bytes(pair.key_pem)
    cert_file.write_bytes(pair.cert_pem)


@pytest.fixture(scope="module")
def ca() -> KeyPair:
    return make_ca("pymultus-webhook-test-ca")


@pytest.fixture(scope="module")
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer() as server:
        for namespace, name in EXISTING_NADS:
            config = json.dumps({"cniVersion": "1.0.0", "type": "bridge"})
            server.put_object(
                {
                    "apiVersion": "k8s.cni.cncf.io/v1",
                    "kind": "NetworkAttachmentDefinition",
                    "metadata": {"namespace": namespace, "name": name},
                    "spec": {"config": config},
                }
            )
        yield server


@pytest.fixture(scope="module")
def webhook(
    tmp_path_factory: pytest.TempPathFactory, ca: KeyPair, api: StandInApiServer
) -> Iterator[Running]:
    """One webhook for a module: the rules it runs have no state between reviews."""
    tmp_path = tmp_path_factory.mktemp("webhook")
    config = tmp_path / "daemon-config.json"
    config.write_text(json.dumps(DAEMON_CONFIG))
    client = load_client(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    assert client is not None
    app = Webhook(rules_conf(str(config)), KubeApi(client), WebhookMetrics())
    try:
        yield from _serve(tmp_path, ca, app)
    finally:
        client.close()


def _serve(tmp_path: Path, ca: KeyPair, app: Webhook) -> Iterator[Running]:
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    write_pair(make_serving(ca, SERVING_NAMES), cert_file, key_file)
    server = WebhookServer(("127.0.0.1", 0), app, ReloadingTls(str(cert_file), str(key_file)))
    thread = start_in_thread(server)
    try:
        yield Running(server, ca, cert_file, key_file)
    finally:
        server.stop()
        thread.join(timeout=10)
