"""Node administration commands: install, uninstall, status, cache gc, daemon."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pymultus.cni.errors import CniError
from pymultus.config.daemon import DEFAULT_SOCKET_DIR
from pymultus.config.multus import DEFAULT_BIN_DIR, DEFAULT_CNI_DIR
from pymultus.core import inventory
from pymultus.core.record import hotplug_state_path
from pymultus.k8s.files import DEFAULT_STATE_DIR

console = Console()


class PluginType(StrEnum):
    thick = "thick"
    thin = "thin"


def install(
    type_: Annotated[PluginType, typer.Option("--type", "-t", help="thick (shim) or thin")],
    dest: Annotated[str, typer.Option("--dest", "-d", help="CNI bin dir")] = "/host/opt/cni/bin",
    interpreter: Annotated[
        str | None,
        typer.Option(help="absolute path of the host's python3 (>= 3.8 for the shim)"),
    ] = None,
) -> None:
    """Copy the shim (thick) or the thin plugin launcher into a CNI bin dir, atomically."""
    from pymultus.plugin.install import install_thin  # noqa: PLC0415
    from pymultus.shim.install import install_passthru, install_shim  # noqa: PLC0415

    installer = install_shim if type_ is PluginType.thick else install_thin
    try:
        paths = [
            installer(dest, interpreter=interpreter),
            install_passthru(dest, interpreter=None if type_ is PluginType.thin else interpreter),
        ]
    except (OSError, CniError) as exc:
        console.print(f"[red]cannot install the {type_.value} plugin: {exc}[/]")
        raise typer.Exit(1) from None
    console.print("installed " + ", ".join(paths))


def uninstall(
    cni_conf_dir: Annotated[str, typer.Option(help="where 00-multus.conf is")] = "/etc/cni/net.d",
    bin_dir: Annotated[str, typer.Option(help="CNI bin dir holding the shim")] = DEFAULT_BIN_DIR,
) -> None:
    """Remove 00-multus.conf and the installed plugins (with their compiled caches): the only
    time pymultus deletes its config."""
    from pymultus.shim.install import cache_files  # noqa: PLC0415

    paths = [os.path.join(cni_conf_dir, "00-multus.conf")]
    for name in ("multus-shim", "multus", "passthru"):
        plugin = os.path.join(bin_dir, name)
        paths += [plugin, *cache_files(plugin)]
    for path in paths:
        try:
            os.unlink(path)
            console.print(f"removed {path}")
        except FileNotFoundError:
            console.print(f"{path} was not there")


def status(
    pod: Annotated[
        str | None, typer.Argument(help="only this pod (namespace/name or name)")
    ] = None,
    cni_dir: Annotated[str, typer.Option(help="Multus cniDir")] = DEFAULT_CNI_DIR,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    hotplug: Annotated[
        bool, typer.Option("--hotplug", help="only the daemon's hot-plug state per pod")
    ] = False,
    socket_dir: Annotated[
        str, typer.Option(help="the daemon's socketDir (its hot-plug state is there)")
    ] = DEFAULT_SOCKET_DIR,
) -> None:
    """What is attached on this node: pod, interface, network, IPs, MAC, default; and, when
    the daemon hot-plugs, per pod what it attached and what is pending or failing."""
    if output not in ("table", "json"):
        raise typer.BadParameter(f"{output!r}: use table or json", param_hint="'--output'")
    if hotplug:
        _hotplug_status(socket_dir, pod, output)
        return
    rows: list[dict[str, Any]] = []
    for box in inventory.sandboxes(cni_dir):
        if pod and pod not in (box.pod, box.pod.split("/")[-1]):
            continue
        master = box.networks[0] if box.networks else ""
        for a in box.attachments:
            rows.append(
                {
                    "pod": a.pod,
                    "containerID": a.container_id,
                    "interface": a.ifname,
                    "network": a.network,
                    "ips": list(a.ips),
                    "mac": a.mac,
                    "default": a.network == master.split("/")[-1] and a.ifname == "eth0",
                }
            )
    if output == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    if pod and not rows:
        Console(stderr=True).print(f"no attachment of pod {pod} in {cni_dir}")
        raise typer.Exit(1)
    if output == "json":
        return
    table = Table(title=f"attachments on this node ({cni_dir})")
    for col in ("pod", "interface", "network", "IPs", "MAC", "default"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["pod"]),
            str(r["interface"]),
            str(r["network"]),
            ", ".join(r["ips"]),
            str(r["mac"]),
            "yes" if r["default"] else "",
        )
    console.print(table)
    if os.path.exists(hotplug_state_path(socket_dir)):
        _hotplug_status(socket_dir, pod, output)


def _hotplug_status(socket_dir: str, pod: str | None, output: str) -> None:
    """The hot-plug state the daemon last wrote: attached, pending (with the last error
    and the next retry)."""
    try:
        with open(hotplug_state_path(socket_dir), "rb") as fh:
            state: dict[str, Any] = json.load(fh).get("pods", {})
    except (OSError, ValueError):
        state = {}
    if pod:
        state = {k: v for k, v in state.items() if pod in (k, k.split("/")[-1])}
    if output == "json":
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
        return
    table = Table(title="hot-plug (the daemon's last pass per pod)")
    for col in ("pod", "attached", "pending", "last error", "next retry"):
        table.add_column(col)
    for name, entry in sorted(state.items()):
        pending = entry.get("pending", [])
        table.add_row(
            name,
            ", ".join(entry.get("attached", [])),
            ", ".join(f"{p['network']}@{p['interface']} ({p['failures']}x)" for p in pending),
            "; ".join(p["error"] for p in pending) or entry.get("statusError", ""),
            ", ".join(_clock(p["nextRetry"]) for p in pending),
        )
    console.print(table)


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%H:%M:%S")


cache_app = typer.Typer(help="Multus's delegate cache.", no_args_is_help=True)


@cache_app.command("gc")
def cache_gc(
    cni_dir: Annotated[str, typer.Option(help="Multus cniDir")] = DEFAULT_CNI_DIR,
    bin_dir: Annotated[list[str] | None, typer.Option(help="CNI plugin dirs")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list")] = False,
    status_dir: Annotated[
        str, typer.Option(help="standalone network-status files to drop too")
    ] = DEFAULT_STATE_DIR,
) -> None:
    """DEL and forget sandboxes whose network namespace no longer exists."""
    dirs = bin_dir or [DEFAULT_BIN_DIR, "/usr/lib/cni"]
    stale = inventory.collect_stale(cni_dir, dirs, dry_run=dry_run, status_dir=status_dir)
    for box, error in stale:
        verb = "would remove" if dry_run else "removed"
        note = f" (DEL failed: {error})" if error else ""
        console.print(f"{verb} {box.container_id} {box.pod} {box.netns}{note}")
    if not stale:
        console.print("no stale sandbox")
    if any(error for _, error in stale):
        raise typer.Exit(1)


def daemon(
    config: Annotated[
        str, typer.Option("--config", "-config", help="daemon config file")
    ] = "/etc/cni/net.d/multus.d/daemon-config.json",
    kubeconfig: Annotated[str | None, typer.Option(help="kubeconfig path")] = None,
) -> None:
    """Run multus-daemon (same flags as Go's)."""
    from pymultus.daemon.main import main as daemon_main  # noqa: PLC0415

    daemon_main(["-config", config] + (["--kubeconfig", kubeconfig] if kubeconfig else []))
