"""The part of ``os`` the lean path uses, on ``posix`` alone.

``import os`` costs ~1.3 ms (``_collections_abc``'s ABCs for ``os.environ``, ``posixpath``),
a tenth of what a lean DEL spends in Python. The lean modules import this module as ``os``:
the same names, the same behaviour for what they call (``environ`` is a snapshot, decoded
as ``os.environ`` decodes it; a path ``abspath``/``expanduser`` cannot answer by itself goes
to ``posixpath``).
"""

from __future__ import annotations

import sys
from posix import (
    O_CLOEXEC,
    O_CREAT,
    O_EXCL,
    O_NOFOLLOW,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    POSIX_SPAWN_CLOSE,
    POSIX_SPAWN_DUP2,
    WNOHANG,
    _exit,
    close,
    dup,
    dup2,
    fchmod,
    fork,
    fstat,
    get_inheritable,
    geteuid,
    killpg,
    listdir,
    mkdir,
    open,
    pidfd_open,
    pipe,
    posix_spawn,
    read,
    replace,
    rmdir,
    setsid,
    stat,
    strerror,
    unlink,
    urandom,
    waitpid,
    waitstatus_to_exitcode,
    write,
)
from posix import environ as _environb

__all__ = [
    "O_CLOEXEC",
    "O_CREAT",
    "O_EXCL",
    "O_NOFOLLOW",
    "O_RDONLY",
    "O_RDWR",
    "O_WRONLY",
    "POSIX_SPAWN_CLOSE",
    "POSIX_SPAWN_DUP2",
    "WNOHANG",
    "_exit",
    "close",
    "devnull",
    "dup",
    "dup2",
    "environ",
    "fchmod",
    "fork",
    "fstat",
    "get_inheritable",
    "geteuid",
    "killpg",
    "listdir",
    "makedirs",
    "mkdir",
    "open",
    "path",
    "pidfd_open",
    "pipe",
    "posix_spawn",
    "read",
    "replace",
    "rmdir",
    "setsid",
    "stat",
    "strerror",
    "unlink",
    "urandom",
    "waitpid",
    "waitstatus_to_exitcode",
    "write",
]

TYPE_CHECKING = False
devnull = "/dev/null"
_S_IFMT, _S_IFDIR, _S_IFREG = 0o170000, 0o040000, 0o100000


def _decode(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


_snapshot: dict[str, str] | None = None

if TYPE_CHECKING:
    from collections.abc import Mapping

    #: ``os.environ``: the process's environment as it was at start-up (the lean path never
    #: changes it), or ``os.environ`` itself once something imported ``os`` (tests do, and
    #: change it).
    environ: Mapping[str, str]


def __getattr__(name: str) -> object:
    global _snapshot  # built on first use, once
    if name != "environ":
        raise AttributeError(name)
    real = sys.modules.get("os")
    if real is not None:
        return real.environ
    if _snapshot is None:
        _snapshot = {_decode(k): _decode(v) for k, v in _environb.items()}
    return _snapshot


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``os.makedirs``: the missing parents first."""
    try:
        mkdir(name, mode)
    except FileNotFoundError:
        parent = path.dirname(name.rstrip("/"))
        if not parent or parent == name:
            raise
        makedirs(parent, mode, exist_ok=True)
        mkdir(name, mode)
    except FileExistsError:
        if not exist_ok or not path.isdir(name):
            raise


class path:
    """``os.path`` for the functions the lean path calls."""

    @staticmethod
    def join(a: str, *parts: str) -> str:
        for part in parts:
            if part.startswith("/"):
                a = part
            elif not a or a.endswith("/"):
                a += part
            else:
                a += "/" + part
        return a

    @staticmethod
    def dirname(p: str) -> str:
        head = p[: p.rfind("/") + 1]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head

    @staticmethod
    def basename(p: str) -> str:
        return p[p.rfind("/") + 1 :]

    @staticmethod
    def _mode(p: str) -> int:
        try:
            return stat(p).st_mode & _S_IFMT
        except (OSError, ValueError):
            return -1

    @staticmethod
    def exists(p: str) -> bool:
        return path._mode(p) != -1

    @staticmethod
    def isfile(p: str) -> bool:
        return path._mode(p) == _S_IFREG

    @staticmethod
    def isdir(p: str) -> bool:
        return path._mode(p) == _S_IFDIR

    @staticmethod
    def abspath(p: str) -> str:
        if p.startswith("/") and "/." not in p and "//" not in p:
            return p.rstrip("/") or "/"
        import posixpath  # noqa: PLC0415 - a relative or unnormalised path: rare

        return posixpath.abspath(p)

    @staticmethod
    def expanduser(p: str) -> str:
        if not p.startswith("~"):
            return p
        import posixpath  # noqa: PLC0415 - rare

        return posixpath.expanduser(p)
