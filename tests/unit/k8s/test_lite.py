"""``k8s.lite``, the thin plugin's standard-library client, beyond what ``test_kube_api`` runs
with both clients: kubeconfig reading and its cache, token rotation, TLS (verification, a
client certificate), HTTP framing, kept-alive connections, and events kept for later.

The TLS material in ``tls/`` is test-only: a CA, a server certificate for 127.0.0.1 and a
client certificate it signed (valid until 2126), and an unrelated CA.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.apiserver import StandInApiServer

from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError
from pymultus.k8s import lite_conf
from pymultus.k8s.lite import LiteApi
from pymultus.k8s.lite_conf import Endpoint, load_endpoint
from pymultus.k8s.lite_http import Connection
from pymultus.k8s.refs import PodRef

TLS = Path(__file__).with_name("tls")
NS = "lite"


def _kubeconfig(server: str, cluster: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


def _write_yaml(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer() as server:
        server.put_object({"kind": "Pod", "metadata": {"namespace": NS, "name": "p"}})
        yield server


def _tls_server(*, client_ca: bool = False) -> StandInApiServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS / "server.crt", TLS / "server.key")
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(TLS / "ca.crt")
    server = StandInApiServer(tls=ctx, token=None if client_ca else "standin-token")
    server.put_object({"kind": "Pod", "metadata": {"namespace": NS, "name": "p"}})
    return server.start()


# --- kubeconfig ---------------------------------------------------------------------------------


def test_yaml_kubeconfig_is_parsed_once_per_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _kubeconfig("https://198.51.100.7:6443", {"certificate-authority": "ca.crt"}, {})
    doc["users"][0]["user"] = {"tokenFile": "token"}
    path = _write_yaml(tmp_path / "kc.yaml", doc)
    (tmp_path / "ca.crt").write_text("x")
    (tmp_path / "token").write_text("t")
    cache = tmp_path / "cache"

    first = load_endpoint(path, cache_dir=str(cache))
    assert first == Endpoint(
        server="https://198.51.100.7:6443",
        ca_file=str(tmp_path / "ca.crt"),
        token_file=str(tmp_path / "token"),
    )
    [cached] = list(cache.iterdir())
    assert cached.name.startswith(".kubeconfig-") and cached.stat().st_mode & 0o777 == 0o600

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed again")

    monkeypatch.setattr(yaml, "load", no_parsing)
    assert load_endpoint(path, cache_dir=str(cache)) == first
    monkeypatch.undo()

    doc["clusters"][0]["cluster"]["server"] = "https://198.51.100.8:6443"
    _write_yaml(tmp_path / "kc.yaml", doc)  # same name, new content: parsed again
    again = load_endpoint(path, cache_dir=str(cache))
    assert again is not None and again.server == "https://198.51.100.8:6443"


def test_a_foreign_or_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    doc = _kubeconfig("https://198.51.100.7:6443", {}, {"token": "t"})
    path = _write_yaml(tmp_path / "kc.yaml", doc)
    cache = tmp_path / "cache"
    load_endpoint(path, cache_dir=str(cache))
    [cached] = list(cache.iterdir())
    cached.write_text("{not json")
    assert load_endpoint(path, cache_dir=str(cache)) == Endpoint(
        server="https://198.51.100.7:6443", token="t"
    )
    os.chmod(cached, 0o666)  # writable by others: never trusted
    cached.write_text(json.dumps({"key": [0], "endpoint": {"server": "http://evil"}}))
    endpoint = load_endpoint(path, cache_dir=str(cache))
    assert endpoint is not None and endpoint.server == "https://198.51.100.7:6443"


def test_inline_data_and_exec_credentials(tmp_path: Path) -> None:
    pem = (TLS / "ca.crt").read_text()
    data = base64.b64encode(pem.encode()).decode()
    doc = _kubeconfig("https://h:6443/prefix/", {"certificate-authority-data": data}, {})
    endpoint = load_endpoint(_write_yaml(tmp_path / "a", doc))
    assert endpoint is not None
    assert (endpoint.ca_data, endpoint.server) == (pem, "https://h:6443/prefix")

    doc["users"][0]["user"] = {"exec": {"command": "aws", "apiVersion": "v1"}}
    assert load_endpoint(_write_yaml(tmp_path / "b", doc)) is None  # lightkube's job


@pytest.mark.parametrize(
    "doc",
    [
        _kubeconfig("ftp://198.51.100.1", {}, {}),
        _kubeconfig("https://198.51.100.1", {"certificate-authority-data": "@@@"}, {}),
    ],
    ids=["not-http", "bad-base64"],
)
def test_what_only_the_lite_reader_checks(tmp_path: Path, doc: dict[str, Any]) -> None:
    """(The cases both readers share are in ``test_kube_api``.)"""
    path = _write_yaml(tmp_path / "kubeconfig", doc)
    with pytest.raises(InvalidConfigError, match="kubeconfig") as err:
        load_endpoint(path)
    assert (err.value.field, err.value.code) == ("kubeconfig", 7)


def test_in_cluster_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LookupError):
        load_endpoint(None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "2001:db8::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr(lite_conf, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    with pytest.raises(InvalidConfigError):
        load_endpoint(None)  # no token and CA files
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("c")
    endpoint = load_endpoint(None)
    assert endpoint is not None and endpoint.server == "https://[2001:db8::1]:443"
    assert Connection(endpoint).host == "2001:db8::1"


# --- requests -----------------------------------------------------------------------------------


def test_token_file_is_read_on_every_call(api: StandInApiServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("standin-token\n")
    lite = LiteApi(Endpoint(server=api.url, token_file=str(token)), timeout=5)
    assert lite.get_pod(PodRef(NS, "p")) is not None
    api.token = "rotated"
    token.write_text("rotated")
    assert lite.get_pod(PodRef(NS, "p")) is not None
    token.write_text("stale")
    with pytest.raises(CniError, match="rejected the credentials"):
        lite.get_pod(PodRef(NS, "p"))
    lite.close()


def test_a_kept_alive_connection_the_server_closed_is_opened_again(api: StandInApiServer) -> None:
    lite = LiteApi(Endpoint(server=api.url, token="standin-token"), timeout=5)
    assert lite.get_pod(PodRef(NS, "p")) is not None
    first = lite.conn._sock
    assert lite.get_pod(PodRef(NS, "p")) is not None
    assert lite.conn._sock is first  # kept alive
    api.restart()  # cuts every open connection
    assert lite.get_pod(PodRef(NS, "p")) is not None
    lite.close()


def test_chunked_replies_are_read() -> None:
    ours, theirs = socket.socketpair()
    body = b'{"kind":"Pod","metadata":{"name":"p"}}'
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    reply += b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n" % (
        10,
        body[:10],
        len(body) - 10,
        body[10:],
    )

    def serve() -> None:
        theirs.recv(65536)
        theirs.sendall(reply)

    thread = threading.Thread(target=serve)
    thread.start()
    conn = Connection(Endpoint(server="http://198.51.100.1"))
    conn._sock, conn._reader = ours, ours.makefile("rb")
    try:
        answer = conn.request("GET", "/api/v1/namespaces/a/pods/p")
    finally:
        thread.join()
        conn.close()
        theirs.close()
    assert (answer.status, answer.body) == (200, body)


def test_names_are_escaped_in_paths(api: StandInApiServer) -> None:
    lite = LiteApi(Endpoint(server=api.url, token="standin-token"), timeout=5)
    assert lite.get_pod(PodRef(NS, "a b/c")) is None
    assert api.request_log[-1].path == f"/api/v1/namespaces/{NS}/pods/a%20b%2Fc"
    lite.close()


# --- TLS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("inline", [False, True])
def test_tls_with_the_kubeconfig_ca(inline: bool) -> None:
    server = _tls_server()
    try:
        ca = (TLS / "ca.crt").read_text()
        endpoint = Endpoint(
            server=server.url,
            ca_data=ca if inline else "",
            ca_file="" if inline else str(TLS / "ca.crt"),
            token="standin-token",
        )
        lite = LiteApi(endpoint, timeout=5)
        assert lite.get_pod(PodRef(NS, "p")) is not None
        lite.close()
    finally:
        server.stop()


def test_tls_verification_failure_is_not_transient() -> None:
    server = _tls_server()
    try:
        lite = LiteApi(Endpoint(server=server.url, ca_file=str(TLS / "other-ca.crt")), timeout=5)
        with pytest.raises(CniError) as err:
            lite.get_pod_with_retry(PodRef(NS, "p"), attempts=3, interval=0)
        assert not isinstance(err.value, TryAgainLaterError)
        assert err.value.code == 999
        assert server.url in err.value.msg and "certificate verify failed" in err.value.msg
        assert server.requests() == []  # never retried, never reached HTTP
        insecure = LiteApi(Endpoint(server=server.url, insecure=True, token="standin-token"))
        assert insecure.get_pod(PodRef(NS, "p")) is not None
        insecure.close()
    finally:
        server.stop()


@pytest.mark.parametrize("inline", [False, True])
def test_tls_client_certificate(inline: bool) -> None:
    server = _tls_server(client_ca=True)
    try:
        cert, key = (TLS / "client.crt"), (TLS / "client.key")
        files = {"cert_file": str(cert), "key_file": str(key)}
        data = {"cert_data": cert.read_text(), "key_data": key.read_text()}
        endpoint = Endpoint(
            server=server.url, ca_file=str(TLS / "ca.crt"), **(data if inline else files)
        )
        lite = LiteApi(endpoint, timeout=5)
        assert lite.get_pod(PodRef(NS, "p")) is not None
        lite.close()
        without = LiteApi(Endpoint(server=server.url, ca_file=str(TLS / "ca.crt")), timeout=5)
        with pytest.raises(CniError):
            without.get_pod(PodRef(NS, "p"))
        without.close()
    finally:
        server.stop()


# --- events -------------------------------------------------------------------------------------


def test_events_wait_for_send_events_and_failures_are_counted(
    api: StandInApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    lite = LiteApi(Endpoint(server=api.url, token="standin-token"), timeout=5)
    ref = PodRef(NS, "p", uid="u-1")
    lite.emit_event(ref, type_="Normal", reason="AddedInterface", message="one")
    lite.emit_event(ref, type_="Normal", reason="AddedInterface", message="two")
    assert lite.events_pending and api.events == []
    api.fail_next(1, 500)
    with caplog.at_level(logging.WARNING):
        assert lite.send_events() == 1
    assert [e["message"] for e in api.events] == ["two"]
    assert "1 of 2 events could not be sent" in caplog.text
    assert not lite.events_pending and lite.events_failed == 1
    lite.close()


# --- RBAC -----------------------------------------------------------------------------------------


def _triple(method: str, path: str) -> tuple[str, str, str]:
    """(apiGroup, resource, verb) of one request of ours, as the API server authorizes it."""
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[parts.index("namespaces") + 2 :]
    resource = "/".join([rest[0], *rest[2:3]])
    verb = {"GET": "get", "PATCH": "patch", "PUT": "update", "POST": "create"}[method]
    return group, resource, verb


def test_every_request_is_one_the_cluster_role_grants(api: StandInApiServer) -> None:
    """``test_rbac_matches_code`` reads lightkube calls from the source; this client builds
    its paths itself, so its requests are checked against the declared access instead."""
    from pymultus.k8s.resources import REQUIRED_API_ACCESS

    uid = api.get_object("pods", NS, "p")["metadata"]["uid"]  # type: ignore[index]
    lite = LiteApi(Endpoint(server=api.url, token="standin-token"), timeout=5, defer_events=False)
    ref = PodRef(NS, "p", uid=uid)
    lite.get_pod(ref)
    lite.get_nad(NS, "n")
    lite.set_pod_annotation_status(ref, "k", "v", expected_uid=uid)
    api.fail_next(1, 403)  # PATCH refused: GET + PUT
    lite.set_pod_annotation_status(ref, "k", "w", expected_uid=uid)
    lite.emit_event(ref, type_="Normal", reason="R", message="m")
    lite.close()

    used = {_triple(r.method, r.path) for r in api.request_log}
    assert used == {
        ("", "pods", "get"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
        ("", "pods/status", "patch"),
        ("", "pods/status", "update"),
        ("", "events", "create"),
    }
    assert used <= {tuple(t) for t in REQUIRED_API_ACCESS}
