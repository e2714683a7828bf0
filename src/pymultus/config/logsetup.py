"""Turning a ``LogSettings`` into Python logging, the way Go Multus logs (row 51).

Shared by the thin plugin and the daemon, and applied once by whoever owns the process, at its
boundary: parsing a config never touches a logger (``config.logging``).

- Line format ``<RFC3339> [<level>] <msg>`` (UTC, ``Z``), with Go's level names.
- Levels ``panic`` < ``error`` < ``verbose`` < ``debug``; a line is written when its level is
  at most the configured one. Default ``panic``: silent except for panics (bugs).
  Python's levels map as CRITICAL = panic, ERROR = error, WARNING and INFO = verbose
  (Go Multus has no warning level; its warnings are verbose lines), DEBUG = debug.
- ``logFile`` rotated by size like lumberjack: ``maxSize`` MB per file (0 = 100), at most
  ``maxBackups`` rotated files (0 = all of them), rotated files older than ``maxAge`` days
  removed (0 = never), and gzipped when ``compress``. Several thin plugin processes may write
  one file at once; as with lumberjack, a rotation can then lose a few lines.
- The HTTP client libraries log every request at INFO; they show only at ``debug``, so a
  ``verbose`` log holds Multus's own lines, as Go's does.
- A log file that cannot be opened is reported on stderr and skipped: logging never fails a
  CNI call.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import logging.handlers
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar

from pymultus.config.logging import DEFAULT_MAX_SIZE_MB, LogLevel, LogOptions, LogSettings

#: Go's levels in Python's terms.
PY_LEVEL = {
    LogLevel.PANIC: logging.CRITICAL,
    LogLevel.ERROR: logging.ERROR,
    LogLevel.VERBOSE: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
}
GO_NAME = {
    logging.CRITICAL: "panic",
    logging.ERROR: "error",
    logging.WARNING: "verbose",
    logging.INFO: "verbose",
    logging.DEBUG: "debug",
}
#: Libraries whose INFO lines are chatter below ``debug`` (one line per API request).
QUIET_LIBRARIES = ("httpx", "httpx2", "httpcore", "httpcore2")
#: lumberjack keeps every rotated file when ``maxBackups`` is 0; the handler needs a number.
UNLIMITED_BACKUPS = 9999
_MB = 1024 * 1024
_DAY_S = 86400.0
_BACKUP = re.compile(r"\.\d+(\.gz)?$")


class GoFormatter(logging.Formatter):
    """``<RFC3339> [<level>] <msg>``; subclasses add to a line through ``suffix``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        level = GO_NAME.get(record.levelno, record.levelname.lower())
        line = f"{stamp} [{level}] {record.getMessage()}"
        extra = self.suffix(record)
        if extra:
            line = f"{line} {extra}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line

    def suffix(self, record: logging.LogRecord) -> str:
        return ""


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


def apply(
    settings: LogSettings,
    *,
    formatter: logging.Formatter | None = None,
    logger: logging.Logger | None = None,
) -> None:
    """Send ``logger`` (default: the root logger) where ``settings`` say, replacing its
    handlers. ``formatter`` defaults to ``GoFormatter``."""
    target = logger if logger is not None else logging.getLogger()
    for handler in list(target.handlers):
        target.removeHandler(handler)
        handler.close()
    level = settings.level if settings.level is not None else LogLevel.PANIC
    target.setLevel(PY_LEVEL[level])
    for name in QUIET_LIBRARIES:
        quiet = level < LogLevel.DEBUG
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    handlers: list[logging.Handler] = []
    if settings.to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    if settings.file:
        try:
            handlers.append(RotatingLog(settings.file, settings.options))
        except OSError as exc:
            print(f"multus logging: cannot open log file {settings.file}: {exc}", file=sys.stderr)
    if not handlers:  # else Python's last-resort handler prints warnings on stderr
        handlers.append(logging.NullHandler())
    fmt = formatter if formatter is not None else GoFormatter()
    for handler in handlers:
        handler.setFormatter(fmt)
        target.addHandler(handler)
    if settings.level_note:
        print(settings.level_note, file=sys.stderr)


# ---------------------------------------------------------------- per-call context fields

#: Fields of the current request, in the order they are written.
FIELDS: tuple[str, ...] = ("command", "containerID", "pod", "network", "plugin")
_context: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("multus_log_context", default=())


@contextlib.contextmanager
def fields(**values: str) -> Iterator[None]:
    """Add ``values`` (empty ones skipped) to every line logged in the body."""
    current = dict(_context.get())
    current.update({k: v for k, v in values.items() if v})
    token = _context.set(tuple((k, current[k]) for k in FIELDS if k in current))
    try:
        yield
    finally:
        _context.reset(token)


def current_fields() -> dict[str, str]:
    return dict(_context.get())


class ContextFormatter(GoFormatter):
    """``<RFC3339> [<level>] <msg> k=v ...``; values with spaces or quotes are quoted."""

    def suffix(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_quote(v)}" for k, v in _context.get())


def _quote(value: str) -> str:
    if value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
