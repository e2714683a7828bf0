"""The per-node certificate's life: get one, keep it fresh (``perNodeCertificate``, row 61).

As Go Multus (client-go's certificate manager behind ``PerNodeK8sClient``):

- at start a valid certificate in ``certDir`` is reused (no new CSR); otherwise a new key and
  CSR are made and the start waits for the signed certificate;
- rotation at a random point 70-90 % into the lifetime, and at once after a 401; the old
  certificate keeps serving while the new CSR is pending, and a failed try is retried with
  a growing backoff (1 s doubling up to 5 min);
- the CSR is sent with the current certificate while it is valid (and the API has not
  refused it), else with the bootstrap kubeconfig, which is used for nothing else.

Every request of the daemon goes through ``kubeconfig_path``: a kubeconfig with the bootstrap
kubeconfig's cluster (server, CA) and ``multus-client-current.pem`` as client certificate and
key, so any client (re)built from it uses the newest pair. ``on_rotate`` hooks run after each
new pair, e.g. to rebuild clients that hold the old one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightkube
import yaml

from pymultus.cni.atomic import write_atomic
from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError
from pymultus.k8s.certs import CertPair, CertStore, check_issued, csr_pem, new_key
from pymultus.k8s.client import load_client
from pymultus.k8s.csr import request_certificate

log = logging.getLogger(__name__)

KUBECONFIG_NAME = "multus.kubeconfig"
#: Go polls 2 minutes for the first certificate before giving up.
FIRST_CERT_TIMEOUT = 120.0
BACKOFF_MIN, BACKOFF_MAX = 1.0, 300.0
FIELD = "perNodeCertificate"


@dataclass(frozen=True)
class CertSettings:
    node: str
    bootstrap_kubeconfig: str
    cert_dir: str
    duration_s: float
    #: How long one CSR may stay pending before it is given up (and retried).
    csr_timeout: float = FIRST_CERT_TIMEOUT
    poll: float = 1.0


def check_settings(node: str, bootstrap: str, cert_dir: str) -> None:
    """The clear errors Go gives (later and vaguer) for a missing piece."""
    if not node:
        raise InvalidConfigError(
            f"{FIELD} is enabled but MULTUS_NODE_NAME is not set: the certificate names the node",
            field="MULTUS_NODE_NAME",
        )
    if not bootstrap:
        raise InvalidConfigError(
            f"{FIELD}.bootstrapKubeconfig must be set", field=f"{FIELD}.bootstrapKubeconfig"
        )
    if not os.path.isfile(bootstrap):
        raise InvalidConfigError(
            f"{FIELD}.bootstrapKubeconfig {bootstrap} does not exist",
            field=f"{FIELD}.bootstrapKubeconfig",
            path=bootstrap,
        )
    if not cert_dir:
        raise InvalidConfigError(f"{FIELD}.certDir must be set", field=f"{FIELD}.certDir")


def per_node_kubeconfig(bootstrap: str, cert_path: str) -> bytes:
    """The bootstrap kubeconfig's current cluster with ``cert_path`` as the user's cert+key."""
    try:
        conf = yaml.safe_load(Path(bootstrap).read_text())
        contexts = {c["name"]: c["context"] for c in conf["contexts"]}
        context = contexts[conf["current-context"]]
        clusters = {c["name"]: dict(c["cluster"]) for c in conf["clusters"]}
        cluster = clusters[context["cluster"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise InvalidConfigError(
            f"{FIELD}.bootstrapKubeconfig {bootstrap} is not a usable kubeconfig: {exc!r}",
            field=f"{FIELD}.bootstrapKubeconfig",
            path=bootstrap,
        ) from exc
    ca = cluster.get("certificate-authority")
    if ca:
        cluster["certificate-authority"] = str(Path(bootstrap).parent.joinpath(ca).resolve())
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster}],
        "users": [
            {
                "name": "default-auth",
                "user": {"client-certificate": cert_path, "client-key": cert_path},
            }
        ],
        "contexts": [
            {
                "name": "default-context",
                "context": {"cluster": "default-cluster", "user": "default-auth"},
            }
        ],
        "current-context": "default-context",
    }
    return json.dumps(doc, indent=2).encode() + b"\n"


@dataclass
class CertManager:
    """Gets and rotates the node's certificate; thread-safe; ``start()`` runs the rotation."""

    settings: CertSettings
    on_rotate: list[Callable[[CertPair], None]] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    current: CertPair | None = None
    csrs_sent: int = 0
    #: The API refused the current certificate (401): ask with the bootstrap credentials.
    rejected: bool = False
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        s = self.settings
        check_settings(s.node, s.bootstrap_kubeconfig, s.cert_dir)
        self.store = CertStore(s.cert_dir)

    @property
    def kubeconfig_path(self) -> str:
        return os.path.join(self.settings.cert_dir, KUBECONFIG_NAME)

    def ensure(self) -> CertPair:
        """A valid certificate, from ``certDir`` or (blocking) from a new CSR; writes the
        kubeconfig that uses it. ``CniError`` when none can be had."""
        data = per_node_kubeconfig(self.settings.bootstrap_kubeconfig, self.store.current_path)
        os.makedirs(self.settings.cert_dir, mode=0o700, exist_ok=True)
        write_atomic(self.kubeconfig_path, data, mode=0o600)
        pair = self.store.load_current()
        if pair is not None and pair.valid_at(self.clock()):
            log.info("perNodeCertificate: reusing the certificate in %s", pair.path)
            self.current = pair
            return pair
        if pair is not None:
            log.info("perNodeCertificate: the certificate in %s has expired", pair.path)
        deadline = time.monotonic() + self.settings.csr_timeout
        while True:  # an API server not reachable yet (node boot): keep trying, as Go polls
            try:
                return self.rotate()
            except TryAgainLaterError as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("perNodeCertificate: %s; trying again", exc)
                time.sleep(self.settings.poll)

    def rotate(self) -> CertPair:
        """Ask for a new certificate now and wait for it; the current one serves meanwhile."""
        key = new_key()
        client = self._csr_client()
        try:
            self.csrs_sent += 1
            cert = request_certificate(
                client,
                csr_pem(key, self.settings.node),
                node=self.settings.node,
                duration_s=self.settings.duration_s,
                timeout=self.settings.csr_timeout,
                poll=self.settings.poll,
            )
        finally:
            client.close()
        check_issued(cert, key, self.settings.node)
        pair = self.store.save(cert, key, self.clock())
        log.info(
            "perNodeCertificate: new certificate, valid until %s",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pair.not_after)),
        )
        for hook in self.on_rotate:
            hook(pair)
        self.current, self.rejected = pair, False
        return pair

    def _csr_client(self) -> lightkube.Client:
        """The current certificate while valid and accepted, else the bootstrap credentials."""
        pair = self.current
        path = self.kubeconfig_path
        if pair is None or self.rejected or not pair.valid_at(self.clock()):
            path = self.settings.bootstrap_kubeconfig
        client = load_client(path)
        if client is None:  # only without a path; ours is always set
            raise CniError(f"{FIELD}: no client for {path}")
        return client

    # --- background rotation --------------------------------------------------------------

    def request_rotation(self) -> None:
        """Rotate as soon as possible, through the bootstrap credentials: the API answered
        401 to the current certificate."""
        self.rejected = True
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="multus-certs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        deadline = self._deadline()
        while not self._stop.is_set():
            woken = self._wake.wait(max(0.0, deadline - self.clock()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if not woken and self.clock() < deadline:
                continue
            try:
                self.rotate()
            except CniError as exc:
                log.error(
                    "perNodeCertificate: rotation failed, retrying in %.0f s: %s", backoff, exc
                )
                deadline = self.clock() + backoff
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_MIN
            deadline = self._deadline()

    def _deadline(self) -> float:
        pair = self.current
        return pair.rotation_deadline(self.rng) if pair is not None else self.clock()
