"""The bodies exchanged with ``multus-daemon`` over its unix socket, as Go Multus v4 has them
(``pkg/server/api/types.go``), so Go clients (the Go shim, multus-dynamic-networks-controller)
and ours speak to either daemon.

Request (``POST /cni`` and ``POST /delegate``)::

    {"env": {"CNI_COMMAND": "ADD", ...}, "config": "<base64 of the CNI config bytes>",
     "interfaceAttributes": {"ips": [...], "mac": "...", "cni-args": {...}}}   # /delegate only

``env`` is the caller's whole environment (the Go shim sends all of it); ``config`` is base64
because Go encodes ``[]byte`` that way. Unknown keys are ignored, as Go does.

Success on ADD: ``{"Result": <CNI result>}`` (capital ``R``: the Go field has no JSON tag).
Every other success has an empty body. A failure is HTTP 400 whose body is the CNI error object
``{"code": N, "msg": "...", "details": "..."}``.

A body that does not decode, or nests deeper than ``pymultus.cni.limits`` allows, raises
:class:`WireError` with the bad field's path; the daemon turns it into a CNI ``DecodeError``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from pymultus.cni import limits
from pymultus.cni.errors import CniError

__all__ = [
    "CniRequest",
    "DelegateRequest",
    "InterfaceAttributes",
    "WireError",
    "decode_cni_request",
    "decode_delegate_request",
    "encode_add_response",
    "encode_cni_request",
    "encode_delegate_request",
]


class WireError(Exception):
    """A request body that is not the JSON the daemon expects; ``field`` is the JSON path of
    the bad value (``env.CNI_ARGS``, ``config``), or ``body`` when the whole body is wrong."""

    def __init__(self, msg: str, *, field: str) -> None:
        super().__init__(msg)
        self.msg = msg
        self.field = field


class InterfaceAttributes(msgspec.Struct, frozen=True, omit_defaults=True):
    """Go's ``DelegateInterfaceAttributes``: what a hot-plugged interface asks for."""

    ips: list[str] | None = None
    mac: str = ""
    cni_args: dict[str, Any] | None = msgspec.field(default=None, name="cni-args")


class CniRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """Go's ``api.Request`` as ``/cni`` reads it."""

    env: dict[str, str] = msgspec.field(default_factory=dict)
    config: bytes = b""


class DelegateRequest(msgspec.Struct, frozen=True, omit_defaults=True):
    """Go's ``api.Request`` as ``/delegate`` reads it: one delegate config, not a Multus one."""

    env: dict[str, str] = msgspec.field(default_factory=dict)
    config: bytes = b""
    interfaceAttributes: InterfaceAttributes | None = None  # the wire name


_T = TypeVar("_T")
_cni_decoder = msgspec.json.Decoder(CniRequest)
_delegate_decoder = msgspec.json.Decoder(DelegateRequest)
_encoder = msgspec.json.Encoder()
# msgspec ends a validation message with "- at `$.env.CNI_ARGS`"; that path names the field.
_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def decode_cni_request(body: bytes) -> CniRequest:
    """The ``/cni`` body; :class:`WireError` naming the field when it does not decode."""
    return _decode(_cni_decoder, body)


def decode_delegate_request(body: bytes) -> DelegateRequest:
    """The ``/delegate`` body; :class:`WireError` naming the field when it does not decode."""
    return _decode(_delegate_decoder, body)


def _decode(decoder: msgspec.json.Decoder[_T], body: bytes) -> _T:
    if not body.strip():
        raise WireError("invalid request body: empty, expected a JSON object", field="body")
    try:
        limits.check_depth(body, field="body")
    except CniError as exc:
        raise WireError(f"invalid request body: {exc.msg}", field="body") from exc
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        found = _AT_PATH.search(text)
        # Map keys show as "[...]": the map itself is the field to fix.
        path = found.group("path").replace("[...]", "") if found else ""
        field = path or "body"
        what = text[: found.start()] if found else text
        raise WireError(f"invalid request body: {field}: {what}", field=field) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError(f"invalid request body: not JSON: {exc}", field="body") from exc


def encode_cni_request(env: dict[str, str], config: bytes) -> bytes:
    """A ``/cni`` body as the Go shim sends it (what tests and admin tools post)."""
    return _encoder.encode(CniRequest(env=env, config=config))


def encode_delegate_request(
    env: dict[str, str], config: bytes, attributes: InterfaceAttributes | None = None
) -> bytes:
    """A ``/delegate`` body as multus-dynamic-networks-controller sends it."""
    return _encoder.encode(DelegateRequest(env=env, config=config, interfaceAttributes=attributes))


def encode_add_response(result_json: bytes) -> bytes:
    """``{"Result": <result>}`` around an already encoded CNI result (its bytes kept)."""
    return b'{"Result":' + result_json + b"}"
