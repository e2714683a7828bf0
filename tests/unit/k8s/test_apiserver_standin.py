"""The stand-in API server keeps the real server's rules, checked with plain HTTP (urllib).

What pymultus's client relies on is pinned here, against the stand-in rather than through
pymultus: resourceVersion handling, Status bodies, 409 on a stale update, ``pods/status``
semantics, selectors, list+watch streams, and 410 for a watch older than the compaction.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.apiserver import StandInApiServer

TOKEN = "standin-token"
PODS = "/api/v1/namespaces/ns1/pods"
NADS = "/apis/k8s.cni.cncf.io/v1/namespaces/ns1/network-attachment-definitions"


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer(token=TOKEN) as server:
        yield server


def call(
    api: StandInApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """One request; returns (HTTP status, decoded JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(api.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        with e:
            assert e.headers["Content-Type"] == "application/json"
            return e.code, json.loads(e.read())


def pod(name: str, node: str = "node-a", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "img:1"}]},
    }


def nad(name: str, config: str = '{"cniVersion":"1.0.0","type":"bridge"}') -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name},
        "spec": {"config": config},
    }


def rv(obj: dict[str, Any]) -> int:
    value = obj["metadata"]["resourceVersion"]
    assert isinstance(value, str)
    return int(value)


# --- objects, versions, errors ------------------------------------------------------------------


def test_create_assigns_uid_version_and_pending_status(api: StandInApiServer) -> None:
    status, created = call(api, "POST", PODS, {**pod("p1"), "status": {"phase": "Running"}})
    assert status == 201
    assert created["metadata"]["uid"]
    assert created["metadata"]["namespace"] == "ns1"
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    status, fetched = call(api, "GET", f"{PODS}/p1")
    assert status == 200
    assert fetched == created


def test_resource_version_is_global_and_bumped_by_every_write(api: StandInApiServer) -> None:
    _, a = call(api, "POST", PODS, pod("p1"))
    _, b = call(api, "POST", NADS, nad("n1"))
    assert rv(b) == rv(a) + 1
    a["metadata"]["annotations"] = {"k": "v"}
    _, a2 = call(api, "PUT", f"{PODS}/p1", a)
    assert rv(a2) == rv(b) + 1
    _, listing = call(api, "GET", PODS)
    assert listing["metadata"]["resourceVersion"] == str(rv(a2))


def test_noop_update_keeps_the_version(api: StandInApiServer) -> None:
    _, created = call(api, "POST", PODS, pod("p1"))
    _, same = call(api, "PUT", f"{PODS}/p1", created)
    assert rv(same) == rv(created)


@pytest.mark.parametrize(
    ("path", "message", "details"),
    [
        (f"{PODS}/ghost", 'pods "ghost" not found', {"name": "ghost", "kind": "pods"}),
        (f"{PODS}/ghost/status", 'pods "ghost" not found', {"name": "ghost", "kind": "pods"}),
        (
            f"{NADS}/ghost",
            'network-attachment-definitions.k8s.cni.cncf.io "ghost" not found',
            {"name": "ghost", "group": "k8s.cni.cncf.io", "kind": "network-attachment-definitions"},
        ),
    ],
)
def test_missing_object_is_a_notfound_status(
    api: StandInApiServer, path: str, message: str, details: dict[str, str]
) -> None:
    status, body = call(api, "GET", path)
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NotFound",
        "details": details,
        "code": 404,
    }


def test_unknown_path_is_404(api: StandInApiServer) -> None:
    status, body = call(api, "GET", "/api/v1/namespaces/ns1/secrets/x")
    assert (status, body["reason"]) == (404, "NotFound")


def test_stale_update_is_a_conflict(api: StandInApiServer) -> None:
    _, created = call(api, "POST", PODS, pod("p1"))
    fresh = {**created, "metadata": {**created["metadata"], "labels": {"a": "1"}}}
    assert call(api, "PUT", f"{PODS}/p1", fresh)[0] == 200
    stale = {**created, "metadata": {**created["metadata"], "labels": {"a": "2"}}}
    status, body = call(api, "PUT", f"{PODS}/p1", stale)
    assert status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on pods "p1": the object has been modified; please '
        "apply your changes to the latest version and try again"
    )
    assert api.get_object("pods", "ns1", "p1")["metadata"]["labels"] == {"a": "1"}  # type: ignore[index]


def test_update_without_version_is_allowed_for_pods_not_for_nads(api: StandInApiServer) -> None:
    _, p = call(api, "POST", PODS, pod("p1"))
    del p["metadata"]["resourceVersion"]
    p["metadata"]["labels"] = {"x": "y"}
    assert call(api, "PUT", f"{PODS}/p1", p)[0] == 200
    _, n = call(api, "POST", NADS, nad("n1"))
    del n["metadata"]["resourceVersion"]
    status, body = call(api, "PUT", f"{NADS}/n1", n)
    assert (status, body["reason"]) == (422, "Invalid")


def test_create_existing_is_already_exists(api: StandInApiServer) -> None:
    call(api, "POST", NADS, nad("n1"))
    status, body = call(api, "POST", NADS, nad("n1"))
    assert (status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'network-attachment-definitions.k8s.cni.cncf.io "n1" already exists'


def test_create_in_another_namespace_than_the_url_is_rejected(api: StandInApiServer) -> None:
    status, body = call(api, "POST", PODS, pod("p1", namespace="other"))
    assert (status, body["reason"]) == (400, "BadRequest")


def test_invalid_name_is_rejected(api: StandInApiServer) -> None:
    status, body = call(api, "POST", PODS, pod("Bad_Name"))
    assert (status, body["reason"]) == (422, "Invalid")


# --- pods/status ---------------------------------------------------------------------------------


def test_status_put_changes_status_and_annotations_but_not_spec(api: StandInApiServer) -> None:
    _, created = call(api, "POST", PODS, pod("p1", annotations={"keep": "1"}))
    sent = json.loads(json.dumps(created))
    sent["spec"]["nodeName"] = "elsewhere"
    sent["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = "[]"
    sent["status"]["phase"] = "Running"
    status, stored = call(api, "PUT", f"{PODS}/p1/status", sent)
    assert status == 200
    assert stored["spec"] == created["spec"]
    assert stored["status"]["phase"] == "Running"
    assert stored["metadata"]["annotations"] == {
        "keep": "1",
        "k8s.v1.cni.cncf.io/network-status": "[]",
    }
    assert rv(stored) > rv(created)


def test_status_put_with_stale_version_conflicts(api: StandInApiServer) -> None:
    _, created = call(api, "POST", PODS, pod("p1"))
    api.put_object({**created, "metadata": {**created["metadata"], "labels": {"x": "1"}}})
    status, body = call(api, "PUT", f"{PODS}/p1/status", created)
    assert (status, body["reason"]) == (409, "Conflict")


def test_main_put_ignores_status_and_refuses_spec_changes(api: StandInApiServer) -> None:
    _, created = call(api, "POST", PODS, pod("p1"))
    sent = json.loads(json.dumps(created))
    sent["status"]["phase"] = "Running"
    sent["spec"]["containers"][0]["image"] = "img:2"
    _, stored = call(api, "PUT", f"{PODS}/p1", sent)
    assert stored["status"]["phase"] == "Pending"
    assert stored["spec"]["containers"][0]["image"] == "img:2"
    stored["spec"]["nodeName"] = "elsewhere"
    status, body = call(api, "PUT", f"{PODS}/p1", stored)
    assert (status, body["reason"]) == (422, "Invalid")


def test_merge_patch_and_unsupported_patch_type(api: StandInApiServer) -> None:
    call(api, "POST", PODS, pod("p1", annotations={"a": "1", "b": "2"}))
    patch = {"metadata": {"annotations": {"a": None, "c": "3"}}}
    ctype = "application/merge-patch+json"
    status, body = call(api, "PATCH", f"{PODS}/p1", patch, content_type=ctype)
    assert status == 200
    assert body["metadata"]["annotations"] == {"b": "2", "c": "3"}
    status, body = call(api, "PATCH", f"{PODS}/p1", [], content_type="application/apply-patch+yaml")
    assert status == 415


# --- delete ---------------------------------------------------------------------------------------


def test_delete_scheduled_pod_is_graceful_unscheduled_is_immediate(api: StandInApiServer) -> None:
    call(api, "POST", PODS, pod("on-node"))
    status, body = call(api, "DELETE", f"{PODS}/on-node")
    assert status == 200
    assert body["metadata"]["deletionGracePeriodSeconds"] == 30
    assert "deletionTimestamp" in body["metadata"]
    assert call(api, "GET", f"{PODS}/on-node")[0] == 200
    assert call(api, "DELETE", f"{PODS}/on-node?gracePeriodSeconds=0")[0] == 200
    assert call(api, "GET", f"{PODS}/on-node")[0] == 404
    call(api, "POST", PODS, pod("floating", node=""))
    call(api, "DELETE", f"{PODS}/floating")
    assert call(api, "GET", f"{PODS}/floating")[0] == 404


def test_delete_nad_answers_with_a_success_status(api: StandInApiServer) -> None:
    _, created = call(api, "POST", NADS, nad("n1"))
    status, body = call(api, "DELETE", f"{NADS}/n1")
    assert status == 200
    assert body["status"] == "Success"
    assert body["details"]["uid"] == created["metadata"]["uid"]
    assert call(api, "DELETE", f"{NADS}/n1")[0] == 404


# --- list and selectors ------------------------------------------------------------------------


def test_field_selectors(api: StandInApiServer) -> None:
    for name, node in (("a", "node-a"), ("b", "node-b"), ("c", "node-a")):
        call(api, "POST", PODS, pod(name, node=node))
    _, listing = call(api, "GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a")
    assert [p["metadata"]["name"] for p in listing["items"]] == ["a", "c"]
    assert listing["kind"] == "PodList"
    assert "kind" not in listing["items"][0]  # built-in list items carry no type meta
    _, listing = call(api, "GET", f"{PODS}?fieldSelector=metadata.name%3Db")
    assert [p["metadata"]["name"] for p in listing["items"]] == ["b"]
    _, listing = call(api, "GET", f"{PODS}?fieldSelector=spec.nodeName!%3Dnode-a")
    assert [p["metadata"]["name"] for p in listing["items"]] == ["b"]
    status, body = call(api, "GET", f"{PODS}?fieldSelector=spec.bogus%3Dx")
    assert (status, body["message"]) == (400, "field label not supported: spec.bogus")


def test_label_selectors(api: StandInApiServer) -> None:
    call(api, "POST", PODS, pod("a", labels={"app": "x", "tier": "web"}))
    call(api, "POST", PODS, pod("b", labels={"app": "y"}))
    call(api, "POST", PODS, pod("c"))
    cases = {
        "app%3Dx": ["a"],
        "app!%3Dx": ["b", "c"],
        "app": ["a", "b"],
        "!app": ["c"],
        "app+in+(x,y),tier": ["a"],
        "app+notin+(x)": ["b", "c"],
    }
    for sel, expected in cases.items():
        _, listing = call(api, "GET", f"{PODS}?labelSelector={sel}")
        assert [p["metadata"]["name"] for p in listing["items"]] == expected, sel


def test_all_namespaces_nad_list_keeps_type_meta(api: StandInApiServer) -> None:
    api.put_object({**nad("x"), "metadata": {"name": "x", "namespace": "ns2"}})
    call(api, "POST", NADS, nad("y"))
    _, listing = call(api, "GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions")
    assert listing["kind"] == "NetworkAttachmentDefinitionList"
    assert sorted(i["metadata"]["name"] for i in listing["items"]) == ["x", "y"]
    assert all(i["kind"] == "NetworkAttachmentDefinition" for i in listing["items"])


def test_list_pages_with_limit_and_continue(api: StandInApiServer) -> None:
    for name in "abc":
        call(api, "POST", PODS, pod(name))
    _, first = call(api, "GET", f"{PODS}?limit=2")
    assert [p["metadata"]["name"] for p in first["items"]] == ["a", "b"]
    token = first["metadata"]["continue"]
    _, rest = call(api, "GET", f"{PODS}?limit=2&continue={token}")
    assert [p["metadata"]["name"] for p in rest["items"]] == ["c"]
    assert "continue" not in rest["metadata"]


# --- watch ----------------------------------------------------------------------------------------


class Watch:
    """A raw watch stream read line by line in a thread, so the test can write meanwhile."""

    def __init__(self, api: StandInApiServer, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]))
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.events: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.resp:
                self.events.append(json.loads(line))
        except (OSError, http.client.HTTPException):
            pass
        self.done.set()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.events) >= n, self.events
        return self.events

    def close(self) -> None:
        # Wake the reader first: closing a stream another thread is reading would block.
        if self.conn.sock is not None:
            with contextlib.suppress(OSError):
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=5)
        self.conn.close()


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    opened: list[Watch] = []
    yield opened
    for w in opened:
        w.close()


def test_watch_streams_changes_after_the_version(
    api: StandInApiServer, watches: list[Watch]
) -> None:
    _, before = call(api, "POST", PODS, pod("old"))
    w = Watch(api, f"{PODS}?watch=1&resourceVersion={rv(before)}")
    watches.append(w)
    _, created = call(api, "POST", PODS, pod("p1", node=""))
    created["metadata"]["labels"] = {"a": "b"}
    call(api, "PUT", f"{PODS}/p1", created)
    call(api, "DELETE", f"{PODS}/p1")
    events = w.wait_for(3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "p1"),
        ("MODIFIED", "p1"),
        ("DELETED", "p1"),
    ]
    versions = [rv(e["object"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > rv(before)
    assert events[0]["object"]["kind"] == "Pod"


def test_watch_without_version_starts_with_the_current_state(
    api: StandInApiServer, watches: list[Watch]
) -> None:
    call(api, "POST", PODS, pod("p1"))
    w = Watch(api, f"{PODS}?watch=true")
    watches.append(w)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in w.wait_for(1)] == [
        ("ADDED", "p1")
    ]


def test_watch_with_field_selector_sees_objects_move_in_and_out(
    api: StandInApiServer, watches: list[Watch]
) -> None:
    w = Watch(api, "/api/v1/pods?watch=1&resourceVersion=0&fieldSelector=spec.nodeName%3Dnode-a")
    watches.append(w)
    api.put_object({**pod("p1", node="node-b"), "metadata": {"name": "p1", "namespace": "ns1"}})
    api.put_object({**pod("p1", node="node-a"), "metadata": {"name": "p1", "namespace": "ns1"}})
    api.put_object({**pod("p1", node="node-b"), "metadata": {"name": "p1", "namespace": "ns1"}})
    events = w.wait_for(2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


def test_watch_from_compacted_version_is_410_expired(
    api: StandInApiServer, watches: list[Watch]
) -> None:
    _, created = call(api, "POST", PODS, pod("p1"))
    call(api, "POST", PODS, pod("p2"))
    api.compact()
    w = Watch(api, f"{PODS}?watch=1&resourceVersion={rv(created)}")
    watches.append(w)
    assert w.done.wait(5)
    assert len(w.events) == 1
    assert w.events[0]["type"] == "ERROR"
    status = w.events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith(f"too old resource version: {rv(created)} (")
    # A watch from the current version is still fine after compaction.
    _, listing = call(api, "GET", PODS)
    w2 = Watch(api, f"{PODS}?watch=1&resourceVersion={listing['metadata']['resourceVersion']}")
    watches.append(w2)
    call(api, "POST", PODS, pod("p3"))
    assert w2.wait_for(1)[0]["type"] == "ADDED"


def test_watch_history_limit_compacts_by_itself(watches: list[Watch]) -> None:
    with StandInApiServer(token=TOKEN, history_limit=2) as api:
        _, first = call(api, "POST", PODS, pod("p1"))
        for name in ("p2", "p3", "p4"):
            call(api, "POST", PODS, pod(name))
        w = Watch(api, f"{PODS}?watch=1&resourceVersion={rv(first)}")
        watches.append(w)
        assert w.done.wait(5)
        assert w.events[0]["object"]["code"] == 410


def test_watch_timeout_seconds_ends_the_stream(api: StandInApiServer, watches: list[Watch]) -> None:
    started = time.monotonic()
    w = Watch(api, f"{PODS}?watch=1&timeoutSeconds=1")
    watches.append(w)
    assert w.done.wait(5)
    assert 0.9 <= time.monotonic() - started < 4
    assert w.events == []


def test_watch_bookmarks_only_when_asked(api: StandInApiServer, watches: list[Watch]) -> None:
    _, created = call(api, "POST", PODS, pod("p1"))
    with_marks = Watch(
        api, f"{PODS}?watch=1&resourceVersion={rv(created)}&allowWatchBookmarks=true"
    )
    without = Watch(api, f"{PODS}?watch=1&resourceVersion={rv(created)}")
    watches.extend([with_marks, without])
    api.bookmark()
    call(api, "POST", PODS, pod("p2"))
    events = with_marks.wait_for(2)
    assert {e["type"] for e in events} == {"BOOKMARK", "ADDED"}
    mark = next(e for e in events if e["type"] == "BOOKMARK")
    assert rv(mark["object"]) >= rv(created)
    assert [e["type"] for e in without.wait_for(1)] == ["ADDED"]


def test_stop_ends_open_watches(api: StandInApiServer, watches: list[Watch]) -> None:
    w = Watch(api, f"{PODS}?watch=1")
    watches.append(w)
    api.stop()
    assert w.done.wait(5)


# --- knobs ----------------------------------------------------------------------------------------


def test_requests_without_the_token_are_unauthorized(api: StandInApiServer) -> None:
    status, body = call(api, "GET", PODS, token="wrong")
    assert (status, body["reason"], body["code"]) == (401, "Unauthorized", 401)


def test_fail_next_injects_status_errors_then_recovers(api: StandInApiServer) -> None:
    api.fail_next(2, 503)
    assert call(api, "GET", PODS)[1]["reason"] == "ServiceUnavailable"
    assert call(api, "GET", PODS)[0] == 503
    assert call(api, "GET", PODS)[0] == 200
    assert [r.method for r in api.requests(path=PODS)] == ["GET", "GET", "GET"]


def test_fail_next_plain_has_no_json(api: StandInApiServer) -> None:
    api.fail_next(1, 500, plain=True)
    req = urllib.request.Request(api.url + PODS)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    with err.value:
        assert err.value.code == 500
        assert err.value.headers["Content-Type"] is None


def test_drop_next_resets_the_connection(api: StandInApiServer) -> None:
    api.drop_next(1)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        call(api, "GET", PODS)
    assert call(api, "GET", PODS)[0] == 200


def test_delay(api: StandInApiServer) -> None:
    api.set_delay(0.2)
    started = time.monotonic()
    call(api, "GET", PODS)
    assert time.monotonic() - started >= 0.2


def test_stop_refuses_connections_and_restart_keeps_port_and_objects(
    api: StandInApiServer,
) -> None:
    call(api, "POST", PODS, pod("p1"))
    url = api.url
    api.stop()
    with pytest.raises(urllib.error.URLError) as err:
        call(api, "GET", PODS)
    assert isinstance(err.value.reason, ConnectionRefusedError)
    api.restart()
    assert api.url == url
    assert call(api, "GET", f"{PODS}/p1")[0] == 200


def test_stop_cuts_kept_alive_connections(api: StandInApiServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", int(api.url.rsplit(":", 1)[1]), timeout=5)
    try:
        conn.request("GET", PODS, headers={"Authorization": f"Bearer {TOKEN}"})
        assert conn.getresponse().read()
        api.stop()
        with pytest.raises((OSError, http.client.HTTPException)):
            conn.request("GET", PODS, headers={"Authorization": f"Bearer {TOKEN}"})
            conn.getresponse()
    finally:
        conn.close()


def test_events_are_stored_and_checked_like_the_real_api(api: StandInApiServer) -> None:
    event: dict[str, Any] = {
        "metadata": {"name": "p1.17"},
        "involvedObject": {"kind": "Pod", "namespace": "ns1", "name": "p1"},
        "reason": "AddedInterface",
        "message": "Add eth0",
        "type": "Normal",
    }
    assert call(api, "POST", "/api/v1/namespaces/ns1/events", event)[0] == 201
    assert [e["reason"] for e in api.events] == ["AddedInterface"]
    wrong = {**event, "metadata": {"name": "p1.18"}}
    wrong["involvedObject"] = {**event["involvedObject"], "namespace": "ns2"}
    status, body = call(api, "POST", "/api/v1/namespaces/ns1/events", wrong)
    assert (status, body["reason"]) == (422, "Invalid")


def test_kubeconfig_names_the_server_and_token(api: StandInApiServer, tmp_path: Any) -> None:
    path = api.write_kubeconfig(tmp_path / "kc")
    conf = json.loads(path.read_text())
    assert conf["clusters"][0]["cluster"]["server"] == api.url
    assert conf["users"][0]["user"]["token"] == TOKEN
    # The port really is the server's.
    with socket.create_connection(("127.0.0.1", int(api.url.rsplit(":", 1)[1])), timeout=2):
        pass
