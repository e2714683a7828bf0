"""The size-rotated log file of ``config.logsetup`` (lumberjack's rules; see there).

Its own module because ``logging.handlers``, ``gzip`` and ``shutil`` are a tenth of the thin
plugin's start-up, and most configs log to stderr only.
"""

from __future__ import annotations

import contextlib
import gzip
import logging.handlers
import os
import re
import shutil
import time

from pymultus.config.logging import DEFAULT_MAX_SIZE_MB, LogOptions

#: lumberjack keeps every rotated file when ``maxBackups`` is 0; the handler needs a number.
UNLIMITED_BACKUPS = 9999
_MB = 1024 * 1024
_DAY_S = 86400.0
_BACKUP = re.compile(r"\.\d+(\.gz)?$")


class RotatingLog(logging.handlers.RotatingFileHandler):
    """A size-rotated log file with lumberjack's settings (see the module docstring)."""

    def __init__(self, path: str, options: LogOptions) -> None:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, mode=0o755, exist_ok=True)
        super().__init__(
            path,
            maxBytes=(options.max_size if options.max_size > 0 else DEFAULT_MAX_SIZE_MB) * _MB,
            backupCount=options.max_backups if options.max_backups > 0 else UNLIMITED_BACKUPS,
            encoding="utf-8",
        )
        self.max_age_s = options.max_age * _DAY_S if options.max_age > 0 else 0.0
        if options.compress:
            self.namer = _gz_name
            self.rotator = _gzip_rotate

    def doRollover(self) -> None:
        super().doRollover()
        if self.max_age_s:
            self._drop_older_than(time.time() - self.max_age_s)

    def _drop_older_than(self, cutoff: float) -> None:
        directory, base = os.path.split(self.baseFilename)
        with contextlib.suppress(OSError):
            for name in os.listdir(directory or "."):
                if not (name.startswith(base) and _BACKUP.fullmatch(name[len(base) :])):
                    continue
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    if os.stat(path).st_mtime < cutoff:
                        os.unlink(path)


def _gz_name(name: str) -> str:
    return f"{name}.gz"


def _gzip_rotate(source: str, dest: str) -> None:
    """The rotated file, gzipped under its new name (the plain one removed)."""
    with open(source, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(source)
