"""The webhook's HTTPS side: malformed reviews answered 400 with a message (never a
traceback), v1beta1 refused, health and metrics, and the serving certificate rotated under
traffic without one failed request."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.webhook.conftest import SERVING_NAMES, Running, _serve, write_pair

from pymultus.webhook.app import Webhook, WebhookMetrics
from pymultus.webhook.main import rules_conf
from pymultus.webhook.pki import KeyPair, make_serving
from pymultus.webhook.review import MAX_BODY

GOLDEN = Path(__file__).parent / "golden"


def golden(case: str) -> bytes:
    return (GOLDEN / f"{case}.request.json").read_bytes()


def review_with(request: object, api_version: str = "admission.k8s.io/v1") -> bytes:
    return json.dumps(
        {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}
    ).encode()


GOOD_REQUEST = json.loads(golden("pod-allowed-comma"))["request"]
MALFORMED = {
    "not JSON": (b'{"apiVersion": "admission.k8s.io/v1",', "not valid JSON"),
    "not an object": (b"[1, 2, 3]", "not an AdmissionReview"),
    "deep nesting": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "body: nested too deep"),
    "deep list in a request": (
        review_with({**GOOD_REQUEST, "object": {"x": "DEEP"}}).replace(
            b'"DEEP"', b"[" * 200 + b"]" * 200
        ),
        "body: nested too deep",
    ),
    "no request": (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request"),
    "no uid": (
        review_with({k: v for k, v in GOOD_REQUEST.items() if k != "uid"}),
        "missing required field `uid`",
    ),
    "no kind": (
        review_with({k: v for k, v in GOOD_REQUEST.items() if k != "kind"}),
        "missing required field `kind`",
    ),
    "operation not a string": (
        review_with({**GOOD_REQUEST, "operation": 7}),
        "Expected `str`, got `int` - at `$.operation`",
    ),
    "v1beta1": (
        review_with(GOOD_REQUEST, "admission.k8s.io/v1beta1"),
        "admission.k8s.io/v1beta1 is not supported",
    ),
    "another kind": (
        golden("pod-allowed-comma").replace(b'"AdmissionReview"', b'"TokenReview"'),
        "is not an admission.k8s.io/v1 AdmissionReview",
    ),
}


@pytest.mark.parametrize("body,expected", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_review_is_400_with_a_message(
    webhook: Running, body: bytes, expected: str
) -> None:
    status, answer = webhook.post(body)
    assert status == 400
    text = answer.decode()
    assert expected in text
    assert "Traceback" not in text
    assert text.count("\n") == 1  # one line
    assert webhook.review(json.loads(golden("pod-allowed-comma")))["response"]["allowed"]


def test_ten_megabyte_body_is_400_and_the_server_keeps_serving(webhook: Running) -> None:
    body = b'{"apiVersion": "admission.k8s.io/v1", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    status, answer = webhook.post(body)
    assert status == 400
    assert f"over the limit of {MAX_BODY} bytes" in answer.decode()
    assert webhook.get("/healthz")[0] == 200


def test_keep_alive_connection_serves_many_reviews(webhook: Running) -> None:
    conn = webhook.connect()
    try:
        for case in ("pod-allowed-comma", "pod-denied-ip", "nad-allowed-plugin"):
            status, body = webhook.post(golden(case), conn)
            assert status == 200
            assert json.loads(body)["response"]["uid"] == json.loads(golden(case))["request"]["uid"]
    finally:
        conn.close()


def test_health_paths_and_wrong_method(webhook: Running) -> None:
    assert webhook.get("/healthz") == (200, b"ok\n")
    assert webhook.get("/readyz") == (200, b"ok\n")
    assert webhook.get("/validate")[0] == 405
    assert webhook.get("/nothing")[0] == 404


def test_metrics_count_requests_denials_and_latency(webhook: Running) -> None:
    webhook.post(golden("pod-denied-namespace-isolation"))
    webhook.post(golden("nad-denied-type-path"))
    webhook.post(golden("pod-warned-missing-nad"))
    webhook.post(b"{")
    status, body = webhook.get("/metrics")
    assert status == 200
    text = body.decode()
    assert 'pymultus_webhook_denials_total{reason="namespace_isolation"}' in text
    assert 'pymultus_webhook_denials_total{reason="invalid_nad_config"}' in text
    assert 'verdict="warned"' in text
    assert 'verdict="malformed"' in text
    assert 'pymultus_webhook_review_duration_seconds_count{kind="Pod"}' in text


def test_plain_http_and_garbage_get_no_traceback(webhook: Running) -> None:
    with socket.create_connection(("127.0.0.1", webhook.server.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"Traceback" not in sock.recv(4096)
    assert webhook.get("/healthz")[0] == 200


# ---------------------------------------------------------------- certificate rotation


@pytest.fixture
def bare(tmp_path: Path, ca: KeyPair) -> Iterator[Running]:
    """A webhook without API access (NAD existence not checked)."""
    yield from _serve(tmp_path, ca, Webhook(rules_conf(None), None, WebhookMetrics()))


def _peer_cert(running: Running) -> str:
    context = running.client_context()
    with (
        socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der)


def test_certificate_rotation_mid_traffic_fails_no_request(bare: Running, ca: KeyPair) -> None:
    body = golden("pod-allowed-comma")
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def traffic(keep_alive: bool) -> None:
        conn = bare.connect() if keep_alive else None
        while not stop.is_set():
            try:
                status, answer = bare.post(body, conn)
                if status != 200 or not json.loads(answer)["response"]["allowed"]:
                    failures.append(f"{status} {answer[:200]!r}")
                answered[0] += 1
            except (OSError, ssl.SSLError) as err:
                failures.append(repr(err))
        if conn is not None:
            conn.close()

    before = _peer_cert(bare)
    threads = [threading.Thread(target=traffic, args=(k,)) for k in (False, False, True)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(3):
            time.sleep(0.3)
            pair = make_serving(ca, SERVING_NAMES)
            bare.key_file.write_bytes(pair.key_pem)  # a moment with a mismatched pair
            time.sleep(0.1)
            bare.cert_file.write_bytes(pair.cert_pem)
        time.sleep(0.3)
        write_pair(make_serving(ca, SERVING_NAMES), bare.cert_file, bare.key_file)
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    assert answered[0] > 20
    assert bare.server.tls.loads >= 4  # the first load and at least three rotations
    assert _peer_cert(bare) != before
