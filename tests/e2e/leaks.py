"""What a pod may leave behind on the node, and how to sweep it away.

A removed sandbox must leave nothing: no host link but those that outlive pods (loopback, the
macvlan master pair, the bridges), no address on the host but the cluster bridge's gateway, no
``cni-<uuid>`` namespace, no host-local allocation, no pymultus delegate cache or status file,
no go-cni result cache file, no portmap NAT rule, no shim or pause process.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.netns import ip_json

if TYPE_CHECKING:
    from tests.e2e.node import Node

LIBCNI_RESULTS = Path("/var/lib/cni/results")  # go-cni's cache; containerd 1.6 cannot move it


def our_netns(node: Node) -> list[Path]:
    """The pod namespaces OUR containerd made that still exist: every one was handed to
    multus-shim in an ADD (the wrapper logged it), and another containerd on this machine
    makes ``cni-<uuid>`` names too."""
    paths = {Path(netns) for verb, netns in node.shim_calls() if verb == "ADD" and netns}
    return sorted(p for p in paths if p.exists())


def delete_netns_file(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=False)
    path.unlink(missing_ok=True)


def libcni_cache_files(namespace: str) -> list[Path]:
    """go-cni's result cache files of pods in ``namespace`` (their cniArgs name it)."""
    found = []
    with contextlib.suppress(OSError):
        for path in LIBCNI_RESULTS.iterdir():
            with contextlib.suppress(OSError):
                if f'"{namespace}"' in path.read_text(errors="replace"):
                    found.append(path)
    return found


def allocations(node: Node) -> list[Path]:
    """host-local's reservation files (named by address; ``last_reserved_ip.*`` stays)."""
    return [p for p in node.path("ipam").glob("*/*") if p.name[0].isdigit()]


def files_below(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def host_addresses(node: Node) -> set[str]:
    """IPv4 ``link address/prefix`` in the host namespace."""
    return {
        f"{link['ifname']} {a['local']}/{a['prefixlen']}"
        for link in ip_json(node.host, "addr", "show")
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    }


def leftovers(node: Node) -> list[str]:
    """Everything that should not be there between tests, one line each."""
    gateway = f"{node.bridges['cluster']} {node.cluster_gateway}"
    left = [f"host link {n}" for n in sorted(set(node.host_links()) - node.kept_links)]
    left += [
        f"host address {a}" for a in sorted(host_addresses(node) - {"lo 127.0.0.1/8", gateway})
    ]
    left += [f"netns {p}" for p in our_netns(node)]
    left += [f"IP allocation {p}" for p in allocations(node)]
    left += [f"delegate cache {p}" for p in files_below(node.path("cni"))]
    left += [f"status file {p}" for p in files_below(node.path("status"))]
    left += [f"libcni cache {p}" for p in libcni_cache_files(node.namespace)]
    left += [f"nat rule {r}" for r in node.nat_rules() if "CNI-DN-" in r]
    if node.containerd is not None:
        left += [f"process {pid}" for pid in node.containerd.our_processes()]
    return left


def scrub(node: Node) -> None:
    """Remove what ``leftovers`` reports, after a test failed for it, so that the next test
    starts clean and only the guilty one fails."""
    for name in set(node.host_links()) - node.kept_links:
        ip_link_del = ["ip", "-n", node.host, "link", "del", name]
        subprocess.run(ip_link_del, capture_output=True, check=False)
    for path in our_netns(node):
        delete_netns_file(path)
    for path in [
        *allocations(node),
        *files_below(node.path("cni")),
        *files_below(node.path("status")),
        *libcni_cache_files(node.namespace),
    ]:
        path.unlink(missing_ok=True)
