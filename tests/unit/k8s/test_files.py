"""Standalone sources: NADs and pods from local files, network-status into a state directory,
and the per-request pod source of ``core.standalone`` (runtime annotations, file, nothing)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from pymultus.cni.env import parse_plugin_env
from pymultus.cni.errors import DecodeError, InvalidConfigError
from pymultus.config.multus import parse_multus_conf
from pymultus.core import resolve
from pymultus.core.request import Request
from pymultus.core.standalone import (
    CRI_POD_ANNOTATIONS,
    StandalonePods,
    runtime_annotations,
    standalone_deps,
)
from pymultus.k8s import files
from pymultus.k8s.files import (
    DocumentCache,
    FileNads,
    FilePods,
    StateDirStatus,
    StatusRecord,
    list_records,
    read_record,
    remove_record,
)
from pymultus.k8s.objects import NETWORKS_ANNOTATION, STATUS_ANNOTATION, Nad, Pod
from pymultus.k8s.refs import PodRef

BRIDGE = '{"cniVersion": "1.0.0", "type": "bridge"}'


def nad_doc(name: str, config: str = BRIDGE, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, **meta},
        "spec": {"config": config},
    }


def write(path: Path, *docs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(docs[0]))
    else:
        path.write_text(yaml.safe_dump_all(docs))
    return path


@pytest.fixture
def nads(tmp_path: Path) -> FileNads:
    return FileNads(str(tmp_path / "nads"), cache=DocumentCache())


# --- NADs ----------------------------------------------------------------------------------


def test_nad_from_its_own_file(nads: FileNads) -> None:
    write(Path(nads.root, "ns1", "net-a.yaml"), nad_doc("net-a"))
    assert nads.get_nad("ns1", "net-a") == Nad("ns1", "net-a", BRIDGE)
    assert nads.get_nad("ns2", "net-a") is None
    assert nads.get_nad("ns1", "net-b") is None


def test_kubectl_manifests_with_several_documents(nads: FileNads) -> None:
    root = Path(nads.root, "ns1")
    write(
        root / "all.yml",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "net-b"}},
        nad_doc("net-a", namespace="ns1"),
        nad_doc("net-b", '{"type": "macvlan"}'),
        nad_doc("net-c", namespace="other"),  # another namespace: not here
    )
    write(
        root / "list.json",
        {"apiVersion": "v1", "kind": "List", "items": [nad_doc("net-d", "")]},
    )
    assert nads.get_nad("ns1", "net-a") == Nad("ns1", "net-a", BRIDGE)
    assert nads.get_nad("ns1", "net-b") == Nad("ns1", "net-b", '{"type": "macvlan"}')
    assert nads.get_nad("ns1", "net-c") is None
    assert nads.get_nad("ns1", "net-d") == Nad("ns1", "net-d", "")


def test_the_file_named_after_the_nad_wins(nads: FileNads) -> None:
    root = Path(nads.root, "ns1")
    write(root / "a-first.yaml", nad_doc("net-a", '{"type": "first"}'))
    write(root / "net-a.yaml", nad_doc("net-a", '{"type": "own"}'))
    nad = nads.get_nad("ns1", "net-a")
    assert nad is not None and nad.config == '{"type": "own"}'


def test_resource_name_annotation(nads: FileNads) -> None:
    annotations = {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"}
    write(Path(nads.root, "ns1", "x.yaml"), nad_doc("sriov", annotations=annotations))
    nad = nads.get_nad("ns1", "sriov")
    assert nad is not None and nad.resource_name == "intel.com/sriov"


@pytest.mark.parametrize(("namespace", "name"), [("..", "x"), ("ns1", ".."), ("a/b", "c")])
def test_names_never_leave_the_directory(nads: FileNads, namespace: str, name: str) -> None:
    write(Path(nads.root, "x.yaml"), nad_doc("x"))
    assert nads.get_nad(namespace, name) is None


def test_a_broken_file_matters_only_when_the_nad_is_nowhere_else(nads: FileNads) -> None:
    root = Path(nads.root, "ns1")
    (root).mkdir(parents=True)
    (root / "broken.yaml").write_text("metadata: [\n")
    write(root / "good.yaml", nad_doc("net-a"))
    assert nads.get_nad("ns1", "net-a") is not None
    with pytest.raises(DecodeError) as caught:
        nads.get_nad("ns1", "net-z")
    assert caught.value.path == str(root / "broken.yaml")


def test_spec_config_must_be_a_string(nads: FileNads) -> None:
    doc = nad_doc("net-a")
    doc["spec"]["config"] = {"type": "bridge"}
    write(Path(nads.root, "ns1", "net-a.yaml"), doc)
    with pytest.raises(InvalidConfigError) as caught:
        nads.get_nad("ns1", "net-a")
    assert caught.value.field == "spec.config"
    assert "config: |" in caught.value.msg


def test_parsed_files_are_cached_until_they_change(nads: FileNads) -> None:
    path = write(Path(nads.root, "ns1", "nets.yaml"), nad_doc("net-a"), nad_doc("net-b"))
    for _ in range(3):
        assert nads.get_nad("ns1", "net-a") is not None
        assert nads.get_nad("ns1", "net-b") is not None
    assert nads.cache.parses == 1
    write(path, nad_doc("net-a", '{"type": "changed"}'))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    nad = nads.get_nad("ns1", "net-a")
    assert nad is not None and nad.config == '{"type": "changed"}'
    assert nads.cache.parses == 2


def test_a_broken_file_is_cached_as_broken(tmp_path: Path) -> None:
    cache = DocumentCache()
    path = tmp_path / "x.yaml"
    path.write_text("a: [\n")
    for _ in range(2):
        with pytest.raises(DecodeError):
            cache.load(str(path))
    assert cache.parses == 1
    assert cache.load(str(tmp_path / "missing.yaml")) is None


# --- pods ----------------------------------------------------------------------------------


def pod_doc(name: str, annotations: Any, uid: str = "") -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns1", "annotations": annotations}
    if uid:
        meta["uid"] = uid
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


@pytest.fixture
def pods(tmp_path: Path) -> FilePods:
    return FilePods(str(tmp_path / "pods"), cache=DocumentCache())


def test_pod_file(pods: FilePods) -> None:
    write(Path(pods.root, "ns1", "web.yaml"), pod_doc("web", {NETWORKS_ANNOTATION: "net-a"}))
    pod = pods.get_pod(PodRef("ns1", "web", "uid-1"), for_add=True)
    assert pod == Pod("ns1", "web", "uid-1", {NETWORKS_ANNOTATION: "net-a"})
    assert pods.get_pod(PodRef("ns1", "other"), for_add=True) is None


def test_pod_file_uid_is_used_only_without_the_runtimes(pods: FilePods) -> None:
    write(Path(pods.root, "ns1", "web.json"), pod_doc("web", None, uid="file-uid"))
    assert pods.get_pod(PodRef("ns1", "web"), for_add=False) == Pod("ns1", "web", "file-uid")
    pod = pods.get_pod(PodRef("ns1", "web", "runtime-uid"), for_add=False)
    assert pod is not None and pod.uid == "runtime-uid"


def test_pod_annotations_must_be_strings(pods: FilePods) -> None:
    write(Path(pods.root, "ns1", "web.yaml"), pod_doc("web", {NETWORKS_ANNOTATION: True}))
    with pytest.raises(InvalidConfigError) as caught:
        pods.get_pod(PodRef("ns1", "web"), for_add=True)
    assert caught.value.field == f"metadata.annotations.{NETWORKS_ANNOTATION}"


# --- status files --------------------------------------------------------------------------


def test_status_file_shape_and_atomic_write(tmp_path: Path) -> None:
    root = str(tmp_path / "status")
    sink = StateDirStatus(root, container_id="sandbox-1")
    sink.write_network_status(Pod("ns1", "web", "uid-1"), '[{"name": "a"}]')
    path = Path(root, "ns1", "web.json")
    assert json.loads(path.read_text()) == {
        "namespace": "ns1",
        "name": "web",
        "uid": "uid-1",
        "containerID": "sandbox-1",
        "annotations": {STATUS_ANNOTATION: '[{"name": "a"}]'},
    }
    assert os.listdir(path.parent) == ["web.json"]  # no temporary file left
    sink.write_network_status(Pod("ns1", "web", "uid-1"), "[]")
    record = read_record(root, "ns1", "web")
    assert record is not None and record.network_status == "[]"
    assert list_records(root) == [record]
    assert read_record(root, "ns1", "nobody") is None


def test_remove_only_the_record_of_the_same_sandbox(tmp_path: Path) -> None:
    root = str(tmp_path)
    StateDirStatus(root, container_id="new").write_network_status(Pod("ns1", "web"), "[]")
    assert not remove_record(root, PodRef("ns1", "web"), container_id="old")
    assert read_record(root, "ns1", "web") == StatusRecord(
        namespace="ns1", name="web", container_id="new", annotations={STATUS_ANNOTATION: "[]"}
    )
    assert remove_record(root, PodRef("ns1", "web"), container_id="new")
    assert read_record(root, "ns1", "web") is None
    assert not Path(root, "ns1").exists()  # its last record: the namespace directory goes
    assert not remove_record(root, PodRef("ns1", "web"), container_id="new")


def test_the_namespace_directory_stays_while_other_pods_have_records(tmp_path: Path) -> None:
    root = str(tmp_path)
    for name in ("web", "db"):
        StateDirStatus(root, container_id=name).write_network_status(Pod("ns1", name), "[]")
    assert remove_record(root, PodRef("ns1", "web"), container_id="web")
    assert read_record(root, "ns1", "db") is not None


def test_a_write_racing_the_removal_of_its_directory_recreates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another pod's DEL removes the namespace's last record and directory between this
    write's makedirs and its file: the write makes the directory again."""
    root = str(tmp_path)
    real = files.write_atomic
    raced: list[str] = []

    def racing(path: str, data: bytes, **kw: Any) -> None:
        if not raced:
            raced.append(path)
            os.rmdir(os.path.dirname(path))
        real(path, data, **kw)

    monkeypatch.setattr(files, "write_atomic", racing)
    StateDirStatus(root, container_id="c1").write_network_status(Pod("ns1", "web"), "[7]")
    assert raced and read_record(root, "ns1", "web") is not None


def test_status_refuses_names_that_leave_the_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        StateDirStatus(str(tmp_path)).write_network_status(Pod("..", "web"), "[]")
    assert caught.value.field == "K8S_POD_NAMESPACE"


# --- the standalone pod source (core.standalone) -------------------------------------------


def test_runtime_annotations_with_a_selection_win(pods: FilePods) -> None:
    write(Path(pods.root, "ns1", "web.yaml"), pod_doc("web", {NETWORKS_ANNOTATION: "file-net"}))
    runtime = {NETWORKS_ANNOTATION: "cri-net", "other": "x"}
    pod = StandalonePods(runtime, pods).get_pod(PodRef("ns1", "web", "u"), for_add=True)
    assert pod == Pod("ns1", "web", "u", runtime)


def test_runtime_annotations_without_a_selection_fall_back_to_the_pod_file(
    pods: FilePods,
) -> None:
    write(Path(pods.root, "ns1", "web.yaml"), pod_doc("web", {NETWORKS_ANNOTATION: "file-net"}))
    source = StandalonePods({"unrelated": "x"}, pods)
    pod = source.get_pod(PodRef("ns1", "web", "u"), for_add=True)
    assert pod.annotations == {NETWORKS_ANNOTATION: "file-net"}
    nobody = source.get_pod(PodRef("ns1", "nobody", "u2"), for_add=True)
    assert nobody == Pod("ns1", "nobody", "u2", {"unrelated": "x"})
    assert StandalonePods(None, pods).get_pod(PodRef("ns1", "x"), for_add=False) == Pod("ns1", "x")


def test_runtime_annotations_must_be_a_map_of_strings(pods: FilePods) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        StandalonePods({NETWORKS_ANNOTATION: 5}, pods).get_pod(PodRef("a", "b"), for_add=True)
    assert caught.value.field == f"runtimeConfig.{CRI_POD_ANNOTATIONS}.{NETWORKS_ANNOTATION}"


def test_standalone_plan_uses_the_requests_annotations_and_nad_files(tmp_path: Path) -> None:
    """The seam, without running a plugin: containerd's runtimeConfig selects two NADs that
    live in files, and the core plans three attachments."""
    nad_dir = tmp_path / "nads"
    write(nad_dir / "kube-system" / "cluster.json", nad_doc("cluster"))
    write(nad_dir / "ns1" / "nets.yaml", nad_doc("net-a"), nad_doc("net-b"))
    conf = {
        "cniVersion": "1.0.0",
        "name": "multus-cni-network",
        "type": "multus",
        "clusterNetwork": "cluster",
        "capabilities": {CRI_POD_ANNOTATIONS: True},
        "runtimeConfig": {CRI_POD_ANNOTATIONS: {NETWORKS_ANNOTATION: "net-a, net-b@data0"}},
    }
    stdin = json.dumps(conf).encode()
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "sandbox-1",
        "CNI_NETNS": "/var/run/netns/x",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": "K8S_POD_UID=u1;IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=ns1",
    }
    req = Request.build(parse_plugin_env(env, stdin))
    assert runtime_annotations(parse_multus_conf(stdin)) == {
        NETWORKS_ANNOTATION: "net-a, net-b@data0"
    }
    deps = standalone_deps(
        req.conf,
        nad_dir=str(nad_dir),
        pod_dir=str(tmp_path / "pods"),
        state_dir=str(tmp_path / "status"),
        container_id="sandbox-1",
    )
    assert deps.pods is not None and deps.events is None
    pod = deps.pods.get_pod(PodRef("ns1", "web", "u1"), for_add=True)
    planned = resolve.plan(req, deps, pod)
    assert [p.delegate.name for p in planned] == ["kube-system/cluster", "ns1/net-a", "ns1/net-b"]
    assert [p.delegate.ifname_request for p in planned] == ["", "", "data0"]
    assert isinstance(deps.status, StateDirStatus) and deps.status.container_id == "sandbox-1"
