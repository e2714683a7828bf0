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
  CNI call. The file handler is ``config.logfile``, imported only when there is a file (its
  imports are a tenth of the thin plugin's start-up).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar

from pymultus.config.logging import LogLevel, LogSettings

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
        from pymultus.config.logfile import RotatingLog  # noqa: PLC0415 - a log file only

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
