"""The daemon's credentials with ``perNodeCertificate`` enabled (behaviour row 61).

The daemon then needs nothing else: no ``--kubeconfig``, no service-account token. Start-up
waits for the node's certificate (reused from ``certDir`` when still valid); every request
goes through the kubeconfig in ``certDir`` that names the current pair; a rotation swaps the
live client (requests in flight finish on the old one); a 401 asks for a rotation at once.
Watches rebuild their client from the same kubeconfig on their own 401.
"""

from __future__ import annotations

import logging
import os

from pymultus.cni.errors import CniError
from pymultus.config.daemon import DaemonConf
from pymultus.k8s.certmanager import CertManager, CertSettings
from pymultus.k8s.certs import CertPair
from pymultus.k8s.client import KubeApi, load_client

log = logging.getLogger(__name__)

NODE_NAME_ENV = "MULTUS_NODE_NAME"


def per_node_certificates(conf: DaemonConf, kubeconfig: str | None) -> CertManager | None:
    """The started-up certificate manager when ``perNodeCertificate.enabled``, else None.

    Blocks until a certificate is there; ``CniError`` (the daemon exits 1) when there is
    none: no node name, no bootstrap kubeconfig, the CSR denied or never signed.
    """
    pnc = conf.per_node_certificate
    if pnc is None or not pnc.enabled:
        return None
    if kubeconfig:
        log.warning("perNodeCertificate is enabled: --kubeconfig %s is not used", kubeconfig)
    manager = CertManager(
        CertSettings(
            node=os.environ.get(NODE_NAME_ENV, ""),
            bootstrap_kubeconfig=pnc.bootstrap_kubeconfig,
            cert_dir=pnc.cert_dir,
            duration_s=pnc.cert_duration_s,
        )
    )
    manager.ensure()
    return manager


def follow_rotations(manager: CertManager, api: KubeApi) -> None:
    """Keep ``api`` on the newest certificate, and rotate when the API refuses it (401)."""

    def swap(pair: CertPair) -> None:
        client = load_client(manager.kubeconfig_path)
        if client is None:
            raise CniError(f"no client for {manager.kubeconfig_path}")
        api.use_client(client)
        log.info("API client now uses the certificate valid until %.0f", pair.not_after)

    manager.on_rotate.append(swap)
    api.on_unauthorized = manager.request_rotation
