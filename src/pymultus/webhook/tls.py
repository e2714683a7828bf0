"""The serving certificate, re-read when its files change (cert-manager rotation).

Every new connection asks :meth:`ReloadingTls.context`, which compares the files' stat
(inode, size, mtime: a Secret volume update swaps a symlink, a plain rewrite changes the rest)
with the last load. A changed pair is loaded into a new ``SSLContext``; connections already
open keep theirs, new ones get the new certificate. A pair that does not load (the key
already replaced, the certificate not yet) is not an outage: the previous context keeps
serving and the load is tried again when the files change next.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading

from pymultus.cni.errors import InvalidConfigError

log = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int], ...]


class ReloadingTls:
    """A server ``SSLContext`` for ``cert_file`` + ``key_file``, kept current."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._tried: _Stamp | None = None
        self.loads = 0  # successful loads, for tests and logs
        try:
            self._tried = self._stamp()
            self._context = self._load()
        except (OSError, ssl.SSLError) as err:
            raise InvalidConfigError(
                f"cannot load the serving certificate {cert_file} with key {key_file}: {err}",
                field="tls-cert-file",
                path=cert_file,
            ) from err

    def context(self) -> ssl.SSLContext:
        """The context for a new connection, reloaded first when the files changed."""
        try:
            stamp = self._stamp()
        except OSError:
            return self._context  # mid-replacement: a file is briefly missing
        if stamp == self._tried:
            return self._context
        with self._lock:
            if stamp != self._tried:
                self._tried = stamp
                try:
                    self._context = self._load()
                    log.info("serving certificate %s reloaded", self.cert_file)
                except (OSError, ssl.SSLError) as err:
                    log.warning("serving certificate not reloaded, keeping the old one: %s", err)
        return self._context

    def _stamp(self) -> _Stamp:
        stats = (os.stat(self.cert_file), os.stat(self.key_file))
        return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        context.set_alpn_protocols(["http/1.1"])
        self.loads += 1
        return context
