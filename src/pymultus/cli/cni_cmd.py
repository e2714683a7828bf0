"""``pymultus cni``: a cnitool-compatible front end over ``pymultus.cni``."""

from __future__ import annotations

import os
import sys

import typer

from pymultus.cni import tool
from pymultus.cni.convert import encode_result
from pymultus.cni.errors import CniError

app = typer.Typer(
    help="Run a CNI network on a netns, like cnitool (NETCONFPATH, CNI_PATH, CNI_ARGS, "
    "CAP_ARGS, CNI_IFNAME).",
    no_args_is_help=True,
)


def _run(verb: str, netname: str, netns: str) -> None:
    try:
        result = tool.run(verb, netname, netns, tool.ToolEnv.from_environ(os.environ))
    except CniError as err:
        sys.stdout.buffer.write(err.to_json() + b"\n")
        raise typer.Exit(1) from None
    if result is not None:
        sys.stdout.buffer.write(encode_result(result, indent=True) + b"\n")


@app.command()
def add(netname: str, netns: str) -> None:
    """Attach network NETNAME to NETNS and print the result."""
    _run("add", netname, netns)


@app.command()
def check(netname: str, netns: str) -> None:
    """CHECK the attachment of NETNAME in NETNS."""
    _run("check", netname, netns)


@app.command("del")
def delete(netname: str, netns: str) -> None:
    """Detach network NETNAME from NETNS."""
    _run("del", netname, netns)


@app.command()
def status(netname: str, netns: str) -> None:
    """STATUS of network NETNAME (CNI 1.1.0)."""
    _run("status", netname, netns)


@app.command()
def gc(netname: str, netns: str) -> None:
    """GC network NETNAME with no valid attachments (CNI 1.1.0), as cnitool does."""
    _run("gc", netname, netns)
