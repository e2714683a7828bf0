"""The one exception tree of pymultus. Every class carries its CNI error code.

::

    CniError (999 unless a subclass says otherwise)
     ├── IncompatibleVersionError   1   the config's cniVersion is unknown or unsupported
     ├── UnsupportedFieldError      2   a field or verb the version does not have
     ├── UnknownContainerError      3   container or netns does not exist
     ├── InvalidEnvironmentError    4   CNI_* variables missing or malformed
     ├── IOFailure                  5   file, socket or process I/O failed
     ├── DecodeError                6   bytes that are not the JSON we need
     ├── InvalidConfigError         7   config, NAD or annotation is wrong (names the field)
     ├── InvalidNetnsError          8   CNI_NETNS is not a network namespace
     ├── TryAgainLaterError        11   transient: API server or daemon unreachable
     ├── PluginNotAvailableError   50   STATUS: the plugin cannot serve ADDs now
     ├── LimitedConnectivityError  51   STATUS: ADDs work but the network is degraded
     ├── DelegateError          (own)   a delegate plugin failed; its own code survives
     └── InternalError            999   a bug; never raised for bad input

Raise with structured fields (``field=``, ``network=``, ``pod=``, ``path=``) and chain with
``from``. A process has exactly one boundary that turns a ``CniError`` into CNI error JSON.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from pymultus.cni import gojson


class CniError(Exception):
    """Base of every error pymultus raises on purpose."""

    code: ClassVar[int] = 999

    def __init__(
        self,
        msg: str,
        *,
        details: str = "",
        field: str | None = None,
        network: str | None = None,
        pod: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
        self.field = field
        self.network = network
        self.pod = pod
        self.path = path

    @property
    def error_code(self) -> int:
        """The code written to the runtime (a delegate's own code for ``DelegateError``)."""
        return self.code

    def to_wire(self, cni_version: str = "") -> dict[str, Any]:
        """The spec's error object, keys in libcni's order; empty fields omitted."""
        wire: dict[str, Any] = {}
        if cni_version:
            wire["cniVersion"] = cni_version
        wire["code"] = self.error_code
        wire["msg"] = self.msg
        if self.details:
            wire["details"] = self.details
        return wire

    def to_json(self, cni_version: str = "") -> bytes:
        """Error JSON as skel prints it (4-space indent)."""
        return gojson.marshal_indent(self.to_wire(cni_version))

    def __str__(self) -> str:
        return f"{self.msg}; {self.details}" if self.details else self.msg


class IncompatibleVersionError(CniError):
    code = 1


class UnsupportedFieldError(CniError):
    code = 2


class UnknownContainerError(CniError):
    code = 3


class InvalidEnvironmentError(CniError):
    code = 4


class IOFailure(CniError):
    code = 5


class DecodeError(CniError):
    code = 6


class InvalidConfigError(CniError):
    code = 7


class InvalidNetnsError(CniError):
    code = 8


class TryAgainLaterError(CniError):
    code = 11


class PluginNotAvailableError(CniError):
    code = 50


class LimitedConnectivityError(CniError):
    code = 51


class InternalError(CniError):
    code = 999


class DelegateError(CniError):
    """A delegate plugin reported an error (or died); ``plugin_code`` is its own code."""

    def __init__(self, msg: str, *, plugin_code: int, plugin: str = "", **kw: Any) -> None:
        super().__init__(msg, **kw)
        self.plugin_code = plugin_code
        self.plugin = plugin

    @property
    def error_code(self) -> int:
        return self.plugin_code


def rebuild(exc: CniError, msg: str) -> CniError:
    """``exc`` with another message; class, code and fields kept, ``exc`` as the cause."""
    fields: dict[str, Any] = {
        "details": exc.details,
        "field": exc.field,
        "network": exc.network,
        "pod": exc.pod,
        "path": exc.path,
    }
    again: CniError
    if isinstance(exc, DelegateError):
        again = DelegateError(msg, plugin_code=exc.plugin_code, plugin=exc.plugin, **fields)
    else:
        again = type(exc)(msg, **fields)
    again.__cause__ = exc
    return again


def prefixed(exc: CniError, prefix: str) -> CniError:
    """``exc`` with context in front of its message (code kept)."""
    return rebuild(exc, prefix + exc.msg)


class _WireError(msgspec.Struct):
    code: int
    msg: str = ""
    details: str = ""


_wire_decoder = msgspec.json.Decoder(_WireError)


def decode_plugin_failure(plugin: str, stdout: bytes, stderr: bytes, status: int) -> DelegateError:
    """Turn a failed plugin run into an error, keeping the plugin's own code.

    A plugin that printed an error object keeps its code and message. A plugin that crashed,
    was killed or failed without a word gets ``PLUGIN_FAILED`` (5, process I/O failed), one
    that printed garbage gets ``DecodeError.code`` (6); both with a message built from its exit
    status and the tail of its stderr. (Go reports all of these as a generic error; a runtime
    or a person can tell them apart here, and none looks like a bug of Multus itself.)
    """
    try:
        wire = _wire_decoder.decode(stdout)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        # RecursionError: stdout nested deeper than the decoder goes; garbage all the same
        code = DecodeError.code if stdout.strip() else PLUGIN_FAILED
        return DelegateError(
            _crash_message(plugin, stderr, status), plugin_code=code, plugin=plugin
        )
    return DelegateError(wire.msg, plugin_code=wire.code, plugin=plugin, details=wire.details)


#: The code of a delegate that crashed, was killed, timed out or could not be started.
PLUGIN_FAILED = IOFailure.code


def _crash_message(plugin: str, stderr: bytes, status: int) -> str:
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    tail = stderr.decode("utf-8", "replace").strip()[-1024:]
    return f"plugin {plugin!r} {how}" + (f": {tail}" if tail else " and printed no error")
