"""Adoption (``core.adopt``): where the netns of a sandbox attached without a record is."""

from __future__ import annotations

from pymultus.cni.cache import CacheEntry
from pymultus.core.adopt import netns_of

RESULT = (
    b'{"cniVersion":"0.4.0","interfaces":[{"name":"br0"},'
    b'{"name":"eth0","sandbox":"/var/run/netns/cni-1234"}],"ips":[]}'
)


def entry(netns: str = "", result: bytes = b"") -> CacheEntry:
    return CacheEntry("c1", "eth0", "net", b"{}", netns=netns, result=result)


def test_the_entry_netns_wins() -> None:
    assert netns_of(entry("/var/run/netns/x", RESULT)) == "/var/run/netns/x"


def test_an_older_cache_gives_the_sandbox_of_its_result() -> None:
    assert netns_of(entry(result=RESULT)) == "/var/run/netns/cni-1234"


def test_nothing_to_go_by() -> None:
    assert netns_of(entry()) == ""
    assert netns_of(entry(result=b"not json")) == ""
