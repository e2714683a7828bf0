"""``pymultus webhook`` and ``pymultus webhook-certs``: parsing and printing only."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from pymultus.cni.errors import CniError

_err = Console(stderr=True)


def webhook(
    *,
    tls_cert_file: Annotated[str, typer.Option(help="serving certificate (PEM), re-read later")],
    tls_private_key_file: Annotated[str, typer.Option(help="its private key (PEM)")],
    port: Annotated[int, typer.Option(help="HTTPS port", min=1, max=65535)] = 8443,
    bind_address: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    config: Annotated[
        str | None,
        typer.Option(help="daemon config: namespaceIsolation, globalNamespaces, multusNamespace"),
    ] = None,
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig (else in-cluster, else no NAD lookups)")
    ] = None,
) -> None:
    """Serve the validating admission webhook for NADs and pod network annotations."""
    from pymultus.webhook.main import Options, build, serve  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    options = Options(tls_cert_file, tls_private_key_file, port, bind_address, config, kubeconfig)
    try:
        server = build(options)
    except (CniError, OSError) as exc:
        _err.print(Text(f"pymultus webhook: {exc}", style="red"))
        raise typer.Exit(1) from None
    serve(server)


def webhook_certs(
    *,
    namespace: Annotated[str, typer.Option(help="namespace of the webhook's Service and Secret")],
    service: Annotated[str, typer.Option(help="the webhook's Service")],
    secret: Annotated[str, typer.Option(help="Secret to hold the CA and serving pair")],
    webhook_config: Annotated[str, typer.Option(help="ValidatingWebhookConfiguration to patch")],
    kubeconfig: Annotated[str | None, typer.Option(help="kubeconfig (else in-cluster)")] = None,
) -> None:
    """Create or renew a self-signed CA and serving certificate for the webhook (clusters
    without cert-manager) and put the CA into the webhook configuration's caBundle."""
    import datetime  # noqa: PLC0415

    from pymultus.k8s.client import load_client  # noqa: PLC0415
    from pymultus.webhook.certs import Target, ensure  # noqa: PLC0415

    target = Target(namespace, service, secret, webhook_config)
    try:
        client = load_client(kubeconfig)
        if client is None:
            raise typer.BadParameter(
                "no --kubeconfig and not in a cluster", param_hint="kubeconfig"
            )
        with client:
            outcome = ensure(client, target, datetime.datetime.now(datetime.UTC))
    except CniError as exc:
        _err.print(Text(f"pymultus webhook-certs: {exc}", style="red"))
        raise typer.Exit(1) from None
    done = [
        "new CA" if outcome.new_ca else "",
        "new serving certificate" if outcome.new_serving else "",
        "caBundle updated" if outcome.ca_bundle_patched else "",
    ]
    Console().print(Text(", ".join(d for d in done if d) or "certificates are current"))
