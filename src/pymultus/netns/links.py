"""Interface lookups inside a pod's network namespace.

``socket.if_nametoindex`` opens its socket in the calling thread's namespace, so inside
``in_netns`` it answers for the pod without importing a netlink library (pyroute2 costs ~0.3 s
to import, too much for the thin plugin's start-up).
"""

from __future__ import annotations

import socket

from pymultus.netns.enter import in_netns


def link_exists(netns: str, ifname: str) -> bool:
    """True when ``ifname`` exists in ``netns``."""
    with in_netns(netns):
        try:
            socket.if_nametoindex(ifname)
        except OSError:
            return False
    return True


def link_names(netns: str) -> list[str]:
    """Every interface name in ``netns``."""
    with in_netns(netns):
        return [name for _, name in socket.if_nameindex()]
