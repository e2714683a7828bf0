"""``pymultus webhook`` as a process: serves over TLS, stops cleanly on SIGTERM, and a bad
option is one red line, never a traceback."""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from pymultus.webhook.pki import KeyPair, make_serving

PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, context: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            conn.request("GET", "/readyz")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the webhook did not become ready")


def test_serves_and_stops_on_sigterm(tmp_path: Path, ca: KeyPair) -> None:
    pair = make_serving(ca, ["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    (tmp_path / "daemon-config.json").write_text('{"namespaceIsolation": true}')
    port = free_port()
    argv = [PYMULTUS, "webhook", "--tls-cert-file", str(tmp_path / "tls.crt")]
    argv += ["--tls-private-key-file", str(tmp_path / "tls.key"), "--port", str(port)]
    argv += ["--bind-address", "127.0.0.1", "--config", str(tmp_path / "daemon-config.json")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_ready(port, ssl.create_default_context(cadata=ca.cert_pem.decode()), proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert b"NAD existence is not checked" in err
    assert b"Traceback" not in err


def test_unreadable_certificate_is_one_line(tmp_path: Path) -> None:
    argv = [PYMULTUS, "webhook", "--tls-cert-file", str(tmp_path / "missing.crt")]
    argv += ["--tls-private-key-file", str(tmp_path / "missing.key"), "--port", str(free_port())]
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    assert done.returncode == 1
    err = " ".join(done.stderr.decode().split())
    assert "cannot load the serving certificate" in err
    assert "Traceback" not in err


def test_bad_daemon_config_is_named(tmp_path: Path, ca: KeyPair) -> None:
    pair = make_serving(ca, ["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    (tmp_path / "daemon-config.json").write_text('{"namespaceIsolation": "yes"}')
    argv = [PYMULTUS, "webhook", "--tls-cert-file", str(tmp_path / "tls.crt")]
    argv += ["--tls-private-key-file", str(tmp_path / "tls.key"), "--port", str(free_port())]
    argv += ["--config", str(tmp_path / "daemon-config.json")]
    done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    assert done.returncode == 1
    err = " ".join(done.stderr.decode().split())
    assert "namespaceIsolation" in err
    assert "Traceback" not in err
