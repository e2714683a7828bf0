"""``admission.k8s.io/v1`` AdmissionReview: the request read safely, the response written.

A review is refused (``MalformedReview``, answered 400 by the server) before it is decoded
when it is bigger than ``MAX_BODY`` or nested deeper than ``MAX_DEPTH``; then it must be JSON
with the fields the rules need (``request.uid``, ``request.kind``, ``request.operation``).
``admission.k8s.io/v1beta1`` is refused with a message saying what to configure: the API
server has sent v1 to every webhook that lists it in ``admissionReviewVersions`` since 1.16.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from pymultus.cni import limits
from pymultus.cni.errors import CniError

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
#: Bytes. etcd stores objects up to 1.5 MiB; an UPDATE review carries the object twice, and
#: JSON escaping of annotations can grow it: 6 MiB holds any review the API server can send.
MAX_BODY = 6 * 1024 * 1024
#: JSON nesting levels. A Pod is about 10 deep; 100 leaves room for any real object and keeps
#: a hostile body far from the decoder's recursion limit.
MAX_DEPTH = 100


class MalformedReview(Exception):
    """The body is not an AdmissionReview v1 the webhook can judge; ``str()`` says why."""


class GroupVersionKind(msgspec.Struct, frozen=True):
    kind: str
    group: str = ""
    version: str = ""


class AdmissionRequest(msgspec.Struct, frozen=True):
    """The fields of ``AdmissionReview.request`` the rules read."""

    uid: str
    kind: GroupVersionKind
    operation: str
    namespace: str = ""
    name: str = ""
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None


class _Envelope(msgspec.Struct, frozen=True):
    apiVersion: str = ""
    kind: str = ""
    request: msgspec.Raw = msgspec.Raw(b"null")  # decoded after the apiVersion check


@dataclass(frozen=True)
class Verdict:
    """What the rules decided. ``reason`` labels denials in the metrics; ``code`` is the HTTP
    status the API server answers the writer with."""

    allowed: bool
    message: str = ""
    reason: str = ""
    code: int = 200
    warnings: tuple[str, ...] = ()


ALLOWED = Verdict(True)


def deny(message: str, reason: str, code: int = 400) -> Verdict:
    return Verdict(False, message, reason, code)


class _Status(msgspec.Struct, frozen=True, omit_defaults=True):
    code: int
    message: str
    reason: str = ""


class _Response(msgspec.Struct, frozen=True, omit_defaults=True):
    uid: str
    allowed: bool
    status: _Status | None = None
    warnings: list[str] = msgspec.field(default_factory=list)


class _ResponseReview(msgspec.Struct, frozen=True):
    apiVersion: str
    kind: str
    response: _Response


_STATUS_REASONS = {400: "BadRequest", 403: "Forbidden"}


def decode_review(body: bytes) -> AdmissionRequest:
    """The review's request; ``MalformedReview`` naming what is wrong."""
    try:
        limits.check_json(body, field="body", max_bytes=MAX_BODY, max_depth=MAX_DEPTH)
    except CniError as err:
        raise MalformedReview(err.msg) from err
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except msgspec.ValidationError as err:  # a subclass of DecodeError: first
        raise MalformedReview(f"body: not an AdmissionReview: {err}") from err
    except msgspec.DecodeError as err:
        raise MalformedReview(f"body: not valid JSON: {err}") from err
    if envelope.apiVersion != API_VERSION or envelope.kind != KIND:
        raise MalformedReview(_wrong_type(envelope))
    if bytes(envelope.request) == b"null":
        raise MalformedReview("request: is required")
    try:
        return msgspec.json.decode(envelope.request, type=AdmissionRequest)
    except msgspec.ValidationError as err:
        raise MalformedReview(f"request: {err}") from err


def _wrong_type(envelope: _Envelope) -> str:
    if envelope.apiVersion == "admission.k8s.io/v1beta1":
        return (
            "apiVersion: admission.k8s.io/v1beta1 is not supported: list only v1 in the "
            "webhook configuration's admissionReviewVersions"
        )
    return (
        f"apiVersion/kind: {envelope.apiVersion or '(none)'} {envelope.kind or '(none)'} is "
        f"not an {API_VERSION} {KIND}"
    )


def encode_response(uid: str, verdict: Verdict) -> bytes:
    """The AdmissionReview v1 answer to the request ``uid``."""
    status = None
    if not verdict.allowed:
        reason = _STATUS_REASONS.get(verdict.code, "")
        status = _Status(verdict.code, verdict.message, reason)
    response = _Response(uid, verdict.allowed, status, list(verdict.warnings))
    return msgspec.json.encode(_ResponseReview(API_VERSION, KIND, response))
