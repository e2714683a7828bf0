"""The admission webhook's latency: 1,000 reviews of a pod with 8 networks (issue #13).

``pymultus webhook`` runs as its own process (as in a cluster) with a kubeconfig for the
stand-in API server (its own process too, holding the 8 NADs, so each review also looks them
up). The harness plays the API server's webhook client: one kept-alive TLS connection, one
review after another, each timed from the request written to the answer read. Needs no root.

Alone: ``python bench/webhook.py [--reviews N] [--networks N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apiproc import ApiProcess  # noqa: E402
from bench.stats import Summary  # noqa: E402
from pymultus.webhook.pki import make_ca, make_serving  # noqa: E402

REVIEWS = 1000
NETWORKS = 8
MAX_P99_MS = 10.0
NAMESPACE = "bench"
_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class WebhookResult:
    reviews: int
    networks: int
    latency: Summary  # ms
    allowed: int


def review(uid: int, networks: int) -> bytes:
    selections = [
        {"name": f"net-{i}", "interface": f"net{i + 1}", "ips": [f"198.18.{i}.7/24"]}
        for i in range(networks)
    ]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{uid}",
            "namespace": NAMESPACE,
            "annotations": {"k8s.v1.cni.cncf.io/networks": json.dumps(selections)},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
    }
    request = {
        "uid": f"00000000-0000-0000-0000-{uid:012d}",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": NAMESPACE,
        "name": f"pod-{uid}",
        "operation": "CREATE",
        "object": pod,
    }
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(body).encode()


def _nad(i: int) -> dict[str, object]:
    config = {"cniVersion": "1.0.0", "type": "bridge", "ipam": {"type": "host-local"}}
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"namespace": NAMESPACE, "name": f"net-{i}"},
        "spec": {"config": json.dumps(config)},
    }


@contextlib.contextmanager
def running_webhook(work: Path, networks: int) -> Iterator[tuple[int, ssl.SSLContext]]:
    """The webhook process (port, client TLS context), with the API process and its NADs."""
    api = ApiProcess()
    api.start(work / "kubeconfig")
    ca = make_ca("bench-ca")
    pair = make_serving(ca, ["127.0.0.1"])
    (work / "tls.crt").write_bytes(pair.cert_pem)
    (work / "tls.key").write_bytes(pair.key_pem)
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("pymultus")),
            "webhook",
            f"--tls-cert-file={work / 'tls.crt'}",
            f"--tls-private-key-file={work / 'tls.key'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--kubeconfig={work / 'kubeconfig'}",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        for i in range(networks):
            api.put_object(_nad(i))
        context = ssl.create_default_context(cadata=ca.cert_pem.decode())
        _wait_ready(port, context, proc)
        yield port, context
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        api.stop()


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, context: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pymultus webhook exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        time.sleep(0.05)
    raise RuntimeError("pymultus webhook did not become ready")


def measure(reviews: int = REVIEWS, networks: int = NETWORKS) -> WebhookResult:
    with (
        tempfile.TemporaryDirectory(prefix="pymultus-bench-webhook-") as tmp,
        running_webhook(Path(tmp), networks) as (port, context),
    ):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        try:
            times, allowed = _reviews(conn, reviews, networks)
        finally:
            conn.close()
    return WebhookResult(reviews, networks, Summary.of(times), allowed)


def _reviews(
    conn: http.client.HTTPSConnection, reviews: int, networks: int
) -> tuple[list[float], int]:
    """Latencies (ms) of ``reviews`` reviews after 20 warm-up ones, and how many were
    allowed without a warning."""
    times, allowed = [], 0
    for uid in range(-20, reviews):
        body = review(abs(uid), networks)
        started = time.perf_counter()
        conn.request("POST", "/validate", body, {"Content-Type": "application/json"})
        answer = conn.getresponse().read()
        elapsed = (time.perf_counter() - started) * 1000
        if uid >= 0:
            times.append(elapsed)
            response = json.loads(answer)["response"]
            allowed += response["allowed"] and not response.get("warnings")
    return times, allowed


def describe(result: WebhookResult) -> str:
    s = result.latency
    return (
        f"{result.reviews} reviews of a pod with {result.networks} networks: median "
        f"{s.median:.2f} ms, p90 {s.p90:.2f} ms, p99 {s.p99:.2f} ms, max {s.high:.2f} ms; "
        f"{result.allowed} allowed without warnings"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=REVIEWS)
    parser.add_argument("--networks", type=int, default=NETWORKS)
    args = parser.parse_args(argv)
    result = measure(args.reviews, args.networks)
    ok = result.latency.p99 < MAX_P99_MS and result.allowed == result.reviews
    print(f"{'pass' if ok else 'FAIL'}  webhook: {describe(result)} (p99 < {MAX_P99_MS:g} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
