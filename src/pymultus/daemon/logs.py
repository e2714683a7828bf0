"""Daemon logging: Go Multus's line format with the request's identity on every line.

A line reads ``<RFC3339> [<level>] <message> containerID=<id> pod=<ns/name> network=<name>``:
Go's ``<time> [<level>] <msg>`` prefix (so existing greps keep working) and ``key=value``
fields for whatever the current request knows. The fields live in context variables set by
the request handler; worker threads run in a copy of the handler's context, so lines written
by the core and by ``cni.invoke`` carry them too, and the delegate executor adds ``network``
and ``plugin`` for the plugin it runs.

``apply`` turns the daemon config's ``LogSettings`` into handlers, once, at start-up (parsing
never touches a logger).
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from contextvars import ContextVar

from pymultus.config.logging import LogLevel, LogSettings

#: Fields of the current request, in the order they are written.
FIELDS: tuple[str, ...] = ("command", "containerID", "pod", "network", "plugin")
_context: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("multus_log_context", default=())

# Go's levels in Python's terms; "verbose" is Go Multus's info level.
_PY_LEVEL = {
    LogLevel.PANIC: logging.CRITICAL,
    LogLevel.ERROR: logging.ERROR,
    LogLevel.VERBOSE: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
}
_GO_NAME = {
    logging.CRITICAL: "panic",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "verbose",
    logging.DEBUG: "debug",
}


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


class ContextFormatter(logging.Formatter):
    """``<RFC3339> [<level>] <msg> k=v ...``; values with spaces or quotes are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        level = _GO_NAME.get(record.levelno, record.levelname.lower())
        line = f"{stamp} [{level}] {record.getMessage()}"
        extra = " ".join(f"{k}={_quote(v)}" for k, v in _context.get())
        if extra:
            line = f"{line} {extra}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _quote(value: str) -> str:
    if value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def apply(settings: LogSettings, *, logger: logging.Logger | None = None) -> None:
    """Send ``logger`` (default: the root logger) where the daemon config says.

    Go's default level is ``panic``: nearly silent unless asked. ``logFile`` rotates by size
    like lumberjack (``maxSize`` MB, ``maxBackups`` files); age and compression are not done.
    """
    target = logger if logger is not None else logging.getLogger()
    for handler in list(target.handlers):
        target.removeHandler(handler)
        handler.close()
    level = settings.level if settings.level is not None else LogLevel.PANIC
    target.setLevel(_PY_LEVEL[level])
    formatter = ContextFormatter()
    handlers: list[logging.Handler] = []
    if settings.to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    if settings.file:
        opts = settings.options
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.file,
                maxBytes=(opts.max_size or 100) * 1024 * 1024,
                backupCount=opts.max_backups,
                encoding="utf-8",
            )
        )
    if not handlers:  # else Python's last-resort handler prints warnings on stderr
        handlers.append(logging.NullHandler())
    for handler in handlers:
        handler.setFormatter(formatter)
        target.addHandler(handler)
    if settings.level_note:
        print(settings.level_note, file=sys.stderr)
