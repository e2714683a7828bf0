"""Replacing a file all at once: a reader sees the old bytes or the new ones, never half.

Temporary file in the same directory (a dot name ending in ``.tmp``, which no runtime loads as
a CNI config), mode set before the data is written, then ``rename(2)`` over the target.

``durable=True`` also fsyncs the file and the directory, for files whose loss after a power
cut matters more than a few milliseconds (generated configs, installed binaries). The caches
on the ADD path (Multus's delegate cache, libcni's result cache) are written without it, as Go
Multus and libcni write them: a cache lost in a crash is handled by DEL's fallbacks (the
delegate cache falls back to libcni's, see ``core.delete``), while three fsyncs would cost
about 10 ms on every pod start.
"""

from __future__ import annotations

import contextlib
import os

from pymultus.cni.errors import IOFailure


def _temp_file(directory: str, base: str) -> tuple[int, str]:
    """A new private file ``.<base>.<random>.tmp`` in ``directory``, like ``tempfile.mkstemp``
    (whose import costs a one-shot plugin more than the write)."""
    while True:
        tmp = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue


def write_atomic(path: str, data: bytes, *, mode: int = 0o600, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; ``IOFailure`` naming the path on failure."""
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = _temp_file(directory, os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), mode)
                out.write(data)
                if durable:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if durable:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise IOFailure(f"cannot write {path}: {exc.strerror or exc}", path=path) from exc
