"""The kubelet device-manager checkpoint: both DeviceIDs shapes, matching by pod UID, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pymultus.cni.errors import DecodeError, InvalidEnvironmentError, IOFailure
from pymultus.k8s.checkpoint import get_pod_resource_map, parse_checkpoint, resource_map_of

UID = "970a395d-bb3b-11e8-89df-408d5c537d23"
OTHER = "0fa8e2b4-0000-4000-8000-000000000002"


def _entry(uid: str, resource: str, ids: Any, container: str = "c0") -> dict[str, Any]:
    return {
        "PodUID": uid,
        "ContainerName": container,
        "ResourceName": resource,
        "DeviceIDs": ids,
        "AllocResp": "CiIKHUtVQkVMRVRfVEVTVF9QT0RfUkVTT1VSQ0VfSURTEgEw",
    }


def _file(*entries: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "Data": {
                "PodDeviceEntries": list(entries),
                "RegisteredDevices": {"intel.com/sriov": ["0000:03:02.3", "0000:03:02.0"]},
            },
            "Checksum": 2164141225,
        }
    ).encode()


def _write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "kubelet_internal_checkpoint"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param({"0": ["0000:03:02.3"], "1": ["0000:03:02.0"]}, id="per-numa-map"),
        pytest.param({"-1": ["0000:03:02.0", "0000:03:02.3"]}, id="no-numa-affinity"),
        pytest.param(["0000:03:02.3", "0000:03:02.0"], id="plain-list-old-kubelet"),
    ],
)
def test_device_ids_of_either_shape_are_read_and_sorted(ids: Any) -> None:
    entries = parse_checkpoint(_file(_entry(UID, "intel.com/sriov", ids)))
    assert resource_map_of(entries, UID) == {"intel.com/sriov": ["0000:03:02.0", "0000:03:02.3"]}


def test_entries_of_one_resource_are_merged_across_containers_and_other_pods_ignored() -> None:
    data = _file(
        _entry(UID, "intel.com/sriov", {"0": ["0000:03:02.5"]}, container="a"),
        _entry(OTHER, "intel.com/sriov", {"0": ["0000:03:02.1"]}),
        _entry(UID, "intel.com/sriov", ["0000:03:02.4"], container="b"),
        _entry(UID, "example.com/gpu", {"0": ["gpu-1"]}),
    )
    assert resource_map_of(parse_checkpoint(data), UID) == {
        "intel.com/sriov": ["0000:03:02.4", "0000:03:02.5"],
        "example.com/gpu": ["gpu-1"],
    }
    assert resource_map_of(parse_checkpoint(data), "no-such-uid") == {}


@pytest.mark.parametrize(
    "data",
    [
        b"null",
        b"{}",
        b'{"Data":null,"Checksum":1}',
        b'{"Data":{"PodDeviceEntries":null}}',
        b'{"Data":{"PodDeviceEntries":[{"PodUID":"x","ResourceName":"r"}]}}',
    ],
)
def test_empty_checkpoints_have_no_devices(data: bytes) -> None:
    assert resource_map_of(parse_checkpoint(data), UID) == {}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"Data":{"PodDeviceEntries":{}}}', id="entries-not-a-list"),
        pytest.param(
            b'{"Data":{"PodDeviceEntries":[{"PodUID":"u","DeviceIDs":"0000:03:02.0"}]}}',
            id="device-ids-a-string",
        ),
        pytest.param(
            b'{"Data":{"PodDeviceEntries":[{"PodUID":"u","DeviceIDs":{"0":[1]}}]}}',
            id="device-id-a-number",
        ),
    ],
)
def test_bad_checkpoint_is_a_decode_error_naming_the_file(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(DecodeError) as err:
        get_pod_resource_map(UID, path=path)
    assert err.value.path == path
    assert path in err.value.msg


def test_reads_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _file(_entry(UID, "intel.com/sriov", {"0": ["b", "a"]})))
    assert get_pod_resource_map(UID, path=path) == {"intel.com/sriov": ["a", "b"]}


def test_missing_file_is_an_io_failure_naming_it(tmp_path: Path) -> None:
    path = str(tmp_path / "absent")
    with pytest.raises(IOFailure) as err:
        get_pod_resource_map(UID, path=path)
    assert err.value.path == path
    assert path in err.value.msg


def test_unreadable_path_is_an_io_failure(tmp_path: Path) -> None:
    with pytest.raises(IOFailure):
        get_pod_resource_map(UID, path=str(tmp_path))  # a directory


def test_empty_pod_uid_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InvalidEnvironmentError) as err:
        get_pod_resource_map("", path=str(tmp_path / "absent"))
    assert err.value.field == "K8S_POD_UID"
