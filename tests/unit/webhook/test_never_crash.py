"""Whatever a review holds, the webhook answers with a verdict or a MalformedReview: never an
exception from a rule (which would be a 500 and, with failurePolicy Ignore, a silent pass)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tests.unit.k8s.test_selection import _json_values as json_values

from pymultus.webhook.main import rules_conf
from pymultus.webhook.review import (
    AdmissionRequest,
    GroupVersionKind,
    MalformedReview,
    Verdict,
    decode_review,
)
from pymultus.webhook.rules import judge

CONF = rules_conf(None)
JSON = json_values  # any JSON value (floats may be infinite: not JSON, see review())
ANNOTATION = st.sampled_from(
    ["k8s.v1.cni.cncf.io/networks", "v1.multus-cni.io/default-network", "other"]
)
VALUE = st.text(alphabet='[]{}",:@/ abc-019.', max_size=40) | JSON.map(json.dumps)
KINDS = [
    {"group": "", "version": "v1", "kind": "Pod"},
    {"group": "k8s.cni.cncf.io", "version": "v1", "kind": "NetworkAttachmentDefinition"},
]


def review(kind: dict[str, str], operation: str, obj: Any, old: Any = None) -> bytes:
    request = {"uid": "u", "kind": kind, "operation": operation, "namespace": "ns"}
    request |= {"object": obj, "oldObject": old}
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    try:
        return json.dumps(body, allow_nan=False).encode()
    except ValueError:  # an infinite float: no API server sends that
        assume(False)
        raise


def verdict_of(body: bytes) -> Verdict | None:
    try:
        req = decode_review(body)
    except MalformedReview:
        return None
    return judge(req, CONF, None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE"]),
    annotations=st.dictionaries(ANNOTATION, VALUE, max_size=2),
    config=VALUE | JSON,
    extra=JSON,
)
def test_any_object_gets_a_verdict(
    kind: dict[str, str], operation: str, annotations: Any, config: Any, extra: Any
) -> None:
    obj = {"metadata": {"name": "x", "annotations": annotations}, "spec": {"config": config}}
    verdict = verdict_of(review(kind, operation, obj, {"metadata": extra}))
    assert verdict is not None
    assert verdict.allowed or verdict.message


@settings(max_examples=200, deadline=None)
@given(obj=JSON, kind=st.sampled_from(KINDS))
def test_any_shape_of_object_is_judged_or_refused(obj: Any, kind: dict[str, str]) -> None:
    verdict_of(review(kind, "CREATE", obj))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_any_body_is_decoded_or_refused(body: bytes) -> None:
    verdict_of(body)


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("k8s.v1.cni.cncf.io/networks", "macvlan@\ud800"),
        ("v1.multus-cni.io/default-network", "macvlan@\ud800"),
        ("k8s.v1.cni.cncf.io/networks", '[{"name": "a", "interface": "\ud800"}]'),
    ],
)
def test_lone_surrogates_are_denied(annotation: str, value: str) -> None:
    """What a JSON ``\\ud800`` escape decodes to (Go's API server never sends one)."""
    obj = {"metadata": {"annotations": {annotation: value}}}
    kind = GroupVersionKind("Pod", "", "v1")
    verdict = judge(AdmissionRequest("u", kind, "CREATE", "ns", object=obj), CONF, None)
    assert not verdict.allowed
    assert verdict.message.startswith(annotation)


@pytest.mark.parametrize(
    "body",
    [b'"' * 10001, b"[" * 10**6, b'{"a": "\\"[[[[' + b"[" * 500 + b'"}', b"\xff\xfe"],
)
def test_hostile_bodies(body: bytes) -> None:
    assert verdict_of(body) is None
