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
