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
from collections.abc import Iterator
from contextvars import ContextVar

from pymultus.config import logsetup
from pymultus.config.logging import LogSettings

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


class ContextFormatter(logsetup.GoFormatter):
    """``<RFC3339> [<level>] <msg> k=v ...``; values with spaces or quotes are quoted."""

    def suffix(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_quote(v)}" for k, v in _context.get())


def _quote(value: str) -> str:
    if value and not any(c.isspace() or c in '"=' for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def apply(settings: LogSettings, *, logger: logging.Logger | None = None) -> None:
    """Send ``logger`` (default: the root logger) where the daemon config says
    (``config.logsetup``: Go's levels, default ``panic``; ``logFile`` rotated like
    lumberjack), with the request's fields on every line."""
    logsetup.apply(settings, formatter=ContextFormatter(), logger=logger)
