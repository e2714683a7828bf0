"""The ``pymultus`` command: parsing and printing only; the logic lives in the layers below."""

from __future__ import annotations

import sys

import typer

from pymultus import __version__
from pymultus.cli import admin, cert_approver, cni_cmd, demo, generate, validate, webhook

app = typer.Typer(
    help="pymultus: Multus, the Kubernetes multi-network CNI plugin, in Python.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(cni_cmd.app, name="cni")
app.command("demo", help="Attach networks to throw-away namespaces and show them (make demo).")(
    demo.demo
)
app.command("validate")(validate.validate)
app.command()(admin.install)
app.command()(admin.uninstall)
app.command()(admin.status)
app.command()(admin.daemon)
app.command("generate-config")(generate.generate_config)
app.command("cert-approver")(cert_approver.cert_approver)
app.add_typer(admin.cache_app, name="cache")
app.command("webhook")(webhook.webhook)
app.command("webhook-certs")(webhook.webhook_certs)


@app.command()
def version() -> None:
    """Print the pymultus version."""
    typer.echo(f"pymultus {__version__} (python {sys.version.split()[0]})")


def main() -> None:
    app()
