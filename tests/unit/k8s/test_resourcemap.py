"""Device-plugin integration without a kubelet: the resource map, deviceID injection, the
capability args, the device-info files and the PodResources wire decoder."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.support import podresources_server as prs

from pymultus.cni.errors import DecodeError, InvalidConfigError, IOFailure
from pymultus.k8s import devinfo_files as df
from pymultus.k8s.devinfo import DeviceInfo, PciDevice
from pymultus.k8s.podresources import (
    ContainerDevices,
    ContainerResources,
    PodResources,
    decode_list_response,
    resource_map_of,
)
from pymultus.k8s.refs import PodRef
from pymultus.k8s.resourcemap import (
    LazyResourceMap,
    ResourceMap,
    device_capability_args,
    inject_device_id,
    load_resource_map,
)

POD = PodRef("ns1", "pod1", "uid-1")
SRIOV = "intel.com/sriov"


# ---------------------------------------------------------------- ResourceMap


def test_ids_are_handed_out_sorted_one_per_call() -> None:
    devices = ResourceMap({SRIOV: ["0000:03:02.3", "0000:03:02.0", "0000:03:02.1"]})
    assert [devices.next(SRIOV) for _ in range(4)] == [
        "0000:03:02.0",
        "0000:03:02.1",
        "0000:03:02.3",
        "",
    ]


def test_resources_are_counted_apart() -> None:
    devices = ResourceMap({SRIOV: ["b", "a"], "example.com/gpu": ["g0"]})
    assert devices.next(SRIOV) == "a"
    assert devices.next("example.com/gpu") == "g0"
    assert devices.next(SRIOV) == "b"
    assert devices.next("example.com/gpu") == ""


def test_unallocated_resource_gets_no_device() -> None:
    devices = ResourceMap({SRIOV: ["a"]})
    assert devices.next("example.com/other") == ""
    assert ResourceMap().next(SRIOV) == ""
    assert devices.device_ids(SRIOV) == ("a",)
    assert devices.as_dict() == {SRIOV: ["a"]}


def _checkpoint(path: Path, uid: str, ids: list[str]) -> str:
    entry = {"PodUID": uid, "ContainerName": "c", "ResourceName": SRIOV, "DeviceIDs": {"0": ids}}
    path.write_text(json.dumps({"Data": {"PodDeviceEntries": [entry]}, "Checksum": 1}))
    return str(path)


def test_without_socket_the_checkpoint_is_read_by_pod_uid(tmp_path: Path) -> None:
    cp = _checkpoint(tmp_path / "checkpoint", POD.uid, ["d2", "d1"])
    devices = load_resource_map(POD, socket_path=str(tmp_path / "no.sock"), checkpoint_path=cp)
    assert devices.as_dict() == {SRIOV: ["d1", "d2"]}


def test_neither_source_is_an_io_failure_naming_both(tmp_path: Path) -> None:
    sock, cp = str(tmp_path / "kubelet.sock"), str(tmp_path / "checkpoint")
    with pytest.raises(IOFailure) as err:
        load_resource_map(POD, socket_path=sock, checkpoint_path=cp)
    assert sock in err.value.msg
    assert cp in err.value.msg
    assert err.value.pod == "ns1/pod1"


def test_lazy_map_reads_nothing_until_asked_then_once(tmp_path: Path) -> None:
    cp_path = tmp_path / "checkpoint"
    devices = LazyResourceMap(
        POD, socket_path=str(tmp_path / "no.sock"), checkpoint_path=str(cp_path)
    )
    assert not devices.loaded  # no source exists, and nothing failed
    _checkpoint(cp_path, POD.uid, ["d1", "d2"])
    assert devices.next(SRIOV) == "d1"
    cp_path.unlink()  # loaded once per ADD: later NADs use the same map
    assert devices.next(SRIOV) == "d2"
    assert devices.loaded


def test_lazy_map_raises_the_load_error(tmp_path: Path) -> None:
    devices = LazyResourceMap(
        POD, socket_path=str(tmp_path / "s"), checkpoint_path=str(tmp_path / "c")
    )
    with pytest.raises(IOFailure):
        devices.next(SRIOV)


def test_grpc_is_not_imported_until_a_resource_is_looked_up() -> None:
    code = (
        "import sys, pymultus.k8s.resourcemap, pymultus.k8s.podresources;"
        "sys.exit(1 if 'grpc' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---------------------------------------------------------------- deviceID injection


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            b'{"name":"second-network","type":"sriov","vlan":100,"ipam":{"type":"host-local"}}',
            b'{"deviceID":"0000:03:02.0","ipam":{"type":"host-local"},"name":"second-network",'
            b'"pciBusID":"0000:03:02.0","type":"sriov","vlan":100}',
            id="conf",
        ),
        pytest.param(
            b'{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"sriov"},{"type":"tuning",'
            b'"mtu":1400,"deviceID":"old"}]}',
            b'{"cniVersion":"1.0.0","name":"n","plugins":[{"deviceID":"0000:03:02.0",'
            b'"pciBusID":"0000:03:02.0","type":"sriov"},{"deviceID":"0000:03:02.0","mtu":1400,'
            b'"pciBusID":"0000:03:02.0","type":"tuning"}]}',
            id="conflist-every-plugin",
        ),
        pytest.param(
            b'{"name":"a<b","type":"x","f":1.5e300,"g":1e21}',
            b'{"deviceID":"0000:03:02.0","f":1.5e+300,"g":1e+21,"name":"a\\u003cb",'
            b'"pciBusID":"0000:03:02.0","type":"x"}',
            id="go-number-and-html-escaping",
        ),
    ],
)
def test_inject_device_id_matches_go_bytes(raw: bytes, expected: bytes) -> None:
    assert inject_device_id(raw, "0000:03:02.0") == expected


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name":"n"}', "plugins"),
        (b'{"name":"n","plugins":{"type":"x"}}', "plugins"),
        (b'{"name":"n","plugins":[{"type":"x"},"y"]}', "plugins[1]"),
    ],
)
def test_inject_device_id_into_a_broken_list_names_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidConfigError) as err:
        inject_device_id(raw, "d")
    assert err.value.field == field


def test_inject_device_id_into_non_json_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        inject_device_id(b"[1]", "d")


def test_capability_args_name_the_cni_device_info_file() -> None:
    assert device_capability_args("ns1/sriov-a", "cid", "net1", "0000:03:02.0") == {
        "deviceID": "0000:03:02.0",
        "CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/ns1-sriov-a-cid_net1",
    }
    assert device_capability_args("ns1/sriov-a", "cid", "net1", "") == {}
    args = device_capability_args("n", "c", "i", "d", devinfo_root="/tmp/root")
    assert args["CNIDeviceInfoFile"] == "/tmp/root/cni/n-c_i"


# ---------------------------------------------------------------- device-info files


def test_paths_replace_every_slash() -> None:
    assert df.dp_device_info_path("intel.com/sriov/x", "a/b") == (
        "/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-sriov-x-a-b-device.json"
    )
    assert df.cni_device_info_path("ns/nad", "c/id", "net1", root="/r") == "/r/cni/ns-nad-c-id_net1"


DP_FILE = (
    b'{"type":"pci","version":"1.1.0","unknown":"dropped",'
    b'"pci":{"pci-address":"0000:03:02.0","pf-pci-address":"0000:03:00.0"}}'
)


def test_copy_read_and_remove(tmp_path: Path) -> None:
    root = str(tmp_path)
    dp = Path(df.dp_device_info_path(SRIOV, "0000:03:02.0", root=root))
    dp.parent.mkdir(parents=True)
    dp.write_bytes(DP_FILE)
    cni = df.cni_device_info_path("ns1/sriov-a", "cid", "net1", root=root)

    assert df.copy_dp_to_cni(cni, SRIOV, "0000:03:02.0", root=root)
    assert Path(cni).read_bytes() == (
        b'{"type":"pci","version":"1.1.0",'
        b'"pci":{"pci-address":"0000:03:02.0","pf-pci-address":"0000:03:00.0"}}'
    )
    assert stat.S_IMODE(os.stat(cni).st_mode) == 0o444
    assert df.read_device_info(cni) == DeviceInfo(
        type="pci",
        version="1.1.0",
        pci=PciDevice(pci_address="0000:03:02.0", pf_pci_address="0000:03:00.0"),
    )
    df.remove_cni_device_info(cni)
    assert not os.path.exists(cni)
    df.remove_cni_device_info(cni)  # already gone: fine


def test_copy_keeps_an_existing_cni_file(tmp_path: Path) -> None:
    root = str(tmp_path)
    dp = Path(df.dp_device_info_path(SRIOV, "d", root=root))
    dp.parent.mkdir(parents=True)
    dp.write_bytes(DP_FILE)
    cni = Path(df.cni_device_info_path("n", "c", "i", root=root))
    cni.parent.mkdir(parents=True)
    cni.write_bytes(b'{"type":"memif"}')
    assert not df.copy_dp_to_cni(str(cni), SRIOV, "d", root=root)
    assert cni.read_bytes() == b'{"type":"memif"}'


@pytest.mark.parametrize("dp_content", [None, b"{bad", b'{"pci":"not an object"}'])
def test_copy_without_a_usable_dp_file_writes_nothing(
    tmp_path: Path, dp_content: bytes | None
) -> None:
    root = str(tmp_path)
    if dp_content is not None:
        dp = Path(df.dp_device_info_path(SRIOV, "d", root=root))
        dp.parent.mkdir(parents=True)
        dp.write_bytes(dp_content)
    cni = df.cni_device_info_path("n", "c", "i", root=root)
    assert not df.copy_dp_to_cni(cni, SRIOV, "d", root=root)
    assert not os.path.exists(cni)


def test_copy_into_an_unwritable_place_is_ignored(tmp_path: Path) -> None:
    blocker = tmp_path / "cni"
    blocker.write_text("a file where the directory should be")
    root = str(tmp_path)
    dp = Path(df.dp_device_info_path(SRIOV, "d", root=root))
    dp.parent.mkdir(parents=True)
    dp.write_bytes(DP_FILE)
    assert not df.copy_dp_to_cni(
        df.cni_device_info_path("n", "c", "i", root=root), SRIOV, "d", root=root
    )


@pytest.mark.parametrize("content", [None, b"", b"[]", b'{"pci":1}'])
def test_reading_a_missing_or_bad_file_gives_none(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "f"
    if content is not None:
        path.write_bytes(content)
    assert df.read_device_info(str(path)) is None


# ---------------------------------------------------------------- PodResources wire decoding


def _to_wire(pods: list[PodResources]) -> list[prs.Pod]:
    return [
        prs.Pod(
            p.namespace,
            p.name,
            [
                prs.Container(
                    c.name, [prs.Devices(d.resource_name, list(d.device_ids)) for d in c.devices]
                )
                for c in p.containers
            ],
        )
        for p in pods
    ]


_text = st.text(max_size=12)
_devices = st.builds(ContainerDevices, _text, st.lists(_text, max_size=3).map(tuple))
_containers = st.builds(ContainerResources, _text, st.lists(_devices, max_size=3).map(tuple))
_pods = st.builds(PodResources, _text, _text, st.lists(_containers, max_size=3).map(tuple))


@given(pods=st.lists(_pods, max_size=4), extras=st.booleans())
def test_decoder_reads_what_protobuf_encodes_and_skips_other_fields(
    pods: list[PodResources], extras: bool
) -> None:
    assert decode_list_response(prs.encode_list_response(_to_wire(pods), extras)) == pods


def test_decoder_keeps_the_last_of_a_repeated_scalar_field() -> None:
    pod = prs.string(1, "old") + prs.string(2, "ns") + prs.string(1, "new")
    assert decode_list_response(prs.length_delimited(1, pod)) == [PodResources("new", "ns")]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x0a", id="truncated-length"),
        pytest.param(b"\x0a\x05ab", id="truncated-payload"),
        pytest.param(b"\x08\xff", id="truncated-varint"),
        pytest.param(b"\x08" + b"\xff" * 10 + b"\x01", id="varint-too-long"),
        pytest.param(b"\x0b", id="group-wire-type"),
        pytest.param(b"\x02\x00", id="field-zero"),
        pytest.param(b"\x09\x00\x00", id="truncated-fixed64"),
        pytest.param(prs.length_delimited(1, b"\x0a\x02\xff\xfe"), id="name-not-utf8"),
    ],
)
def test_decoder_rejects_malformed_answers(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_list_response(data)


def test_resource_map_of_matches_name_and_namespace_and_merges_containers() -> None:
    pods = [
        PodResources(
            "pod1",
            "ns1",
            (
                ContainerResources("a", (ContainerDevices(SRIOV, ("d3", "d1")),)),
                ContainerResources("b", (ContainerDevices(SRIOV, ("d2",)),)),
            ),
        ),
        PodResources("pod1", "ns2", (ContainerResources("a", (ContainerDevices(SRIOV, ("x",)),)),)),
        PodResources("pod2", "ns1", (ContainerResources("a", (ContainerDevices(SRIOV, ("y",)),)),)),
    ]
    assert resource_map_of(pods, "ns1", "pod1") == {SRIOV: ["d1", "d2", "d3"]}
    assert resource_map_of(pods, "ns1", "pod3") == {}
