"""``pymultus cert-approver``: run the CSR approver of per-node Multus certificates."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from pymultus.cni.errors import CniError
from pymultus.daemon.certapprover import Approver
from pymultus.k8s.client import load_client

console = Console(stderr=True)


def cert_approver(
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubeconfig file (default: in-cluster credentials)")
    ] = None,
) -> None:
    """Approve the CSRs of the nodes' Multus daemons (perNodeCertificate); runs until killed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")
    try:
        client = load_client(kubeconfig)
    except CniError as exc:
        console.print(str(exc), style="red", markup=False)
        raise typer.Exit(1) from None
    if client is None:
        console.print("no --kubeconfig given and not running in a cluster", style="red")
        raise typer.Exit(1)
    Approver(client).run()
