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

import logging

from pymultus.config import logsetup
from pymultus.config.logging import LogSettings

# The context fields live in ``config.logsetup`` so the thin plugin writes them too.
FIELDS = logsetup.FIELDS
fields = logsetup.fields
current_fields = logsetup.current_fields
ContextFormatter = logsetup.ContextFormatter


def apply(settings: LogSettings, *, logger: logging.Logger | None = None) -> None:
    """Send ``logger`` (default: the root logger) where the daemon config says
    (``config.logsetup``: Go's levels, default ``panic``; ``logFile`` rotated like
    lumberjack), with the request's fields on every line."""
    logsetup.apply(settings, formatter=ContextFormatter(), logger=logger)
