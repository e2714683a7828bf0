"""Does an interface exist in the pod's network namespace (``validateIfName``)?

``setns(2)`` on this thread, ``if_nametoindex`` (``_socket``'s: its socket opens in the
current namespace), back. ``os.setns`` is Python 3.12's; before that libc's, through
``_ctypes``.
"""

from __future__ import annotations

import _socket
import posix

from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import Unhandled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLONE_NEWNET = 0x40000000


_setns_function: Any = getattr(posix, "setns", None)


def _setns(fd: int) -> None:
    global _setns_function  # Python 3.11: libc's, built at the first use
    if _setns_function is None:
        _setns_function = _libc_setns()
    _setns_function(fd, CLONE_NEWNET)


def _libc_setns() -> Any:
    """libc's ``setns`` through ``_ctypes`` itself: the ``ctypes`` package costs ~2 ms of
    imports (``struct``, its type zoo) for one function of two ints."""
    import _ctypes  # noqa: PLC0415 - Python 3.11 only

    class CInt(_ctypes._SimpleCData):  # type: ignore[type-arg]
        _type_ = "i"

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    class Libc:
        _handle = _ctypes.dlopen(None)  # type: ignore[arg-type]  # the program itself

    function = Function(("setns", Libc()))  # type: ignore[arg-type]  # a CDLL by its _handle
    function.argtypes = (CInt, CInt)

    def call(fd: int, nstype: int) -> None:
        if function(fd, nstype) != 0:
            err = _ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return call


def links_exist(netns: str, names: list[str]) -> list[bool]:
    """For each name, whether ``netns`` has a link so named; ``Unhandled`` when the
    namespace cannot be entered (the full path reports it)."""
    path = netns if "/" in netns else f"/var/run/netns/{netns}"
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise Unhandled("a network namespace that cannot be opened") from None
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(target)
        except OSError:
            raise Unhandled("a network namespace that cannot be entered") from None
        try:
            return [_exists(name) for name in names]
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def _exists(name: str) -> bool:
    try:
        _socket.if_nametoindex(name)
    except OSError:
        return False
    return True
