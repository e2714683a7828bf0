"""``pymultus demo``: the README's main job, on a bare Linux host, as root.

Thick mode in standalone: ``multus-daemon`` runs in a throw-away "host" namespace with NADs
and pod selections from local files; the demo plays the container runtime and calls the
installed ``multus-shim`` for two pods (network namespaces). Each pod gets eth0 (a bridge
cluster network), net1 (macvlan) and net2 (a second bridge); the demo shows what was
attached, pings from one pod to the other over net1, hot-plugs net3 into the running pod-a
by editing its pod file (pings the node over it, then unplugs it), deletes everything, and
proves that nothing was left behind.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pymultus.cli.demo_lab import (
    HOTPLUG_GATEWAY,
    HOTPLUG_NAD,
    NAMESPACE,
    PLUGIN_DIR,
    PODS,
    Lab,
)
from pymultus.netns import manage
from pymultus.netns.probe import ping

console = Console()


def _step(msg: str) -> None:
    console.print(f"[bold cyan]>>[/] {msg}")


def _fail(msg: str) -> None:
    console.print(f"[bold red]!! {msg}[/]")


def _show_pod(lab: Lab, pod: str) -> dict[str, str]:
    """Print the pod's interfaces and network-status; returns ifname -> IPv4 address."""
    table = Table(title=f"{NAMESPACE}/{pod} (netns {lab.pod_netns(pod)})")
    for col in ("interface", "state", "mac", "addresses"):
        table.add_column(col)
    v4: dict[str, str] = {}
    for link in manage.ip_json(lab.pod_netns(pod), "addr", "show"):
        infos = link.get("addr_info", [])
        for a in infos:
            if a.get("family") == "inet":
                v4[link["ifname"]] = a["local"]
        addrs = ", ".join(f"{a['local']}/{a['prefixlen']}" for a in infos if a["scope"] != "link")
        table.add_row(link["ifname"], link.get("operstate", ""), link.get("address", ""), addrs)
    console.print(table)
    record = json.loads(lab.path("status", NAMESPACE, f"{pod}.json").read_text())
    status = record["annotations"]["k8s.v1.cni.cncf.io/network-status"]
    console.print(f"[dim]k8s.v1.cni.cncf.io/network-status of {pod}:[/]\n{status}")
    return v4


def _attach(lab: Lab, config: bytes) -> bool:
    for pod in PODS:
        started = time.monotonic()
        out = lab.shim("ADD", pod, config)
        elapsed = (time.monotonic() - started) * 1000
        if out.returncode != 0:
            _fail(f"ADD {pod} failed: {out.stdout.decode()} {out.stderr.decode()}")
            return False
        _step(f"ADD {NAMESPACE}/{pod} through multus-shim: eth0, net1, net2 in {elapsed:.0f} ms")
    return True


def _prove_traffic(a: dict[str, str], b: dict[str, str], lab: Lab) -> bool:
    ok = True
    for src, dst, addrs in ((PODS[0], PODS[1], b), (PODS[1], PODS[0], a)):
        target = addrs.get("net1", "")
        rtt = ping(lab.pod_netns(src), target) if target else None
        if rtt is None:
            _fail(f"no echo reply from {dst} net1 {target or '(no address)'}")
            ok = False
        else:
            _step(f"ping {src} -> {dst} over net1 ({target}): reply in {rtt:.2f} ms")
    return ok


def _detach(lab: Lab, config: bytes) -> bool:
    ok = True
    for pod in PODS:
        out = lab.shim("DEL", pod, config)
        if out.returncode != 0:
            _fail(f"DEL {pod} failed: {out.stdout.decode()}")
            ok = False
        else:
            _step(f"DEL {NAMESPACE}/{pod}")
    return ok


def _run(lab: Lab) -> bool:
    _step(f"writing the cluster network, NADs and pod selections under {lab.work}")
    lab.write_files()
    _step(f"creating namespaces {lab.host} (node) and one per pod")
    lab.make_namespaces()
    _step("starting multus-daemon (thick, standalone) in the node namespace")
    generated = lab.start_daemon()
    config = Path(generated).read_bytes()
    console.print(f"[dim]generated {generated}:[/] {config.decode()}")
    if not _attach(lab, config):
        return False
    a, b = (_show_pod(lab, pod) for pod in PODS)
    traffic = _prove_traffic(a, b, lab)
    hotplug = _hotplug(lab)
    return _detach(lab, config) and traffic and hotplug


def _hotplugged(lab: Lab, pod: str) -> tuple[bool, bool]:
    """(``net3`` is in the pod with an IPv4 address, the pod's network-status lists it)."""
    found = manage.ip_json(lab.pod_netns(pod), "-4", "addr", "show")
    link = any(x["ifname"] == "net3" and x.get("addr_info") for x in found)
    status = lab.path("status", NAMESPACE, f"{pod}.json").read_text()
    return link, f"{NAMESPACE}/{HOTPLUG_NAD}" in status


def _wait_links(lab: Lab, pod: str, present: bool, timeout: float = 10.0) -> float | None:
    """Seconds until ``net3`` is set up in the pod and in its network-status (or gone from
    both); None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _hotplugged(lab, pod) == (present, present):
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def _hotplug(lab: Lab) -> bool:
    """Hot-plug net3 into pod-a by editing its pod file, ping over it, unplug it."""
    pod = PODS[0]
    _step(f"hot-plug: adding {HOTPLUG_NAD} to the selection of the running {pod}")
    if not _select(lab, pod, f"macvlan-a, bridge-b, {HOTPLUG_NAD}", present=True):
        return False
    rtt = ping(lab.pod_netns(pod), HOTPLUG_GATEWAY)
    if rtt is None:
        _fail(f"no echo reply from the node's {HOTPLUG_GATEWAY} over net3")
        return False
    _step(f"ping {pod} -> node over net3 ({HOTPLUG_GATEWAY}): reply in {rtt:.2f} ms")
    _step(f"hot-unplug: removing {HOTPLUG_NAD} from the selection of {pod}")
    return _select(lab, pod, "macvlan-a, bridge-b", present=False)


def _select(lab: Lab, pod: str, networks: str, *, present: bool) -> bool:
    """Edit the pod file, wait for net3 to come (``present``) or go, show the pod."""
    lab.select(pod, networks)
    took = _wait_links(lab, pod, present=present)
    if took is None:
        _fail(f"net3 did not {'appear in' if present else 'leave'} {pod}")
        return False
    _step(f"net3 {'appeared in' if present else 'left'} {pod} {took:.1f} s after the edit")
    _show_pod(lab, pod)
    _show_hotplug(lab)
    return True


def _show_hotplug(lab: Lab) -> None:
    """What ``pymultus status --hotplug`` prints."""
    from pymultus.cli.admin import status  # noqa: PLC0415 (the CLI's own command)

    time.sleep(0.2)  # the daemon writes its state right after the pass
    status(pod=None, output="table", hotplug=True, socket_dir=str(lab.path("run")))


def demo() -> None:
    """Two pods with three networks each through multus-daemon and multus-shim."""
    if os.geteuid() != 0:
        _fail("the demo needs root (network namespaces)")
        raise typer.Exit(2)
    if not os.path.isfile(os.path.join(PLUGIN_DIR, "macvlan")):
        _fail(f"no CNI plugins in {PLUGIN_DIR}: apt-get install containernetworking-plugins")
        raise typer.Exit(2)
    started = time.monotonic()
    lab = Lab()
    ok = False
    try:
        ok = _run(lab)
    except Exception as exc:  # the demo's boundary: say what broke, then clean up
        _fail(f"{type(exc).__name__}: {exc}")
        console.print(lab.tail("daemon.log"))
    finally:
        _step("stopping the daemon, deleting the namespaces and files")
        left = lab.destroy()
    if left:
        _fail("left behind: " + ", ".join(left))
        raise typer.Exit(1)
    if not ok:
        raise typer.Exit(1)
    console.print(
        f"[bold green]done in {time.monotonic() - started:.1f} s: nothing was left behind "
        "(no namespace, link, process, cache, status or allocation)[/]"
    )
