"""``pymultus webhook``: build the webhook from its options and serve until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import msgspec

from pymultus.cni.errors import InvalidConfigError
from pymultus.config.daemon import parse_daemon_conf
from pymultus.config.multus import MultusConf, parse_multus_conf
from pymultus.k8s.client import KubeApi, load_client
from pymultus.webhook.app import Webhook, WebhookMetrics
from pymultus.webhook.nads import RememberFound
from pymultus.webhook.server import DEFAULT_PORT, POLL_INTERVAL, WebhookServer
from pymultus.webhook.tls import ReloadingTls

log = logging.getLogger(__name__)

#: Seconds for one NAD GET: the API server waits 5 s (timeoutSeconds) for the whole review.
NAD_LOOKUP_TIMEOUT = 2.0
#: Placeholders for the keys a request config must have but the webhook's rules never read.
_REQUEST_KEYS = {"name": "pymultus-webhook", "clusterNetwork": "placeholder"}


@dataclass(frozen=True)
class Options:
    cert_file: str
    key_file: str
    port: int = DEFAULT_PORT
    bind_address: str = "0.0.0.0"
    config: str | None = None
    kubeconfig: str | None = None


def rules_conf(path: str | None) -> MultusConf:
    """The Multus keys of the daemon config at ``path`` (``namespaceIsolation``,
    ``globalNamespaces``, ``multusNamespace``), read as ADD reads them after the overlay;
    Go's defaults without a file."""
    obj: dict[str, object] = {}
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise InvalidConfigError(
                f"cannot read the daemon config {path}: {err.strerror}", field="config", path=path
            ) from err
        obj = dict(parse_daemon_conf(data).raw_map)
    for key, placeholder in _REQUEST_KEYS.items():
        obj.setdefault(key, placeholder)
    return parse_multus_conf(msgspec.json.encode(obj))


def build(options: Options) -> WebhookServer:
    """The server, bound and ready to ``serve_forever``; config errors raise ``CniError``."""
    client = load_client(options.kubeconfig, timeout=NAD_LOOKUP_TIMEOUT)
    if client is None:
        log.warning("no kubeconfig and not in a cluster: NAD existence is not checked")
    webhook = Webhook(
        rules_conf(options.config),
        RememberFound(KubeApi(client)) if client is not None else None,
        WebhookMetrics(),
    )
    tls = ReloadingTls(options.cert_file, options.key_file)
    return WebhookServer((options.bind_address, options.port), webhook, tls)


def serve(server: WebhookServer) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and return."""

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.stop, name="webhook-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("pymultus webhook listening on %s port %d", server.server_address[0], server.port)
    server.serve_forever(POLL_INTERVAL)
