"""pymultus's Kubernetes client layer against the stand-in API server over HTTP: every test
of the ``kube`` fixture runs with both clients, lightkube's (the daemon) and ``k8s.lite`` (the
thin plugin), which must behave the same.

The stand-in keeps the real server's rules, so these pin what pymultus sends and how it reacts:
raw-dict reads, None for 404, the status write (one merge PATCH of pods/status with a uid
precondition; GET + PUT retried on 409 when PATCH is forbidden), core/v1 Events shaped like
client-go's, and API-server trouble turned into the right CNI errors.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import lightkube
import pytest
from lightkube import ApiError
from tests.support.apiserver import LoggedRequest, StandInApiServer
from tests.support.golden import golden_dir

from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError
from pymultus.k8s.calls import ApiCalls
from pymultus.k8s.client import (
    KubeApi,
    is_transient,
    load_client,
    map_api_error,
    nad_not_found_text,
)
from pymultus.k8s.lite import LiteApi
from pymultus.k8s.lite_conf import load_endpoint
from pymultus.k8s.refs import NadRef, PodRef
from pymultus.k8s.resources import NetworkAttachmentDefinition, RawPod

NS = "golden"
STATUS_KEY = "k8s.v1.cni.cncf.io/network-status"
_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer() as server:
        yield server


@pytest.fixture
def client(api: StandInApiServer, tmp_path: Path) -> Iterator[lightkube.Client]:
    c = load_client(str(api.write_kubeconfig(tmp_path / "kubeconfig")), timeout=5)
    assert c is not None
    yield c
    c.close()


@pytest.fixture(params=["lightkube", "lite"])
def kube(
    request: pytest.FixtureRequest, api: StandInApiServer, tmp_path: Path
) -> Iterator[ApiCalls]:
    if request.param == "lightkube":
        c = load_client(str(api.write_kubeconfig(tmp_path / "kubeconfig")), timeout=5)
        assert c is not None
        yield KubeApi(c)
        c.close()
        return
    endpoint = load_endpoint(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    assert endpoint is not None
    lite = LiteApi(endpoint, timeout=5, defer_events=False)
    yield lite
    lite.close()


def put_pod(api: StandInApiServer, name: str = "pod-01", **annotations: str) -> dict[str, Any]:
    return api.put_object(
        {
            "kind": "Pod",
            "metadata": {"namespace": NS, "name": name, "annotations": dict(annotations)},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "img"}]},
        }
    )


def put_nad(api: StandInApiServer, name: str, config: str) -> dict[str, Any]:
    return api.put_object(
        {
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"namespace": NS, "name": name},
            "spec": {"config": config},
        }
    )


# --- refs -------------------------------------------------------------------------------------


def test_refs_print_as_namespace_slash_name() -> None:
    assert str(PodRef("ns", "p", uid="u")) == "ns/p"
    assert PodRef("ns", "p") != PodRef("ns", "p", uid="u")
    assert str(NadRef("ns", "n")) == "ns/n"


# --- load_client --------------------------------------------------------------------------------


def test_no_kubeconfig_and_not_in_cluster_means_no_kubernetes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    assert load_client(None) is None
    assert load_client("") is None


@pytest.mark.parametrize(
    "content",
    [
        None,
        "",
        "{not yaml: [",
        "apiVersion: v1\nkind: Config\n",
        '{"clusters": [], "contexts": []}',
        json.dumps(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://198.51.100.1:6443",
                            "certificate-authority": "/nonexistent/ca.crt",
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        ),
    ],
    ids=["missing", "empty", "garbage", "no-clusters", "no-current-context", "missing-ca-file"],
)
@pytest.mark.parametrize("loader", ["lightkube", "lite"])
def test_unusable_kubeconfig_is_a_config_error(
    tmp_path: Path, content: str | None, loader: str
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidConfigError) as err:
        if loader == "lite":
            load_endpoint(str(path), cache_dir=str(tmp_path / "cache"))
        else:
            load_client(str(path))
    assert err.value.field == "kubeconfig"
    assert err.value.code == 7
    assert str(path) in err.value.msg


def test_in_cluster_without_service_account_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
        pytest.skip("this machine has a real service account")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "198.51.100.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(InvalidConfigError) as err:
        load_client(None)
    assert err.value.field == "kubeconfig"


def test_client_uses_the_kubeconfig_server_and_timeout(
    api: StandInApiServer, client: lightkube.Client
) -> None:
    assert client.config.cluster.server == api.url
    assert KubeApi(client).server == api.url


# --- reads ----------------------------------------------------------------------------------------


def test_get_pod_returns_the_raw_object(api: StandInApiServer, kube: KubeApi) -> None:
    stored = put_pod(api, extra="x")
    got = kube.get_pod(PodRef(NS, "pod-01"))
    assert type(got) is dict
    assert got == stored
    assert [(r.method, r.path) for r in api.request_log] == [
        ("GET", f"/api/v1/namespaces/{NS}/pods/pod-01")
    ]


def test_get_missing_pod_is_none(api: StandInApiServer, kube: KubeApi) -> None:
    assert kube.get_pod(PodRef(NS, "ghost")) is None


def test_get_nad_keeps_the_config_string_byte_for_byte(
    api: StandInApiServer, kube: KubeApi
) -> None:
    config = '{ "cniVersion": "1.0.0",\n  "type": "macvlan", "x-odd": [1, 2.50] }'
    put_nad(api, "mv-b", config)
    nad = kube.get_nad(NS, "mv-b")
    assert nad is not None
    assert nad["spec"]["config"] == config
    assert api.request_log[-1].path == (
        f"/apis/k8s.cni.cncf.io/v1/namespaces/{NS}/network-attachment-definitions/mv-b"
    )


def test_get_missing_nad_is_none_and_the_go_message_is_available(kube: KubeApi) -> None:
    assert kube.get_nad(NS, "missing-x") is None
    golden = _golden_dir() / "06-thin-missing-nad" / "add.stdout"
    if golden.is_file():
        assert json.loads(golden.read_text())["msg"].endswith(nad_not_found_text("missing-x"))


# --- API server trouble ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_try_again_later(
    api: StandInApiServer, kube: KubeApi, status: int
) -> None:
    api.fail_next(1, status)
    with pytest.raises(TryAgainLaterError) as err:
        kube.get_pod(PodRef(NS, "pod-01"))
    assert err.value.code == 11
    assert api.url in err.value.msg
    assert str(status) in err.value.msg


def test_error_without_json_body_is_still_mapped(api: StandInApiServer, kube: KubeApi) -> None:
    api.fail_next(1, 503, plain=True)
    with pytest.raises(TryAgainLaterError):
        kube.get_nad(NS, "x")


def test_connection_reset_is_try_again_later(api: StandInApiServer, kube: KubeApi) -> None:
    api.drop_next(1)
    with pytest.raises(TryAgainLaterError) as err:
        kube.get_pod(PodRef(NS, "pod-01"))
    assert api.url in err.value.msg


def test_api_server_down_is_try_again_later(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api)
    api.stop()
    with pytest.raises(TryAgainLaterError) as err:
        kube.get_pod(PodRef(NS, "pod-01"))
    assert err.value.code == 11
    assert api.url in err.value.msg
    wire = json.loads(err.value.to_json())
    assert wire["code"] == 11
    api.restart()
    assert kube.get_pod(PodRef(NS, "pod-01")) is not None


@pytest.mark.parametrize(("status", "words"), [(401, "credentials"), (403, "RBAC")])
def test_auth_failures_are_not_transient(
    api: StandInApiServer, kube: KubeApi, status: int, words: str
) -> None:
    api.fail_next(1, status)
    with pytest.raises(CniError) as err:
        kube.get_pod(PodRef(NS, "pod-01"))
    assert not isinstance(err.value, TryAgainLaterError)
    assert err.value.code == 999
    assert words in err.value.msg
    assert api.url in err.value.msg


def test_wrong_token_is_unauthorized(api: StandInApiServer, kube: KubeApi) -> None:
    api.token = "rotated"
    with pytest.raises(CniError, match="rejected the credentials"):
        kube.get_nad(NS, "x")


def test_tls_verification_failure_is_not_transient() -> None:
    exc = httpx2.ConnectError("certificate verify failed")
    exc.__cause__ = ssl.SSLCertVerificationError("self-signed certificate")
    assert not is_transient(exc)
    mapped = map_api_error(exc, server="https://198.51.100.1:6443", action="get pod a/b")
    assert type(mapped) is CniError
    assert "https://198.51.100.1:6443" in mapped.msg


def test_timeout_is_transient() -> None:
    mapped = map_api_error(httpx2.ReadTimeout("slow"), server="http://x", action="get pod a/b")
    assert isinstance(mapped, TryAgainLaterError)
    assert "timed out" in mapped.msg


def test_slow_server_times_out_as_try_again_later(api: StandInApiServer, tmp_path: Path) -> None:
    client = load_client(str(api.write_kubeconfig(tmp_path / "kc")), timeout=0.2)
    assert client is not None
    api.set_delay(1.0)
    try:
        with pytest.raises(TryAgainLaterError, match="timed out"):
            KubeApi(client).get_pod(PodRef(NS, "pod-01"))
    finally:
        api.set_delay(0)
        client.close()


# --- get_pod_with_retry (behaviour row 50) --------------------------------------------------------


def test_retry_rides_out_transient_failures(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api)
    api.fail_next(2, 503)
    pod = kube.get_pod_with_retry(PodRef(NS, "pod-01"), attempts=5, interval=0.01)
    assert pod is not None
    assert len(api.requests("GET")) == 3


def test_retry_gives_up_with_try_again_later(api: StandInApiServer, kube: KubeApi) -> None:
    api.fail_next(10, 500)
    with pytest.raises(TryAgainLaterError):
        kube.get_pod_with_retry(PodRef(NS, "pod-01"), attempts=3, interval=0.01)
    assert len(api.requests("GET")) == 3


def test_retry_does_not_retry_not_found_unless_asked(api: StandInApiServer, kube: KubeApi) -> None:
    assert kube.get_pod_with_retry(PodRef(NS, "pod-01"), attempts=5, interval=0.01) is None
    assert len(api.requests("GET")) == 1


def test_retry_on_not_found_when_asked(api: StandInApiServer, kube: KubeApi) -> None:
    def create_on_third(req: LoggedRequest) -> None:
        if len(api.requests("GET")) == 3:
            put_pod(api)

    api.on_request = create_on_third
    pod = kube.get_pod_with_retry(
        PodRef(NS, "pod-01"), attempts=5, interval=0.01, retry_not_found=True
    )
    assert pod is not None
    assert len(api.requests("GET")) == 3
    api.on_request = None
    assert (
        kube.get_pod_with_retry(PodRef(NS, "x"), attempts=2, interval=0, retry_not_found=True)
        is None
    )


def test_retry_does_not_retry_forbidden(api: StandInApiServer, kube: KubeApi) -> None:
    api.fail_next(3, 403)
    with pytest.raises(CniError, match="RBAC"):
        kube.get_pod_with_retry(PodRef(NS, "pod-01"), attempts=3, interval=0.01)
    assert len(api.requests("GET")) == 1


# --- status write -------------------------------------------------------------------------------


STATUS_PATH = f"/api/v1/namespaces/{NS}/pods/pod-01/status"


def test_status_write_is_one_merge_patch_with_a_uid_precondition(
    api: StandInApiServer, kube: KubeApi
) -> None:
    stored = put_pod(api, keep="me")
    uid = stored["metadata"]["uid"]
    assert kube.set_pod_annotation_status(PodRef(NS, "pod-01"), STATUS_KEY, "[]", expected_uid=uid)
    after = api.get_object("pods", NS, "pod-01")
    assert after is not None
    assert after["metadata"]["annotations"] == {"keep": "me", STATUS_KEY: "[]"}
    assert after["spec"] == stored["spec"]
    assert [(r.method, r.path) for r in api.request_log] == [("PATCH", STATUS_PATH)]
    [patch] = api.request_log
    assert patch.content_type == "application/merge-patch+json"
    assert patch.json() == {"metadata": {"annotations": {STATUS_KEY: "[]"}, "uid": uid}}


def test_a_concurrent_update_survives_the_patch(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api)

    # Someone else (kubelet) updates the pod just before our write lands.
    api.on_request = lambda req: _kubelet_labels(api)
    assert kube.set_pod_annotation_status(PodRef(NS, "pod-01"), STATUS_KEY, "[]")
    assert [r.method for r in api.request_log] == ["PATCH"]
    _assert_both_writes_kept(api)


def _kubelet_labels(api: StandInApiServer) -> None:
    current = api.get_object("pods", NS, "pod-01")
    assert current is not None
    current["metadata"]["labels"] = {"by": "kubelet"}
    api.put_object(current)


def _assert_both_writes_kept(api: StandInApiServer) -> None:
    after = api.get_object("pods", NS, "pod-01")
    assert after is not None
    assert after["metadata"]["labels"] == {"by": "kubelet"}  # the other write survived
    assert after["metadata"]["annotations"][STATUS_KEY] == "[]"


def test_status_write_for_a_missing_pod_is_false(api: StandInApiServer, kube: KubeApi) -> None:
    assert not kube.set_pod_annotation_status(PodRef(NS, "ghost"), STATUS_KEY, "[]")
    assert [r.method for r in api.request_log] == ["PATCH"]


def test_status_write_skips_a_pod_with_another_uid(api: StandInApiServer, kube: KubeApi) -> None:
    """A pod recreated under the same name refuses the PATCH (uid precondition); the GET
    that follows confirms it is not ours, and nothing is written."""
    stored = put_pod(api)
    assert not kube.set_pod_annotation_status(
        PodRef(NS, "pod-01"), STATUS_KEY, "[]", expected_uid="not-the-uid"
    )
    assert [r.method for r in api.request_log] == ["PATCH", "GET"]
    assert api.get_object("pods", NS, "pod-01") == stored


def test_status_write_for_static_pod_ignores_uid(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api, **{"kubernetes.io/config.source": "file"})
    assert kube.set_pod_annotation_status(
        PodRef(NS, "pod-01"), STATUS_KEY, "[]", expected_uid="kubelet-side-uid"
    )
    assert [r.method for r in api.request_log] == ["PATCH", "GET", "PUT"]
    after = api.get_object("pods", NS, "pod-01")
    assert after is not None
    assert after["metadata"]["annotations"][STATUS_KEY] == "[]"


def test_status_write_api_down_is_try_again_later(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api)
    api.fail_next(1, 503)
    with pytest.raises(TryAgainLaterError):
        kube.set_pod_annotation_status(PodRef(NS, "pod-01"), STATUS_KEY, "[]")


# --- status write: Go Multus's GET + PUT, when PATCH is forbidden ---------------------------------


def _forbid_patch(api: StandInApiServer) -> None:
    """A role like Go Multus's: ``update`` on pods/status, no ``patch``."""

    def refuse(req: LoggedRequest) -> None:
        if req.method == "PATCH":
            api.fail_next(1, 403)

    api.on_request = refuse


def test_forbidden_patch_falls_back_to_get_put_and_remembers(
    api: StandInApiServer, kube: KubeApi
) -> None:
    stored = put_pod(api, keep="me")
    _forbid_patch(api)
    ref = PodRef(NS, "pod-01")
    assert kube.set_pod_annotation_status(ref, STATUS_KEY, "[1]")
    assert kube.set_pod_annotation_status(ref, STATUS_KEY, "[2]")
    calls = [(r.method, r.path) for r in api.request_log]
    get = ("GET", f"/api/v1/namespaces/{NS}/pods/pod-01")
    assert calls == [("PATCH", STATUS_PATH), get, ("PUT", STATUS_PATH), get, ("PUT", STATUS_PATH)]
    sent = api.request_log[2].json()
    assert sent["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    after = api.get_object("pods", NS, "pod-01")
    assert after is not None
    assert after["metadata"]["annotations"] == {"keep": "me", STATUS_KEY: "[2]"}


def test_get_put_retries_after_a_concurrent_update(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api)
    raced = threading.Event()

    def concurrent_writer(req: LoggedRequest) -> None:
        if req.method == "PATCH":
            api.fail_next(1, 403)
        # Someone else (kubelet) updates the pod between our GET and our first PUT.
        if req.method == "PUT" and not raced.is_set():
            raced.set()
            _kubelet_labels(api)

    api.on_request = concurrent_writer
    assert kube.set_pod_annotation_status(PodRef(NS, "pod-01"), STATUS_KEY, "[]")
    assert [r.method for r in api.request_log] == ["PATCH", "GET", "PUT", "GET", "PUT"]
    _assert_both_writes_kept(api)


def test_get_put_gives_up_after_five_conflicts(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api)

    def always_race(req: LoggedRequest) -> None:
        if req.method == "PATCH":
            api.fail_next(1, 403)
        if req.method == "PUT":
            current = api.get_object("pods", NS, "pod-01")
            assert current is not None
            current["metadata"]["labels"] = {"n": str(len(api.request_log))}
            api.put_object(current)

    api.on_request = always_race
    with pytest.raises(CniError, match="conflict"):
        kube.set_pod_annotation_status(PodRef(NS, "pod-01"), STATUS_KEY, "[]")
    assert len(api.requests("PUT")) == 5


def test_get_put_when_pod_vanishes_before_put_is_false(
    api: StandInApiServer, kube: KubeApi
) -> None:
    put_pod(api)

    def delete_first(req: LoggedRequest) -> None:
        if req.method == "PATCH":
            api.fail_next(1, 403)
        if req.method == "PUT":
            api.delete_object("pods", NS, "pod-01")

    api.on_request = delete_first
    assert not kube.set_pod_annotation_status(PodRef(NS, "pod-01"), STATUS_KEY, "[]")
    assert [r.method for r in api.request_log] == ["PATCH", "GET", "PUT"]


def test_status_write_forbidden_both_ways_names_rbac(api: StandInApiServer, kube: KubeApi) -> None:
    put_pod(api)

    def refuse(req: LoggedRequest) -> None:
        if req.method in ("PATCH", "PUT"):
            api.fail_next(1, 403)

    api.on_request = refuse
    with pytest.raises(CniError, match="RBAC"):
        kube.set_pod_annotation_status(PodRef(NS, "pod-01"), STATUS_KEY, "[]")


# --- events ---------------------------------------------------------------------------------------


def _golden_dir() -> Path:
    return golden_dir()


def test_event_is_shaped_like_go_multus(api: StandInApiServer, kube: KubeApi) -> None:
    stored = put_pod(api)
    ref = PodRef(NS, "pod-01", uid=stored["metadata"]["uid"])
    message = "Add net1 [198.18.1.2/24] from golden/br-a"
    kube.emit_event(ref, type_="Normal", reason="AddedInterface", message=message)
    (event,) = api.events
    assert re.fullmatch(r"pod-01\.[0-9a-f]+", event["metadata"]["name"])
    assert event["involvedObject"] == {
        "kind": "Pod",
        "namespace": NS,
        "name": "pod-01",
        "uid": ref.uid,
        "apiVersion": "v1",
    }
    assert event["firstTimestamp"] == event["lastTimestamp"]
    projected = {k: event[k] for k in ("type", "reason", "message", "source", "count")}
    projected["reportingComponent"] = event["reportingComponent"]
    golden = _golden_dir() / "01-thin-comma-annotation" / "events.json"
    expected = {
        "type": "Normal",
        "reason": "AddedInterface",
        "message": message,
        "source": {"component": "multus"},
        "reportingComponent": "multus",
        "count": 1,
    }
    if golden.is_file():
        expected = next(e for e in json.loads(golden.read_text()) if e["message"] == message)
    assert projected == expected
    assert api.request_log[-1].path == f"/api/v1/namespaces/{NS}/events"


def test_event_failure_is_swallowed_and_counted(api: StandInApiServer, kube: KubeApi) -> None:
    api.fail_next(1, 500)
    kube.emit_event(PodRef(NS, "p"), type_="Warning", reason="NoNetworkFound", message="m")
    assert kube.events_failed == 1
    api.stop()
    kube.emit_event(PodRef(NS, "p"), type_="Warning", reason="NoNetworkFound", message="m")
    assert kube.events_failed == 2


def test_event_for_a_very_long_pod_name_lets_the_server_name_it(
    api: StandInApiServer, kube: KubeApi
) -> None:
    name = "a" * 250
    kube.emit_event(PodRef(NS, name), type_="Normal", reason="R", message="m")
    (event,) = api.events
    assert event["metadata"]["name"].startswith("a" * 200 + ".")
    assert len(event["metadata"]["name"]) <= 253


# --- the resources work for list+watch too ------------------------------------------------


def test_node_scoped_pod_list_and_watch_through_lightkube(
    api: StandInApiServer, client: lightkube.Client
) -> None:
    put_pod(api, name="mine")
    api.put_object(
        {"kind": "Pod", "metadata": {"namespace": NS, "name": "other"}, "spec": {"nodeName": "b"}}
    )
    pods = client.list(RawPod, namespace="*", fields={"spec.nodeName": "node-a"})
    assert [p["metadata"]["name"] for p in pods] == ["mine"]
    listed_at = pods.resourceVersion
    put_pod(api, name="other")  # moves onto node-a: the filtered watch sees ADDED
    api.delete_object("pods", NS, "mine")
    seen = []
    for kind, obj in client.watch(
        RawPod,
        namespace="*",
        fields={"spec.nodeName": "node-a"},
        resource_version=listed_at,
        server_timeout=1,
    ):
        seen.append((kind, obj["metadata"]["name"]))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "other"), ("DELETED", "mine")]
    api.compact()
    with pytest.raises(ApiError) as err:
        next(iter(client.watch(RawPod, namespace=NS, resource_version=listed_at)))
    assert err.value.status.code == 410


def test_nad_list_all_namespaces_through_lightkube(
    api: StandInApiServer, client: lightkube.Client
) -> None:
    put_nad(api, "br-a", "{}")
    api.put_object(
        {
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"namespace": "other", "name": "mv-b"},
            "spec": {"config": "{}"},
        }
    )
    nads = client.list(NetworkAttachmentDefinition, namespace="*")
    assert sorted(n["metadata"]["name"] for n in nads) == ["br-a", "mv-b"]
    assert api.request_log[-1].path == "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"
