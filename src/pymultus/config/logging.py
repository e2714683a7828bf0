"""Log settings as Go Multus reads them from a config (``pkg/logging``); parsing only.

Nothing here touches a logger: a parser that reconfigured logging would make the order of
parsing matter (Go Multus has exactly that problem). Whoever owns the process applies a
``LogSettings`` once.

Keys, matched case-insensitively like Go's ``encoding/json``:

- ``logLevel``: ``panic`` < ``error`` < ``verbose`` < ``debug``, case-insensitive. An empty or
  absent level changes nothing. An unknown level is **not** an error: Go prints
  ``multus logging: cannot set logging level to <x>`` on stderr and keeps the level it had, so
  a config that works with Go keeps working. ``level`` is then None and ``level_note`` holds
  that line for the caller to print.
- ``logFile``: path of a file log rotated like lumberjack; empty means no file.
- ``logToStderr``: the thin plugin defaults to true, the daemon and the shim to false.
- ``logOptions``: rotation of ``logFile``, only used together with it. Go's defaults:
  ``maxSize`` 100 (MB before rotating), ``maxAge`` 5 (days a rotated file is kept),
  ``maxBackups`` 5 (rotated files kept), ``compress`` true (gzip rotated files). Lumberjack
  reads 0 as "no limit" for maxAge and maxBackups and as "100 MB" for maxSize.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from pymultus.cni.errors import InvalidConfigError
from pymultus.cni.netconf import go_field

DEFAULT_MAX_SIZE_MB = 100
DEFAULT_MAX_AGE_DAYS = 5
DEFAULT_MAX_BACKUPS = 5
DEFAULT_COMPRESS = True


class LogLevel(enum.IntEnum):
    """Go Multus's levels; a message is written when its level <= the configured one."""

    PANIC = 0
    ERROR = 1
    VERBOSE = 2
    DEBUG = 3


class LogOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Rotation of the log file (lumberjack's settings, Go's defaults)."""

    max_size: int = DEFAULT_MAX_SIZE_MB
    max_age: int = DEFAULT_MAX_AGE_DAYS
    max_backups: int = DEFAULT_MAX_BACKUPS
    compress: bool = DEFAULT_COMPRESS


class LogSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What one config says about logging. ``level`` None means "keep the current level"."""

    level: LogLevel | None = None
    file: str = ""
    to_stderr: bool = True
    options: LogOptions = LogOptions()
    level_note: str = ""


def parse_level(text: str) -> LogLevel | None:
    """``debug``/``verbose``/``error``/``panic`` in any case; None for anything else."""
    try:
        return LogLevel[text.upper()]
    except KeyError:
        return None


def parse_log_settings(conf: Mapping[str, Any], *, default_to_stderr: bool) -> LogSettings:
    """The logging keys of a decoded config object. Wrong JSON types raise
    ``InvalidConfigError`` naming the key (Go refuses the whole config then, too)."""
    text = typed_field(conf, "logLevel", str, "")
    level = parse_level(text) if text else None
    note = f"multus logging: cannot set logging level to {text}" if text and level is None else ""
    return LogSettings(
        level=level,
        file=typed_field(conf, "logFile", str, ""),
        to_stderr=typed_field(conf, "logToStderr", bool, default_to_stderr),
        options=_options(conf),
        level_note=note,
    )


def _options(conf: Mapping[str, Any]) -> LogOptions:
    found, raw = go_field(conf, "logOptions")
    if not found or raw is None:
        return LogOptions()
    if not isinstance(raw, dict):
        raise InvalidConfigError("logOptions must be an object", field="logOptions")
    return LogOptions(
        max_size=typed_field(raw, "maxSize", int, DEFAULT_MAX_SIZE_MB, "logOptions."),
        max_age=typed_field(raw, "maxAge", int, DEFAULT_MAX_AGE_DAYS, "logOptions."),
        max_backups=typed_field(raw, "maxBackups", int, DEFAULT_MAX_BACKUPS, "logOptions."),
        compress=typed_field(raw, "compress", bool, DEFAULT_COMPRESS, "logOptions."),
    )


_T = TypeVar("_T")
_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer"}


def typed_field(
    conf: Mapping[str, Any], key: str, kind: type[_T], default: _T, prefix: str = ""
) -> _T:
    """The scalar ``key`` of a decoded config (found as Go finds struct fields, ignoring case)
    when it has Go's type (str, bool or int); absent or JSON null keeps the default, as in Go.

    Shared by the Multus and daemon config parsers; it lives here, the lowest config module.
    """
    found, value = go_field(conf, key)
    if not found or value is None:
        return default
    # bool is an int subclass in Python; Go never takes true for a number.
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise InvalidConfigError(
        f"{prefix}{key} must be {_TYPE_NAMES[kind]}, got {value!r}", field=f"{prefix}{key}"
    )
