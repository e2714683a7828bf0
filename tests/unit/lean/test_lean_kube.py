"""The lean path's Kubernetes client (``plugin.lean.kubeconf``, ``http``, ``kube``) against the
full path's (``k8s.lite_conf``, ``k8s.lite_http``, ``k8s.lite``): the same endpoint from the
same kubeconfig, the same bytes on the wire, the same objects back, the same errors (code and
message) for the status write, and ``Unhandled`` wherever the lean client stops.

Most tests run both clients on the same input and compare what the API server saw (the
stand-in's request log, or the raw bytes a capturing server received).
"""

from __future__ import annotations

import _socket
import _ssl
import base64
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.apiserver import LoggedRequest, StandInApiServer

from pymultus.cni.errors import CniError
from pymultus.k8s import lite_conf
from pymultus.k8s.lite import LiteApi
from pymultus.k8s.lite_conf import Endpoint as LiteEndpoint
from pymultus.k8s.refs import PodRef
from pymultus.plugin.lean import http, kube, kubeconf
from pymultus.plugin.lean.errors import LeanError, Unhandled

TLS = Path(__file__).parents[1] / "k8s" / "tls"
SRC = Path(__file__).parents[3] / "src"
NS = "lean"
UID = "11111111-2222-3333-4444-555555555555"
KEY = "k8s.v1.cni.cncf.io/network-status"
VALUE = '[{\n    "name": "cbr0",\n    "ips": [\n        "10.1.2.3"\n    ],\n    "dns": {}\n}]'
TOKEN = "standin-token"


def lean_of(endpoint: LiteEndpoint) -> kubeconf.Endpoint:
    return kubeconf.Endpoint(**msgspec.structs.asdict(endpoint))


def put_pod(api: StandInApiServer, name: str = "p", **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": NS, "name": name, "uid": UID}
    meta["creationTimestamp"] = "2024-01-01T00:00:00Z"
    if annotations:
        meta["annotations"] = annotations
    return api.put_object({"kind": "Pod", "metadata": meta, "spec": {"nodeName": "n1"}})


def error_of(exc: CniError | LeanError, url: str) -> tuple[int, str, str]:
    code = exc.error_code if isinstance(exc, CniError) else exc.code
    return code, exc.msg.replace(url, "URL"), exc.details


# --- kubeconfig: the same endpoint as lite_conf ------------------------------------------------


def _kubeconfig(
    server: object, cluster: dict[str, Any], user: dict[str, Any] | None
) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": "c"}
    if user is not None:
        context["user"] = "u"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [{"name": "x", "context": context}],
        "current-context": "x",
    }


def lite_or_none(path: str, cache_dir: str = "") -> LiteEndpoint | None:
    """lite_conf's endpoint, None when it has none (error or exec credentials)."""
    try:
        return lite_conf.load_endpoint(path, cache_dir=cache_dir)
    except CniError:
        return None


def lean_or_none(path: str, cache_dir: str = "") -> dict[str, Any] | None:
    try:
        return kubeconf.load_endpoint(path, cache_dir).fields()
    except Unhandled:
        return None


_PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nx\n").decode()
_values = st.just("") | st.sampled_from(
    ["ca.crt", "token", "missing", "~/x", "/abs", 0, 1, True, None]
)
_datas = st.just("") | st.sampled_from([_PEM, "@@@", _PEM[:-1], "w6k=", "gA==", 5, None])
_cluster: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "certificate-authority": _values,
        "certificate-authority-data": _datas,
        "insecure-skip-tls-verify": st.sampled_from([True, False, "false", 0, None]),
        "tls-server-name": st.sampled_from(["", "api.example", 7, None]),
        "proxy-url": st.sampled_from(["", "http://proxy:3128"]),
        "extensions": st.just([]),
    },
)
_user: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "token": st.sampled_from(["", "t0k", 12, None]),
        "tokenFile": _values,
        "client-certificate": _values,
        "client-key": _values,
        "client-certificate-data": _datas,
        "client-key-data": _datas,
        "username": st.sampled_from(["", "alice", None]),
        "password": st.sampled_from(["", "secret", 3]),
        "exec": st.sampled_from([None, {}, {"command": "aws"}]),
        "auth-provider": st.sampled_from([None, {"name": "gcp"}]),
    },
)
_servers = st.sampled_from(["https://h:6443", "http://h/", "https://h:6443/prefix//"]) | (
    st.sampled_from(["ftp://h", "", 5, None])
)


def _mangle(doc: dict[str, Any], how: int) -> dict[str, Any]:
    """Shapes lite_conf resolves in its own way: the lean reader must agree or step back."""
    if how == 1:
        doc["current-context"] = ""
    elif how == 2:
        doc["contexts"].insert(0, {"name": "x", "context": {"cluster": "nope"}})
    elif how == 3:
        doc["clusters"].insert(0, {"name": "c", "cluster": "not a mapping"})
    elif how == 4:
        doc["clusters"] = {"c": doc["clusters"][0]}
    elif how == 5:
        del doc["contexts"][0]["context"]["cluster"]
        del doc["clusters"][0]["name"]  # None == None: lite_conf takes it
    elif how == 6:
        doc["users"].append({"name": "u", "user": {"token": "second"}})  # the first wins
    elif how == 7:
        doc["contexts"][0]["name"] = 5
        doc["current-context"] = 5
    elif how == 8:
        doc["users"] = 3
    return doc


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    server=_servers,
    cluster=_cluster,
    user=st.one_of(st.none(), _user),
    how=st.integers(0, 9),
)
def test_json_kubeconfig_gives_lite_confs_endpoint(
    tmp_path: Path, server: object, cluster: dict[str, Any], user: dict[str, Any] | None, how: int
) -> None:
    for name in ("ca.crt", "token", "abs"):
        (tmp_path / name).write_text("x")
    doc = _mangle(_kubeconfig(server, cluster, user), how)
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc))
    full = lite_or_none(str(path))
    lean = lean_or_none(str(path))
    if lean is not None:
        assert full is not None and lean == msgspec.structs.asdict(full)
    elif full is not None:  # only what the lean reader leaves on purpose
        assert doc["clusters"][0]["cluster"].get("proxy-url")


def test_json_kubeconfig_written_by_the_stand_in(tmp_path: Path) -> None:
    with StandInApiServer(tls=True) as api:
        path = str(api.write_kubeconfig(tmp_path / "kc"))
        lite = lite_conf.load_endpoint(path)
        assert lite is not None
        assert kubeconf.load_endpoint(path, "").fields() == msgspec.structs.asdict(lite)


def test_yaml_kubeconfig_is_read_from_lite_confs_cache(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    doc = _kubeconfig("https://198.51.100.7:6443", {"insecure-skip-tls-verify": True}, {})
    doc["users"][0]["user"] = {"tokenFile": "token"}
    path = tmp_path / "kc.yaml"
    path.write_text(yaml.safe_dump(doc))
    cache = str(tmp_path / "cache")

    with pytest.raises(Unhandled, match="cached"):
        kubeconf.load_endpoint(str(path), cache)  # the full path parses it first
    full = lite_conf.load_endpoint(str(path), cache_dir=cache)
    assert full is not None
    assert kubeconf.load_endpoint(str(path), cache).fields() == msgspec.structs.asdict(full)
    with pytest.raises(Unhandled):
        kubeconf.load_endpoint(str(path), "")  # no cache directory: the full path parses

    doc["clusters"][0]["cluster"]["server"] = "https://198.51.100.8:6443"
    path.write_text(yaml.safe_dump(doc))  # new content, stale cache
    with pytest.raises(Unhandled):
        kubeconf.load_endpoint(str(path), cache)
    lite_conf.load_endpoint(str(path), cache_dir=cache)
    assert kubeconf.load_endpoint(str(path), cache).server == "https://198.51.100.8:6443"

    [cached] = Path(cache).iterdir()
    os.chmod(cached, 0o644)  # readable by others: lite_conf does not trust it, nor do we
    assert lite_conf._read_cache(str(cached), [0]) is None
    with pytest.raises(Unhandled, match="not ours"):
        kubeconf.load_endpoint(str(path), cache)


def test_yaml_kubeconfig_with_exec_credentials_stays_with_the_full_path(tmp_path: Path) -> None:
    doc = _kubeconfig("https://198.51.100.7:6443", {}, {"exec": {"command": "aws"}})
    path = tmp_path / "kc.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert lite_conf.load_endpoint(str(path), cache_dir=str(tmp_path)) is None  # cached as null
    assert list(tmp_path.glob(".kubeconfig-*"))
    with pytest.raises(Unhandled, match="exec"):
        kubeconf.load_endpoint(str(path), str(tmp_path))


@pytest.mark.parametrize(
    "endpoint",
    [
        {"server": "https://h", "insecure": "yes"},
        {"server": "https://h", "color": "blue"},
        {"token": "t"},
        {"server": 5},
    ],
)
def test_a_cache_msgspec_would_refuse_is_not_used(tmp_path: Path, endpoint: dict[str, Any]) -> None:
    path = tmp_path / "kc.yaml"
    path.write_text("apiVersion: v1\n")
    info = path.stat()
    key = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns]
    cache = lite_conf._cache_path(str(tmp_path), str(path))
    fd = os.open(cache, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps({"key": key, "endpoint": endpoint}).encode())
    os.close(fd)
    assert lite_conf._read_cache(cache, key) is None
    with pytest.raises(Unhandled):
        kubeconf.load_endpoint(str(path), str(tmp_path))
    good = {"key": key, "endpoint": {"server": "https://h", "insecure": True}}
    Path(cache).write_text(json.dumps(good))
    assert kubeconf.load_endpoint(str(path), str(tmp_path)).fields() == msgspec.structs.asdict(
        LiteEndpoint(server="https://h", insecure=True)
    )


def test_in_cluster_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lite_conf, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    monkeypatch.setattr(kubeconf, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(Unhandled):
        kubeconf.load_endpoint("", "")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "2001:db8::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(Unhandled):
        kubeconf.load_endpoint("", "")  # no token and CA files yet
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("c")
    full = lite_conf.load_endpoint(None)
    assert full is not None
    assert kubeconf.load_endpoint("", "").fields() == msgspec.structs.asdict(full)


# --- reads ----------------------------------------------------------------------------------------


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer() as server:
        put_pod(server)
        yield server


def _clients(url: str, **fields: Any) -> tuple[LiteApi, kube.Api]:
    endpoint = LiteEndpoint(server=url, **fields)
    return LiteApi(endpoint, timeout=5), kube.Api(lean_of(endpoint), 5)


def test_reads_give_lites_objects_and_none_for_404(api: StandInApiServer) -> None:
    nad: dict[str, Any] = {
        "kind": "NetworkAttachmentDefinition",
        "apiVersion": "k8s.cni.cncf.io/v1",
    }
    nad["metadata"] = {"namespace": NS, "name": "br"}
    nad["spec"] = {"config": '{"cniVersion":"1.0.0","type":"bridge","x":1.5e3,"<&>":"\\u2028"}'}
    api.put_object(nad)
    lite, lean = _clients(api.url, token=TOKEN)
    try:
        assert lean.get_pod(NS, "p") == lite.get_pod(PodRef(NS, "p"))
        assert lean.get_nad(NS, "br") == lite.get_nad(NS, "br")
        assert lean.get_pod(NS, "gone") is None
        assert lean.get_nad(NS, "a b/c") is None
    finally:
        lite.close()
        lean.close()
    paths = [r.path for r in api.request_log]
    assert paths[0] == paths[1] and paths[2] == paths[3]  # lean's and lite's: the same
    assert (
        paths[-1]
        == f"/apis/k8s.cni.cncf.io/v1/namespaces/{NS}/network-attachment-definitions/a%20b%2Fc"
    )


@pytest.mark.parametrize(
    "trouble",
    ["401", "403", "503", "503-plain", "reset", "wrong-token", "down"],
)
def test_a_failed_read_is_left_to_the_full_path(api: StandInApiServer, trouble: str) -> None:
    lean = kube.Api(kubeconf.Endpoint(api.url, token=TOKEN), 2)
    if trouble == "reset":
        api.drop_next(1)
    elif trouble == "wrong-token":
        api.token = "rotated"
    elif trouble == "down":
        api.stop()
    else:
        status, _, plain = trouble.partition("-")
        api.fail_next(1, int(status), plain=bool(plain))
    try:
        with pytest.raises(Unhandled, match="GET /api/v1/namespaces/lean/pods/p"):
            lean.get_pod(NS, "p")
    finally:
        lean.close()


def test_token_file_is_read_on_every_request(api: StandInApiServer, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    lean = kube.Api(kubeconf.Endpoint(api.url, token_file=str(token)), 5)
    try:
        assert lean.get_pod(NS, "p") is not None
        api.token = "rotated"
        token.write_text("rotated")
        assert lean.get_pod(NS, "p") is not None
        token.write_text("stale")
        with pytest.raises(Unhandled):
            lean.get_pod(NS, "p")
    finally:
        lean.close()
    assert [r.user for r in api.request_log] == ["standin", "standin", ""]


def test_basic_auth(api: StandInApiServer) -> None:
    api.token = None  # any request is accepted: the raw-bytes test compares the header
    lean = kube.Api(kubeconf.Endpoint(api.url, username="u", password="p:w"), 5)
    try:
        assert lean.get_pod(NS, "p") is not None
    finally:
        lean.close()


def test_a_kept_alive_connection_the_server_closed_is_opened_again(
    api: StandInApiServer,
) -> None:
    lean = kube.Api(kubeconf.Endpoint(api.url, token=TOKEN), 5)
    try:
        assert lean.get_pod(NS, "p") is not None
        first = lean.conn._sock
        assert lean.get_pod(NS, "p") is not None
        assert lean.conn._sock is first  # kept alive
        api.restart()  # cuts every open connection
        assert lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
        assert lean.conn._sock is not first
    finally:
        lean.close()
    assert [r.method for r in api.request_log] == ["GET", "GET", "PATCH"]


# --- the status write: the same requests and the same errors as k8s.lite -----------------------


def _fail_method(api: StandInApiServer, methods: dict[str, int], times: int = 99) -> None:
    left = dict.fromkeys(methods, times)

    def hook(req: LoggedRequest) -> None:
        if req.method in methods and left[req.method]:
            left[req.method] -= 1
            api.fail_next(1, methods[req.method])

    api.on_request = hook


def _race_puts(api: StandInApiServer) -> None:
    """Every PATCH refused (a role with update only); someone updates the pod before each PUT."""

    def hook(req: LoggedRequest) -> None:
        if req.method == "PATCH":
            api.fail_next(1, 403)
        if req.method == "PUT":
            current = api.get_object("pods", NS, "p")
            assert current is not None
            current["metadata"]["labels"] = {"n": str(len(api.request_log))}
            api.put_object(current)

    api.on_request = hook


def _vanish_before_put(api: StandInApiServer) -> None:
    def hook(req: LoggedRequest) -> None:
        if req.method == "PATCH":
            api.fail_next(1, 403)
        if req.method == "PUT":
            api.delete_object("pods", NS, "p")

    api.on_request = hook


def _replace_pod(
    api: StandInApiServer, uid: str, annotations: dict[str, str] | None = None
) -> None:
    """The pod deleted and created again under the same name (another uid)."""
    api.delete_object("pods", NS, "p")
    meta = {"namespace": NS, "name": "p", "uid": uid, "creationTimestamp": "2024-01-01T00:00:00Z"}
    api.put_object({"kind": "Pod", "metadata": {**meta, "annotations": annotations or {}}})


SCENARIOS: dict[str, Callable[[StandInApiServer], Any]] = {
    "patch": lambda api: None,
    "patch-keeps-other-annotations": lambda api: put_pod(api, keep="me"),
    "patch-403-get-put": lambda api: _fail_method(api, {"PATCH": 403}),
    "patch-409-get-put": lambda api: api.fail_next(1, 409),
    "patch-422-get-put": lambda api: api.fail_next(1, 422),
    "pod-gone": lambda api: api.delete_object("pods", NS, "p"),
    "other-uid": lambda api: _replace_pod(api, "other"),
    "static-pod": lambda api: _replace_pod(api, "mirror", {kube.CONFIG_SOURCE_ANNOTATION: "file"}),
    "patch-503": lambda api: api.fail_next(1, 503),
    "patch-500-plain": lambda api: api.fail_next(1, 500, plain=True),
    "patch-429": lambda api: api.fail_next(1, 429),
    "patch-401": lambda api: api.fail_next(1, 401),
    "patch-400": lambda api: api.fail_next(1, 400),
    "patch-418-plain": lambda api: api.fail_next(1, 418, plain=True),
    "wrong-token": lambda api: setattr(api, "token", "rotated"),
    "reset": lambda api: api.drop_next(1),
    "forbidden-both-ways": lambda api: _fail_method(api, {"PATCH": 403, "PUT": 403}),
    "get-put-get-503": lambda api: _fail_method(api, {"PATCH": 403, "GET": 503}),
    "get-put-put-500": lambda api: _fail_method(api, {"PATCH": 403, "PUT": 500}),
    "get-put-conflict-once": lambda api: _fail_method(api, {"PATCH": 403, "PUT": 409}, 1),
    "get-put-conflict-always": _race_puts,
    "get-put-pod-vanishes": _vanish_before_put,
}


def _write_status(client: str, setup: Callable[[StandInApiServer], Any]) -> Any:
    """One status write by ``client`` on a fresh stand-in: outcome, requests, the pod after."""
    with StandInApiServer() as api:
        put_pod(api)
        setup(api)
        endpoint = LiteEndpoint(server=api.url, token=TOKEN)
        outcome: Any
        if client == "lite":
            lite = LiteApi(endpoint, timeout=5)
            try:
                outcome = lite.set_pod_annotation_status(
                    PodRef(NS, "p", UID), KEY, VALUE, expected_uid=UID
                )
            except CniError as exc:
                outcome = error_of(exc, api.url)
            finally:
                lite.close()
        else:
            lean = kube.Api(lean_of(endpoint), 5)
            try:
                outcome = lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
            except LeanError as exc:
                outcome = error_of(exc, api.url)
            finally:
                lean.close()
        api.on_request = None
        log = [(r.method, r.path, r.query, r.body, r.content_type) for r in api.request_log]
        return outcome, log, api.get_object("pods", NS, "p")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_status_write_is_lites(scenario: str) -> None:
    lite = _write_status("lite", SCENARIOS[scenario])
    lean = _write_status("lean", SCENARIOS[scenario])
    assert lean == lite
    assert lean[1]  # (something was sent)


def test_status_write_errors_are_the_full_paths(api: StandInApiServer) -> None:
    """A few outcomes spelled out (the differential test above compares all of them)."""
    lean = kube.Api(kubeconf.Endpoint(api.url, token=TOKEN), 5)
    where = f"set annotation {KEY} on pod {NS}/p: Kubernetes API server {api.url}"
    try:
        api.fail_next(1, 503)
        with pytest.raises(LeanError) as err:
            lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
        assert (err.value.code, err.value.msg) == (
            11,
            f"{where} is not available: 503 ServiceUnavailable: injected failure "
            "(503 ServiceUnavailable)",
        )
        api.fail_next(1, 401)
        with pytest.raises(LeanError) as err:
            lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
        assert (err.value.code, err.value.msg) == (
            999,
            f"{where} rejected the credentials: 401 Unauthorized: injected failure "
            "(401 Unauthorized)",
        )
        _race_puts(api)
        with pytest.raises(LeanError) as err:
            lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
        assert (err.value.code, err.value.msg) == (
            999,
            f"set annotation {KEY} on pod {NS}/p: still conflicting after 5 tries",
        )
        assert not lean.status_patch  # the 403 is remembered: GET + PUT from now on
    finally:
        lean.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _both_fail(url: str, timeout: float, **fields: Any) -> tuple[Any, Any]:
    endpoint = LiteEndpoint(server=url, **fields)
    lite = LiteApi(endpoint, timeout=timeout)
    lean = kube.Api(lean_of(endpoint), timeout)
    try:
        with pytest.raises(CniError) as full:
            lite.set_pod_annotation_status(PodRef(NS, "p", UID), KEY, VALUE, expected_uid=UID)
        with pytest.raises(LeanError) as ours:
            lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
    finally:
        lite.close()
        lean.close()
    return error_of(full.value, url), error_of(ours.value, url)


def test_unreachable_server_is_try_again_later() -> None:
    full, ours = _both_fail(f"http://127.0.0.1:{_free_port()}", 2)
    assert ours == full
    assert ours[0] == 11 and "Connection refused" in ours[1]


def test_a_slow_server_times_out_as_try_again_later(api: StandInApiServer) -> None:
    api.set_delay(0.6)
    try:
        full, ours = _both_fail(api.url, 0.2, token=TOKEN)
    finally:
        api.set_delay(0)
    assert ours == full
    assert ours[0] == 11 and ours[1].endswith("is not available: timed out (TimeoutError)")


# --- raw bytes: what lite_http sends, byte for byte ---------------------------------------------


class RawServer:
    """Keeps the raw bytes of every request and answers each with ``reply(request)``."""

    def __init__(self, reply: Callable[[bytes], bytes]) -> None:
        self.reply = reply
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                while len(data) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                request = head + b"\r\n\r\n" + data[:length]
                data = data[length:]
                self.requests.append(request)
                answer = self.reply(request)
                conn.sendall(answer)
                if b"Connection: close" in answer:
                    return

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _json_reply(status: int, obj: Any, extra: str = "") -> bytes:
    body = json.dumps(obj).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}"
    return head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body


def _canned(request: bytes) -> bytes:
    """A pod for GETs, 403 for the second PATCH (so GET + PUT follow), 201 for events."""
    line = request.split(b"\r\n")[0]
    if line.startswith(b"PATCH") and b"value-2" in request:
        return _json_reply(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})
    if line.startswith(b"POST"):
        return _json_reply(201, {"kind": "Event"})
    pod = {"kind": "Pod", "metadata": {"name": "p", "uid": UID, "annotations": {"a": "<&>"}}}
    pod["spec"] = {"x": 1e20, "y": [0.5, -0.0, 3], "z": "é\u2028\x01"}
    return _json_reply(200, pod)


@pytest.mark.parametrize(
    "auth",
    [{"token": TOKEN}, {"username": "u", "password": "p"}, {}, {"token_file": "FILE"}],
    ids=["token", "basic", "none", "token-file"],
)
def test_request_bytes_are_those_of_lite_http(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, auth: dict[str, Any]
) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_123_456_789)
    if auth.get("token_file"):
        (tmp_path / "token").write_text(" rotating \n")
        auth = {"token": "ignored", "token_file": str(tmp_path / "token")}  # the file wins
    server = RawServer(_canned)
    try:
        endpoint = LiteEndpoint(server=server.url + "/prefix/", **auth)
        lite = LiteApi(endpoint, timeout=5)
        lite.get_pod(PodRef(NS, "p"))
        lite.get_nad("ns é", "n/1")
        lite.set_pod_annotation_status(PodRef(NS, "p", UID), KEY, "value-1", expected_uid=UID)
        lite.set_pod_annotation_status(PodRef(NS, "p", UID), KEY, "value-2", expected_uid="")
        lite.emit_event(PodRef(NS, "p", UID), type_="Normal", reason="R", message="m <&> é")
        lite.send_events()
        lite.close()
        full, server.requests = server.requests, []

        lean = kube.Api(lean_of(endpoint), 5)
        lean.get_pod(NS, "p")
        lean.get_nad("ns é", "n/1")
        lean.set_annotation_status(NS, "p", KEY, "value-1", UID)
        lean.set_annotation_status(NS, "p", KEY, "value-2", "")
        lean.keep_event(NS, "p", UID, type_="Normal", reason="R", message="m <&> é")
        assert lean.send_events() == 0
        lean.close()
    finally:
        server.close()
    assert len(full) == 7
    if "token_file" in auth:
        assert b"\r\nAuthorization: Bearer rotating\r\n" in full[0]
    assert server.requests == full


def _reply_with(*answers: bytes) -> Callable[[bytes], bytes]:
    left = list(answers)
    return lambda request: left.pop(0) if left else _canned(request)


BODY = b'{"kind":"Pod","metadata":{"name":"p"}}'


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"a;ext=1\r\n"
        + BODY[:10]
        + b"\r\n%x\r\n" % (len(BODY) - 10)
        + BODY[10:]
        + b"\r\n0\r\nX-Trailer: y\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY,
        b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n" + BODY,
        b"HTTP/1.1 200 OK\nContent-Length: %d\n\n" % len(BODY) + BODY,
    ],
    ids=["chunked", "connection-close", "until-eof", "bare-newlines"],
)
def test_replies_are_framed_as_lite_http_does(answer: bytes) -> None:
    server = RawServer(_reply_with(answer, answer))
    try:
        endpoint = LiteEndpoint(server=server.url)
        lite, lean = LiteApi(endpoint, timeout=5), kube.Api(lean_of(endpoint), 5)
        try:
            assert lean.get_pod(NS, "p") == lite.get_pod(PodRef(NS, "p")) == json.loads(BODY)
            closing = b"Connection: close" in answer
            assert (lean.conn._sock is None) is (lite.conn._sock is None) is closing
            assert lean.get_pod(NS, "p") is not None  # the canned pod, on whatever connection
            assert len(server.conns) == 2 + closing
        finally:
            lite.close()
            lean.close()
    finally:
        server.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n" + b"[" * 70,
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\nConnection: close\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{}",
        b"SMTP ready\r\n",
        b"HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 400 Bad\r\nContent-Length: 38\r\n\r\n"
        + b'{"kind":"Status","code":400,"message":"m"}'[:38],
    ],
    ids=[
        "not-json",
        "not-an-object",
        "half-json",
        "bad-length",
        "negative-length",
        "length-minus-one",
        "bad-chunk",
        "short-body",
        "not-http",
        "409-no-body",
        "400-status",
    ],
)
def test_a_broken_reply_to_the_status_write_is_lites_error(answer: bytes) -> None:
    outcomes = []
    for client in ("lite", "lean"):
        server = RawServer(_reply_with(answer, answer, answer))
        endpoint = LiteEndpoint(server=server.url)
        try:
            if client == "lite":
                lite = LiteApi(endpoint, timeout=2)
                try:
                    out: Any = lite.set_pod_annotation_status(PodRef(NS, "p", UID), KEY, "v")
                except CniError as exc:
                    out = error_of(exc, server.url)
                lite.close()
            else:
                lean = kube.Api(lean_of(endpoint), 2)
                try:
                    out = lean.set_annotation_status(NS, "p", KEY, "v", "")
                except LeanError as exc:
                    out = error_of(exc, server.url)
                lean.close()
        finally:
            server.close()
        outcomes.append((out, [r.split(b"\r\n")[0] for r in server.requests]))
    assert outcomes[1] == outcomes[0]


# --- TLS ------------------------------------------------------------------------------------------


def _tls_server(*, client_ca: bool = False) -> StandInApiServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS / "server.crt", TLS / "server.key")
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(TLS / "ca.crt")
    server = StandInApiServer(tls=ctx, token=None if client_ca else TOKEN)
    put_pod(server)
    return server.start()


@pytest.fixture
def tls_api() -> Iterator[StandInApiServer]:
    server = _tls_server()
    yield server
    server.stop()


@pytest.mark.parametrize("how", ["ca-file", "ca-data", "insecure", "insecure-with-ca"])
def test_https(tls_api: StandInApiServer, how: str) -> None:
    choices: dict[str, dict[str, Any]] = {
        "ca-file": {"ca_file": str(TLS / "ca.crt")},
        "ca-data": {"ca_data": (TLS / "ca.crt").read_text()},
        "insecure": {"insecure": True},
        "insecure-with-ca": {"insecure": True, "ca_file": str(TLS / "other-ca.crt")},
    }
    fields = choices[how]
    lean = kube.Api(kubeconf.Endpoint(tls_api.url, token=TOKEN, **fields), 5)
    try:
        assert lean.get_pod(NS, "p") is not None
        assert lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
        tls_api.restart()  # a TLS connection the server closed is opened again too
        assert lean.get_pod(NS, "p") is not None
    finally:
        lean.close()


def test_the_system_cas_are_loaded_only_without_a_ca(
    tls_api: StandInApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``set_default_verify_paths`` costs ~30 ms: only when verifying without a CA."""
    loaded: list[bool] = []

    class Recording(_ssl._SSLContext):
        def set_default_verify_paths(self) -> None:
            loaded.append(True)
            super().set_default_verify_paths()

    monkeypatch.setattr(_ssl, "_SSLContext", Recording)
    for fields, system in (
        ({"ca_file": str(TLS / "ca.crt")}, False),
        ({"ca_data": (TLS / "ca.crt").read_text()}, False),
        ({"insecure": True}, False),
        ({}, True),  # the system's CAs do not know the test CA
    ):
        loaded.clear()
        lean = kube.Api(kubeconf.Endpoint(tls_api.url, token=TOKEN, **fields), 5)
        try:
            if system:
                with pytest.raises(Unhandled, match="certificate verify failed"):
                    lean.get_pod(NS, "p")
            else:
                assert lean.get_pod(NS, "p") is not None
        finally:
            lean.close()
        assert loaded == [True] * system


@pytest.mark.parametrize(
    "fields",
    [
        {"ca_file": str(TLS / "other-ca.crt")},
        {"ca_file": str(TLS / "ca.crt"), "tls_server_name": "api.example"},
    ],
    ids=["unknown-ca", "hostname-mismatch"],
)
def test_tls_verification_failure_is_lites_error(
    tls_api: StandInApiServer, fields: dict[str, str]
) -> None:
    full, ours = _both_fail(tls_api.url, 5, token=TOKEN, **fields)
    assert ours == full
    assert ours[0] == 999 and "certificate verify failed" in ours[1]
    assert tls_api.requests() == []


@pytest.mark.parametrize("inline", ["", "cert", "key", "both"])
def test_client_certificate(inline: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    seen: list[tuple[int, int]] = []
    real = http._pem_file

    def spy(tmp: str, name: str, data: str, made: list[str]) -> str:
        path = real(tmp, name, data, made)
        seen.append((os.stat(path).st_mode & 0o777, os.stat(tmp).st_mode & 0o777))
        return path

    monkeypatch.setattr(http, "_pem_file", spy)
    server = _tls_server(client_ca=True)
    try:
        cert, key = TLS / "client.crt", TLS / "client.key"
        fields: dict[str, Any] = {
            "cert_data" if inline in ("cert", "both") else "cert_file": str(cert),
            "key_data" if inline in ("key", "both") else "key_file": str(key),
        }
        fields = {k: Path(v).read_text() if k.endswith("_data") else v for k, v in fields.items()}
        endpoint = kubeconf.Endpoint(server.url, ca_file=str(TLS / "ca.crt"), **fields)
        lean = kube.Api(endpoint, 5)
        try:
            assert lean.get_pod(NS, "p") is not None
        finally:
            lean.close()
        assert seen == [(0o600, 0o700)] * {"": 0, "cert": 1, "key": 1, "both": 2}[inline]
        assert list(tmp_path.iterdir()) == []  # the private directory is gone
        # Without a certificate: refused after the handshake, as an alert or a reset (which
        # one is a race, so only the codes are compared).
        full, ours = _both_fail(server.url, 5, ca_file=str(TLS / "ca.crt"))
        assert ours[0] == full[0] == 11
    finally:
        server.stop()


@pytest.mark.parametrize("why", ["no-_SSLContext", "no-weakref-socket"])
def test_without_the_private_ssl_api_ssl_is_used(
    tls_api: StandInApiServer, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    used: list[str] = []
    real = http._tls_by_ssl

    def spy(endpoint: kubeconf.Endpoint, sock: Any, name: str) -> Any:
        used.append(name)
        return real(endpoint, sock, name)

    monkeypatch.setattr(http, "_tls_by_ssl", spy)
    if why == "no-_SSLContext":
        monkeypatch.delattr(_ssl, "_SSLContext")
    else:  # _ssl._wrap_socket refuses a socket it cannot reference weakly: TypeError
        monkeypatch.setattr(http, "_Socket", _socket.socket)
    lean = kube.Api(kubeconf.Endpoint(tls_api.url, token=TOKEN, ca_file=str(TLS / "ca.crt")), 5)
    try:
        assert lean.get_pod(NS, "p") is not None
        assert lean.set_annotation_status(NS, "p", KEY, VALUE, UID)
        tls_api.restart()
        assert lean.get_pod(NS, "p") is not None
        bad = kube.Api(kubeconf.Endpoint(tls_api.url, ca_file=str(TLS / "other-ca.crt")), 5)
        with pytest.raises(LeanError) as err:
            bad.set_annotation_status(NS, "p", KEY, VALUE, UID)
        assert err.value.code == 999 and "certificate verify failed" in err.value.msg
        bad.close()
    finally:
        lean.close()
    assert used == ["127.0.0.1"] * 3


@pytest.mark.parametrize(
    "server",
    ["https://h:99999", "https://h:x", "https://user@h", "http://hé", "https://", "https://a..b"],
)
def test_server_addresses_lite_http_trips_over_are_unhandled(server: str) -> None:
    with pytest.raises(Unhandled):
        kube.Api(kubeconf.Endpoint(server), 5)


def test_sslkeylogfile_is_left_to_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLKEYLOGFILE", "/tmp/keys")
    with pytest.raises(Unhandled):
        kube.Api(kubeconf.Endpoint("https://h"), 5)
    assert kube.Api(kubeconf.Endpoint("http://h"), 5).server == "http://h"


# --- events ---------------------------------------------------------------------------------------


def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``time.time_ns`` from 1.7e18, one second per call: the same stamps for both clients."""
    ticks = iter(range(1_700_000_000_123_456_789, 1_800_000_000_000_000_000, 10**9))
    monkeypatch.setattr(time, "time_ns", lambda: next(ticks))


def test_events_are_lites(api: StandInApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _clock(monkeypatch)
    long_name = "x" * 250  # no room for the suffix: the server names it (generateName)
    lite = LiteApi(LiteEndpoint(server=api.url, token=TOKEN), timeout=5)
    try:
        for name in ("p", long_name):
            lite.emit_event(PodRef(NS, name, UID), type_="Normal", reason="Added", message="a <b>")
        lite.emit_event(PodRef(NS, "p"), type_="Warning", reason="NoNad", message="m")
        assert lite.send_events() == 0
    finally:
        lite.close()
    _clock(monkeypatch)
    with StandInApiServer() as other:
        lean = kube.Api(kubeconf.Endpoint(other.url, token=TOKEN))  # 60 s, 10 s for events
        try:
            for name in ("p", long_name):
                lean.keep_event(NS, name, UID, type_="Normal", reason="Added", message="a <b>")
            lean.keep_event(NS, "p", "", type_="Warning", reason="NoNad", message="m")
            assert lean.events_pending and other.events == []
            assert lean.send_events() == 0
            assert not lean.events_pending
        finally:
            lean.close()
        ours = [(r.method, r.path, r.query, r.body, r.content_type) for r in other.request_log]
    full = [(r.method, r.path, r.query, r.body, r.content_type) for r in api.request_log]
    assert ours == full and len(ours) == 3
    assert lean.conn.timeout == kube.EVENT_TIMEOUT


def test_event_failures_are_counted(api: StandInApiServer) -> None:
    lean = kube.Api(kubeconf.Endpoint(api.url, token=TOKEN), 5)
    try:
        lean.keep_event(NS, "p", UID, type_="Normal", reason="R", message="one")
        lean.keep_event(NS, "p", UID, type_="Normal", reason="R", message="two")
        api.fail_next(1, 500)
        assert lean.send_events() == 1
        assert lean.events_failed == 1
    finally:
        lean.close()
    assert [e["message"] for e in api.events] == ["two"]


def test_events_wait_no_longer_on_the_call_s_open_connection(api: StandInApiServer) -> None:
    lean = kube.Api(kubeconf.Endpoint(api.url, token=TOKEN))  # 60 s per request
    try:
        assert lean.get_pod(NS, "p") is not None  # the connection is open
        sock = lean.conn._sock
        assert sock.gettimeout() == kube.DEFAULT_TIMEOUT
        lean.keep_event(NS, "p", UID, type_="Normal", reason="AddedInterface", message="m")
        assert lean.send_events() == 0
        assert lean.conn._sock is sock  # the same connection
        assert sock.gettimeout() == kube.EVENT_TIMEOUT
    finally:
        lean.close()
    assert [e["reason"] for e in api.events] == ["AddedInterface"]


def test_events_are_sent_by_a_detached_child(api: StandInApiServer) -> None:
    lean = kube.Api(kubeconf.Endpoint(api.url, token=TOKEN), 5)
    try:
        assert lean.get_pod(NS, "p") is not None  # the child goes on with this connection
        assert kube.send_detached(lean) == 0  # nothing kept: no child
        lean.keep_event(NS, "p", UID, type_="Normal", reason="AddedInterface", message="m")
        pid = kube.send_detached(lean)
        assert pid > 0
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        lean.close()
    assert [e["reason"] for e in api.events] == ["AddedInterface"]


# --- JSON as msgspec writes it ------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500)
@given(_json_values)
def test_dumps_is_msgspecs_encoding(value: Any) -> None:
    try:
        expected = msgspec.json.encode(value)
    except (msgspec.EncodeError, UnicodeEncodeError):
        return  # lone surrogates: neither encodes them
    assert kube.dumps(value) == expected


def test_floats_are_written_as_msgspec_writes_them() -> None:
    """Every decimal exponent, subnormals included (where ``repr`` and msgspec part ways)."""
    for exponent in range(-330, 309):
        for mantissa in (1.0, 1.5, 6.103515625, 9.999999999999999, 1.2345678901234567):
            value = float(f"{mantissa!r}e{exponent}")
            for v in (value, -value):
                assert kube.dumps([v]) == msgspec.json.encode([v]), v


# --- what a lean call imports -------------------------------------------------------------------


def test_an_https_call_imports_no_heavy_module(tls_api: StandInApiServer) -> None:
    code = f"""
import sys
sys.path.insert(0, {str(SRC)!r})
from pymultus.plugin.lean import kube, kubeconf
api = kube.Api(kubeconf.Endpoint({tls_api.url!r}, token={TOKEN!r}, ca_file={str(TLS / "ca.crt")!r}))
assert api.get_pod({NS!r}, "p") is not None
assert api.set_annotation_status({NS!r}, "p", "k", "v", {UID!r})
api.close()
print(" ".join(sorted(sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(out.stdout.split())
    assert "_ssl" in loaded
    heavy = {"ssl", "socket", "typing", "re", "logging", "json", "msgspec", "enum"}
    assert loaded & heavy == set()
