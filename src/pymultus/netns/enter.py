"""Entering a network namespace from one thread.

``setns(2)`` changes the namespace of the calling thread only, and a process forked from that
thread starts in it. So a delegate plugin executed inside ``in_netns(path)`` runs in ``path``,
while the rest of the process stays where it was.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pymultus.cni.errors import InvalidNetnsError

CLONE_NEWNET = 0x40000000
#: libc's symbols as the interpreter already has them loaded (``ctypes.util.find_library`` runs
#: ``ldconfig -p``: ~25 ms of CPU on every thin plugin call).
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_path(name_or_path: str) -> str:
    """``ip netns`` name or a path (``/proc/<pid>/ns/net``, ``/var/run/netns/x``)."""
    return name_or_path if "/" in name_or_path else f"/var/run/netns/{name_or_path}"


@contextmanager
def in_netns(name_or_path: str) -> Iterator[None]:
    """Run the body (and processes it starts) in another network namespace."""
    path = netns_path(name_or_path)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidNetnsError(f"cannot open netns {path}: {exc.strerror}", path=path) from exc
    own = os.open(f"/proc/self/task/{_gettid()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(target)
        except OSError as exc:
            raise InvalidNetnsError(
                f"cannot enter netns {path}: {exc.strerror}", path=path
            ) from exc
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def _gettid() -> int:
    return threading.get_native_id()
