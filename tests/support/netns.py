"""Network namespaces for tests: a "host" and a "pod" namespace per test, so the machine's own
network is never touched, and helpers to look inside them with ``ip -j``.

Use the ``netns_pair`` fixture (registered by ``tests/integration/conftest.py``)::

    def test_x(netns_pair):
        with netns_pair.in_host():          # plugins started here run in the host netns
            cni.add_network_list(net, rt)   # bridges, host veths, iptables rules land there
        addrs = ip_json(netns_pair.pod, "addr", "show", "dev", "eth0")

``in_host()`` moves only the calling thread (``setns``); every process it starts (the CNI
plugins) is born in the host namespace, the rest of pytest stays where it was. Deleting the
namespaces at teardown destroys every link, address, route and firewall rule made in them.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pymultus.netns.enter import in_netns

NETNS_DIR = "/var/run/netns"


def unique_name(prefix: str) -> str:
    """``prefix`` plus a random suffix, short enough for a link name (15 bytes)."""
    return f"{prefix}{secrets.token_hex(3)}"


def ip(netns: str | None, *args: str) -> str:
    """Run ``ip [-n NETNS] ARGS``; raises with ip's stderr on failure."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def ip_json(netns: str, *args: str) -> Any:
    """``ip -j ARGS`` inside ``netns``, parsed ([] when ip prints nothing)."""
    out = ip(netns, "-j", *args)
    return json.loads(out) if out.strip() else []


def exec_in(netns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a command inside ``netns`` (``ip netns exec``), output captured, never raising."""
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, check=False
    )


def links(netns: str) -> dict[str, dict[str, Any]]:
    """Every link of ``netns`` with details (``ip -d link``), by name."""
    return {link["ifname"]: link for link in ip_json(netns, "-d", "link", "show")}


def addresses(netns: str, dev: str, family: str = "inet") -> list[str]:
    """``address/prefix`` strings of ``dev`` (global scope; IPv6 link-local left out)."""
    shown = ip_json(netns, "addr", "show", "dev", dev)
    return [
        f"{a['local']}/{a['prefixlen']}"
        for link in shown
        for a in link.get("addr_info", [])
        if a.get("family") == family and a.get("scope") != "link"
    ]


def routes(netns: str, *args: str) -> list[dict[str, Any]]:
    """``ip -j route show ARGS`` inside ``netns``."""
    result: list[dict[str, Any]] = ip_json(netns, "route", "show", *args)
    return result


@dataclass(frozen=True)
class NetnsPair:
    """A test's two namespaces, by ``ip netns`` name."""

    host: str
    pod: str

    @property
    def host_path(self) -> str:
        return f"{NETNS_DIR}/{self.host}"

    @property
    def pod_path(self) -> str:
        return f"{NETNS_DIR}/{self.pod}"

    @contextlib.contextmanager
    def in_host(self) -> Iterator[None]:
        """Run the body with this thread in the host namespace."""
        with in_netns(self.host_path):
            yield

    def add_veth(self, name: str, peer: str) -> None:
        """A veth pair inside the host namespace, both ends up (e.g. a macvlan master)."""
        ip(self.host, "link", "add", name, "type", "veth", "peer", "name", peer)
        ip(self.host, "link", "set", name, "up")
        ip(self.host, "link", "set", peer, "up")


def _delete(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


@contextlib.contextmanager
def make_pair(*, pod_lo_up: bool = True) -> Iterator[NetnsPair]:
    """Create a host/pod namespace pair; both are deleted on exit, whatever happened."""
    pair = NetnsPair(host=unique_name("pmh-"), pod=unique_name("pmp-"))
    try:
        for name in (pair.host, pair.pod):
            ip(None, "netns", "add", name)
        ip(pair.host, "link", "set", "lo", "up")
        if pod_lo_up:
            ip(pair.pod, "link", "set", "lo", "up")
        yield pair
    finally:
        _delete(pair.pod)
        _delete(pair.host)


@pytest.fixture
def netns_pair() -> Iterator[NetnsPair]:
    """A fresh host/pod namespace pair, loopback up in both."""
    with make_pair() as pair:
        yield pair


@pytest.fixture
def bare_netns_pair() -> Iterator[NetnsPair]:
    """A fresh pair whose pod namespace still has its loopback down."""
    with make_pair(pod_lo_up=False) as pair:
        yield pair
