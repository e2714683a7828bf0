"""``pymultus demo``: the README's main job, on a bare Linux host, as root.

It makes a throw-away "host" and "pod" network namespace (the machine's own network is never
touched), attaches a chained network (bridge + host-local + tuning) to the pod through
``pymultus.cni``, prints what was attached, tears it down, and proves nothing was left.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from pymultus.cni import netconf
from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.convert import encode_result
from pymultus.cni.errors import CniError
from pymultus.netns import manage
from pymultus.netns.enter import in_netns

PLUGIN_DIR = "/usr/lib/cni"
console = Console()


def _conflist(suffix: str, data_dir: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "demo-net",
        "plugins": [
            {
                "type": "bridge",
                "bridge": f"pmbr{suffix}",
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "subnet": "198.18.10.0/24",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": data_dir,
                },
            },
            {"type": "tuning", "mtu": 1400, "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"}},
        ],
    }


def _step(msg: str) -> None:
    console.print(f"[bold cyan]>>[/] {msg}")


def _show_pod(pod_ns: str) -> None:
    table = Table(title=f"interfaces in {pod_ns}")
    for col in ("interface", "state", "mtu", "mac", "addresses"):
        table.add_column(col)
    for link in manage.ip_json(pod_ns, "addr", "show"):
        addrs = ", ".join(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []))
        table.add_row(
            link["ifname"],
            link.get("operstate", ""),
            str(link.get("mtu", "")),
            link.get("address", ""),
            addrs,
        )
    console.print(table)
    routes = manage.ip_json(pod_ns, "route", "show")
    for r in routes:
        console.print(f"   route {r.get('dst')} via {r.get('gateway', '-')} dev {r.get('dev')}")


def _leftovers(names: list[str], work: Path) -> list[str]:
    left = [f"netns {n}" for n in names if manage.exists(n)]
    results = work / "cache" / "results"
    if results.exists():
        left += [f"cache file {p.name}" for p in results.iterdir()]
    allocs = work / "ipam" / "demo-net"
    if allocs.exists():
        left += [f"host-local allocation {p.name}" for p in allocs.iterdir() if p.name[0].isdigit()]
    return left


def demo() -> None:
    """Attach a chained network to a fresh namespace, show it, and tear it all down."""
    if os.geteuid() != 0:
        console.print("[red]the demo needs root (network namespaces)[/]")
        raise typer.Exit(2)
    suffix = secrets.token_hex(3)
    host_ns, pod_ns = f"pmdemo-host-{suffix}", f"pmdemo-pod-{suffix}"
    work = Path(tempfile.mkdtemp(prefix="pymultus-demo-"))
    started = time.monotonic()
    try:
        _step(f"creating namespaces {host_ns} (host side) and {pod_ns} (the pod)")
        manage.create(host_ns)
        pod_path = manage.create(pod_ns)
        raw = json.dumps(_conflist(suffix, str(work / "ipam")), indent=2).encode()
        net = netconf.conflist_from_bytes(raw)
        cni = CNIConfig([PLUGIN_DIR], cache_dir=str(work / "cache"))
        rt = RuntimeConf(container_id=f"demo-{suffix}", netns=pod_path, ifname="eth0")
        _step("ADD demo-net (bridge + host-local + tuning) through pymultus.cni")
        with in_netns(host_ns):
            result = cni.add_network_list(net, rt)
        console.print(encode_result(result, indent=True).decode())
        _show_pod(pod_ns)
        _step("DEL demo-net")
        with in_netns(host_ns):
            cni.del_network_list(net, rt)
    except CniError as err:
        console.print(f"[red]CNI error {err.error_code}: {err}[/]")
        raise typer.Exit(1) from None
    finally:
        manage.delete(pod_ns)
        manage.delete(host_ns)
        left = _leftovers([host_ns, pod_ns], work)
        shutil.rmtree(work, ignore_errors=True)
    if left:
        console.print(f"[red]left behind: {', '.join(left)}[/]")
        raise typer.Exit(1)
    console.print(
        f"[green]done in {time.monotonic() - started:.1f}s: no namespace, link, cache file or "
        "allocation left behind[/]"
    )
