"""deploy/policy-pernode.yaml's CEL, evaluated by a CEL library (cel-python) the way the API
server runs a ValidatingAdmissionPolicy: matchConditions first (a request that does not match
is not checked), then ``variables`` (in order, each seeing the earlier ones), then every
validation must be true.

Sample requests are what the API server hands admission for a node's Multus: a merge PATCH of
``pods/status`` (``object`` after, ``oldObject`` before) and the create of an event."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
from tests.unit.deploy.test_manifests import load

STATUS = "k8s.v1.cni.cncf.io/network-status"
POLICY = next(d for d in load("policy-pernode.yaml") if d["kind"] == "ValidatingAdmissionPolicy")
ENV = celpy.Environment()


def program(expression: str) -> Any:
    return ENV.program(ENV.compile(expression))


def cel_map(values: dict[str, Any]) -> Any:
    return celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in values.items()})


def evaluate(activation: dict[str, Any]) -> list[str]:
    """The messages of the failed validations; [] when allowed (or not matched)."""
    data = {k: celpy.json_to_cel(v) for k, v in activation.items()}
    for cond in POLICY["spec"]["matchConditions"]:
        if not program(cond["expression"]).evaluate(data):
            return []
    variables = {}
    for var in POLICY["spec"]["variables"]:
        data["variables"] = cel_map(variables)
        variables[var["name"]] = program(var["expression"]).evaluate(dict(data))
    data["variables"] = cel_map(variables)
    failed = []
    for rule in POLICY["spec"]["validations"]:
        result = program(rule["expression"]).evaluate(data)
        assert isinstance(result, celpy.celtypes.BoolType), (rule["expression"], result)
        if not result:
            failed.append(rule["message"])
    return failed


def pod(node: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "ns", "name": "web", "labels": {"app": "web"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Pending", "podIP": "198.51.100.7"},
    }


def status_update(user: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    request = {
        "userInfo": {"username": user, "groups": ["system:multus", "system:authenticated"]},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "subResource": "status",
        "namespace": "ns",
        "operation": "UPDATE",
    }
    return {"request": request, "object": new, "oldObject": old}


def annotated(node: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    return pod(node, {"other": "x", STATUS: "[]", **(extra or {})})


def test_own_nodes_pod_network_status_is_allowed() -> None:
    old = pod("node-a", {"other": "x"})
    assert evaluate(status_update("system:multus:node-a", old, annotated("node-a"))) == []


def test_first_annotation_on_a_pod_without_any_is_allowed() -> None:
    old = pod("node-a")
    new = pod("node-a", {STATUS: "[]"})
    assert evaluate(status_update("system:multus:node-a", old, new)) == []


def test_another_nodes_pod_is_denied() -> None:
    old = pod("node-b", {"other": "x"})
    failed = evaluate(status_update("system:multus:node-a", old, annotated("node-b")))
    assert failed == ["system:multus:<node> may only update the status of pods running on <node>"]


def test_a_pod_not_scheduled_yet_is_denied() -> None:
    old, new = pod("node-a"), pod("node-a", {STATUS: "[]"})
    del old["spec"]["nodeName"], new["spec"]["nodeName"]
    assert evaluate(status_update("system:multus:node-a", old, new)) != []


@pytest.mark.parametrize(
    "change",
    ["status", "label", "other annotation changed", "other annotation added", "removed"],
)
def test_anything_but_the_network_status_is_denied(change: str) -> None:
    old = pod("node-a", {"other": "x"})
    new = annotated("node-a")
    if change == "status":
        new["status"]["phase"] = "Running"
    elif change == "label":
        new["metadata"]["labels"]["app"] = "evil"
    elif change == "other annotation changed":
        new["metadata"]["annotations"]["other"] = "y"
    elif change == "other annotation added":
        new["metadata"]["annotations"]["new"] = "y"
    else:
        del new["metadata"]["annotations"]["other"]
    failed = evaluate(status_update("system:multus:node-a", old, new))
    assert failed == ["Multus may change only the network-status annotation of a pod"]


def test_other_users_are_not_matched() -> None:
    """The kubelet, controllers, Go Multus's shared account: not this policy's business."""
    old = pod("node-b")
    new = copy.deepcopy(old)
    new["status"]["phase"] = "Running"
    for user in ("system:node:node-a", "system:serviceaccount:kube-system:multus", "alice"):
        assert evaluate(status_update(user, old, new)) == []


def event_create(user: str, event: dict[str, Any], group: str = "") -> dict[str, Any]:
    request = {
        "userInfo": {"username": user, "groups": ["system:multus"]},
        "resource": {"group": group, "version": "v1", "resource": "events"},
        "subResource": "",
        "namespace": "ns",
        "operation": "CREATE",
    }
    return {"request": request, "object": event, "oldObject": None}


def core_event(**changes: Any) -> dict[str, Any]:
    """The event pymultus's daemon creates (k8s.client._event)."""
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": "ns", "name": "web.1"},
        "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "web", "apiVersion": "v1"},
        "reason": "AddedInterface",
        "source": {"component": "multus"},
        "reportingComponent": "multus",
        "reportingInstance": "",
        "type": "Normal",
    }
    event.update(changes)
    return event


def test_the_daemons_event_is_allowed() -> None:
    assert evaluate(event_create("system:multus:node-a", core_event())) == []


def test_an_event_naming_its_own_node_as_source_is_allowed() -> None:
    event = core_event(source={"component": "multus", "host": "node-a"})
    event["reportingInstance"] = "node-a"
    assert evaluate(event_create("system:multus:node-a", event)) == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            core_event(involvedObject={"kind": "Node", "name": "node-b"}),
            "system:multus:<node> may only create events about a pod in the event's namespace",
        ),
        (
            core_event(involvedObject={"kind": "Pod", "namespace": "other", "name": "x"}),
            "system:multus:<node> may only create events about a pod in the event's namespace",
        ),
        (
            core_event(source={"component": "multus", "host": "node-b"}),
            "an event from system:multus:<node> must not claim another node as its source",
        ),
        (
            core_event(reportingInstance="node-b"),
            "an event from system:multus:<node> must not claim another node as its source",
        ),
    ],
)
def test_other_events_are_denied(event: dict[str, Any], message: str) -> None:
    assert evaluate(event_create("system:multus:node-a", event)) == [message]


def test_events_api_group_uses_regarding() -> None:
    good = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"namespace": "ns", "name": "e"},
        "regarding": {"kind": "Pod", "namespace": "ns", "name": "web"},
        "reportingController": "multus",
        "reportingInstance": "node-a",
    }
    assert evaluate(event_create("system:multus:node-a", good, "events.k8s.io")) == []
    bad = {**good, "regarding": {"kind": "Secret", "namespace": "ns", "name": "s"}}
    assert evaluate(event_create("system:multus:node-a", bad, "events.k8s.io")) != []
