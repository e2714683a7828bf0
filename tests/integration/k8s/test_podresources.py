"""The kubelet PodResources client against a stand-in gRPC server on a real unix socket."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.support.podresources_server import PodResourcesServer, container, pod

from pymultus.cni.errors import DecodeError, InvalidEnvironmentError, IOFailure, TryAgainLaterError
from pymultus.k8s import podresources
from pymultus.k8s.refs import PodRef
from pymultus.k8s.resourcemap import LazyResourceMap, load_resource_map

SRIOV = "intel.com/sriov"
POD = PodRef("ns1", "pod1", "uid-1")


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory: a unix socket path must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pm-pr-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def kubelet(workdir: Path) -> Iterator[PodResourcesServer]:
    with PodResourcesServer(workdir / "kubelet.sock") as server:
        yield server


def _load(kubelet: PodResourcesServer, workdir: Path, **kw: float) -> dict[str, list[str]]:
    return load_resource_map(
        POD,
        socket_path=str(kubelet.socket_path),
        checkpoint_path=str(workdir / "checkpoint"),
        **kw,
    ).as_dict()


@pytest.mark.parametrize("extras", [False, True], ids=["plain", "with-skipped-fields"])
def test_devices_of_the_pod_by_name_and_namespace(
    kubelet: PodResourcesServer, workdir: Path, extras: bool
) -> None:
    kubelet.extras = extras
    kubelet.pods = [
        pod("ns1", "other", container("c", (SRIOV, ["0000:03:02.7"]))),
        pod(
            "ns1",
            "pod1",
            container("c1", (SRIOV, ["0000:03:02.3", "0000:03:02.1"]), ("example.com/gpu", ["g"])),
            container("c2", (SRIOV, ["0000:03:02.2"])),
        ),
        pod("ns2", "pod1", container("c", (SRIOV, ["0000:03:02.9"]))),
    ]
    assert _load(kubelet, workdir) == {
        SRIOV: ["0000:03:02.1", "0000:03:02.2", "0000:03:02.3"],
        "example.com/gpu": ["g"],
    }


def test_pod_not_listed_gives_an_empty_map(kubelet: PodResourcesServer, workdir: Path) -> None:
    kubelet.pods = [pod("ns1", "someone-else", container("c", (SRIOV, ["a"])))]
    devices = load_resource_map(
        POD, socket_path=str(kubelet.socket_path), checkpoint_path=str(workdir / "checkpoint")
    )
    assert devices.as_dict() == {}
    assert devices.next(SRIOV) == ""


def test_one_list_call_per_add_for_many_nads(kubelet: PodResourcesServer, workdir: Path) -> None:
    kubelet.pods = [pod("ns1", "pod1", container("c", (SRIOV, ["d2", "d1"])))]
    devices = LazyResourceMap(
        POD, socket_path=str(kubelet.socket_path), checkpoint_path=str(workdir / "checkpoint")
    )
    assert kubelet.calls == 0
    assert [devices.next(SRIOV), devices.next(SRIOV), devices.next(SRIOV)] == ["d1", "d2", ""]
    assert kubelet.calls == 1


def test_socket_absent_means_the_checkpoint_is_used(workdir: Path) -> None:
    checkpoint = workdir / "checkpoint"
    entry = {"PodUID": POD.uid, "ResourceName": SRIOV, "DeviceIDs": {"0": ["cp-2", "cp-1"]}}
    checkpoint.write_text(json.dumps({"Data": {"PodDeviceEntries": [entry]}, "Checksum": 0}))
    devices = load_resource_map(
        POD, socket_path=str(workdir / "kubelet.sock"), checkpoint_path=str(checkpoint)
    )
    assert devices.as_dict() == {SRIOV: ["cp-1", "cp-2"]}


def test_socket_present_wins_over_the_checkpoint(
    kubelet: PodResourcesServer, workdir: Path
) -> None:
    checkpoint = workdir / "checkpoint"
    entry = {"PodUID": POD.uid, "ResourceName": SRIOV, "DeviceIDs": ["from-checkpoint"]}
    checkpoint.write_text(json.dumps({"Data": {"PodDeviceEntries": [entry]}}))
    kubelet.pods = [pod("ns1", "pod1", container("c", (SRIOV, ["from-grpc"])))]
    assert _load(kubelet, workdir) == {SRIOV: ["from-grpc"]}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, TryAgainLaterError),
        (grpc.StatusCode.PERMISSION_DENIED, IOFailure),
        (grpc.StatusCode.UNIMPLEMENTED, IOFailure),
    ],
)
def test_grpc_errors_keep_their_kind(
    kubelet: PodResourcesServer, workdir: Path, status: grpc.StatusCode, error: type[Exception]
) -> None:
    kubelet.fail_with = status
    with pytest.raises(error) as err:
        _load(kubelet, workdir)
    assert status.name in str(err.value)
    assert str(kubelet.socket_path) in str(err.value)


def test_stale_socket_fails_fast_as_try_again_later(workdir: Path) -> None:
    stale = workdir / "kubelet.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # bound, never listening: what a dead kubelet leaves behind
    started = time.monotonic()
    with pytest.raises(TryAgainLaterError):
        load_resource_map(POD, socket_path=str(stale), checkpoint_path=str(workdir / "cp"))
    assert time.monotonic() - started < 5


def test_slow_kubelet_times_out(kubelet: PodResourcesServer, workdir: Path) -> None:
    kubelet.delay = 1.0
    with pytest.raises(TryAgainLaterError, match="DEADLINE_EXCEEDED"):
        _load(kubelet, workdir, timeout=0.2)


def test_answers_up_to_16_mib_are_accepted(kubelet: PodResourcesServer, workdir: Path) -> None:
    ids = [f"{i:0100d}" for i in range(60_000)]  # about 6.1 MB: above gRPC's 4 MiB default
    kubelet.pods = [pod("ns1", "pod1", container("c", (SRIOV, ids)))]
    assert _load(kubelet, workdir)[SRIOV][:2] == [ids[0], ids[1]]


def test_answers_above_16_mib_are_refused(kubelet: PodResourcesServer, workdir: Path) -> None:
    kubelet.raw_answer = b"\x0a" + b"\x80\x80\x80\x09" + b"\x00" * (18 * 1024 * 1024)
    with pytest.raises(IOFailure, match="RESOURCE_EXHAUSTED"):
        _load(kubelet, workdir)


def test_malformed_answer_is_a_decode_error(kubelet: PodResourcesServer, workdir: Path) -> None:
    kubelet.raw_answer = b"\x0a\x09\x0a\x05ab"
    with pytest.raises(DecodeError):
        _load(kubelet, workdir)


def test_pod_without_name_is_refused_before_calling(kubelet: PodResourcesServer) -> None:
    with pytest.raises(InvalidEnvironmentError):
        podresources.get_pod_resource_map("ns1", "", socket_path=str(kubelet.socket_path))
    assert kubelet.calls == 0
