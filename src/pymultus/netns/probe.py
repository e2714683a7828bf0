"""A one-packet ICMP echo from inside a network namespace (no ``ping`` binary needed)."""

from __future__ import annotations

import os
import select
import socket
import struct
import time

from pymultus.netns.enter import in_netns

_ECHO_REQUEST, _ECHO_REPLY = 8, 0


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(netns: str, address: str, *, timeout: float = 2.0) -> float | None:
    """Send one IPv4 echo request from ``netns`` to ``address``; the round-trip time in ms,
    or None when no reply came within ``timeout``. Needs root (a raw socket)."""
    ident = os.getpid() & 0xFFFF
    payload = b"pymultus-demo"
    header = struct.pack("!BBHHH", _ECHO_REQUEST, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", _ECHO_REQUEST, 0, _checksum(header + payload), ident, 1)
    with in_netns(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    with sock:
        sent = time.monotonic()
        sock.sendto(packet + payload, (address, 0))
        deadline = sent + timeout
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            data, (source, _) = sock.recvfrom(1024)
            icmp = data[(data[0] & 0x0F) * 4 :]
            kind, _, _, rid, _ = struct.unpack("!BBHHH", icmp[:8])
            if kind == _ECHO_REPLY and rid == ident and source == address:
                return (time.monotonic() - sent) * 1000
    return None
