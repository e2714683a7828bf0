"""The ``pymultus`` command: parsing and printing only; the logic lives in the layers below."""

from __future__ import annotations

import os
import sys

import typer

from pymultus import __version__
from pymultus.cli import cni_cmd, demo

app = typer.Typer(
    help="pymultus: Multus, the Kubernetes multi-network CNI plugin, in Python.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(cni_cmd.app, name="cni")
app.command("demo", help="Attach networks to throw-away namespaces and show them (make demo).")(
    demo.demo
)


@app.command()
def version() -> None:
    """Print the pymultus version."""
    typer.echo(f"pymultus {__version__} (python {sys.version.split()[0]}, pid {os.getpid()})")


def main() -> None:
    app()
