"""The delegate cache ``<cniDir>/<containerID>``: Go Multus's exact bytes, atomic files."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from pymultus.cni.errors import DecodeError, InvalidConfigError, InvalidEnvironmentError, IOFailure
from pymultus.cni.netconf import decode_object, remarshal
from pymultus.config.multus import parse_multus_conf
from pymultus.core import scratch
from pymultus.core.delegate import Delegate, load_delegate, load_delegate_list

GOLDEN = Path("/work/shared/reference/golden")
CACHES = sorted(GOLDEN.glob("*/delegate-cache.json"))
CID = "0" * 63 + "1"


def nad(case: Path, name: str) -> bytes:
    for doc in yaml.safe_load_all((case / "nads.yaml").read_text()):
        if doc and doc["metadata"]["name"] == name:
            return str(doc["spec"]["config"]).encode()
    raise AssertionError(f"no NAD {name} in {case}")


def cluster(case: Path, **requests: Any) -> Delegate:
    """The cluster conflist as Go loads a clusterNetwork file: re-marshalled, list only."""
    raw = remarshal(decode_object((case / "cluster-network.conflist").read_bytes()))
    return msgspec.structs.replace(load_delegate_list(raw), **requests)


def from_nad(case: Path, name: str, **requests: Any) -> Delegate:
    return msgspec.structs.replace(
        load_delegate(nad(case, name), name=f"golden/{name}"), **requests
    )


def with_cni_args(raw: bytes, args: dict[str, Any]) -> bytes:
    """Go's ``addCNIArgsInConfig``: inject ``args.cni`` and re-marshal the map."""
    obj = decode_object(raw)
    obj["args"] = {"cni": args}
    return remarshal(obj)


def build_01(case: Path) -> list[Delegate]:
    return [cluster(case), from_nad(case, "br-a"), from_nad(case, "mv-b", ifname_request="data0")]


def build_02(case: Path) -> list[Delegate]:
    static_c = load_delegate(
        with_cni_args(nad(case, "static-c"), {"golden": "yes", "count": 2}),
        name="golden/static-c",
    )
    return [
        cluster(case, filter_v4_gateway=True, filter_v6_gateway=True),
        msgspec.structs.replace(
            static_c,
            mac_request="c2:ac:c0:00:03:07",
            ip_requests=("198.18.3.7/24",),
            default_route=("198.18.3.1",),
            filter_v6_gateway=True,
        ),
    ]


def build_03(case: Path) -> list[Delegate]:
    return [cluster(case), from_nad(case, "chain-d"), from_nad(case, "chain-d")]


def build_05(case: Path) -> list[Delegate]:
    conf = parse_multus_conf((case / "config.json").read_bytes())
    return [load_delegate(raw, prefix=f"delegates[{i}].") for i, raw in enumerate(conf.delegates)]


BUILDERS = {
    "01-thin-comma-annotation": build_01,
    "02-thin-json-static-ips-mac-default-route": build_02,
    "03-thin-conflist-nad-twice": build_03,
    "04-thin-cni-0.3.1": build_01,
    "04-thin-cni-0.4.0": build_01,
    "05-thin-static-delegates": build_05,
    "07-thick-daemon-responses": build_01,
}


def test_every_golden_cache_has_a_builder() -> None:
    assert sorted(p.parent.name for p in CACHES) == sorted(BUILDERS)


@pytest.mark.parametrize("path", CACHES, ids=lambda p: p.parent.name)
def test_golden_cache_decodes_and_reencodes_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    assert scratch.encode_delegates(scratch.decode_delegates(data)) == data


@pytest.mark.parametrize("path", CACHES, ids=lambda p: p.parent.name)
def test_golden_cache_built_from_the_case_inputs(path: Path) -> None:
    delegates = BUILDERS[path.parent.name](path.parent)
    assert scratch.encode_delegates(delegates) == path.read_bytes()
    assert scratch.decode_delegates(path.read_bytes()) == delegates


def test_golden_decoded_fields() -> None:
    case = GOLDEN / "02-thin-json-static-ips-mac-default-route"
    cached = scratch.decode_delegates((case / "delegate-cache.json").read_bytes())
    master, static_c = cached
    assert master.is_list and master.list_only and master.name == "golden-cluster"
    assert (master.filter_v4_gateway, master.filter_v6_gateway) == (True, True)
    assert not static_c.is_list and static_c.name == "golden/static-c"
    assert static_c.mac_request == "c2:ac:c0:00:03:07"
    assert static_c.ip_requests == ("198.18.3.7/24",)
    assert static_c.default_route == ("198.18.3.1",)
    assert json.loads(static_c.raw)["args"] == {"cni": {"count": 2, "golden": "yes"}}


# ---------------------------------------------------------------- encoding details


BRIDGE = b'{"cniVersion":"1.0.0","name":"br","type":"bridge","mtu":1500}'


def entry(delegate: Delegate) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(scratch.encode_delegates([delegate]))[0]
    return decoded


def test_request_keys_in_gos_order_and_omitted_when_empty() -> None:
    full = Delegate(
        raw=BRIDGE,
        name="ns/br",
        is_list=False,
        ifname_request="net5",
        mac_request="c2:11:22:33:44:55",
        infiniband_guid_request="24:8a:07:03:00:8d:ae:2e",
        ip_requests=("198.18.0.5/24",),
        default_route=("198.18.0.1",),
        device_id="0000:03:00.1",
        resource_name="intel.com/sriov",
    )
    assert list(entry(full)) == [
        "Conf",
        "ConfList",
        "Name",
        "ifnameRequest",
        "macRequest",
        "infinibandGUIDRequest",
        "ipRequest",
        "default-route",
        "IsFilterV4Gateway",
        "IsFilterV6Gateway",
        "deviceID",
        "resourceName",
        "Bytes",
    ]
    bare = Delegate(raw=BRIDGE, name="br", is_list=False)
    assert list(entry(bare)) == [
        "Conf",
        "ConfList",
        "Name",
        "IsFilterV4Gateway",
        "IsFilterV6Gateway",
        "Bytes",
    ]
    assert scratch.decode_delegates(scratch.encode_delegates([full, bare])) == [full, bare]


def test_empty_default_route_request_survives() -> None:
    delegate = Delegate(raw=BRIDGE, name="br", is_list=False, default_route=())
    assert entry(delegate)["default-route"] == []
    assert scratch.decode_delegates(scratch.encode_delegates([delegate]))[0].default_route == ()


@pytest.mark.parametrize(
    ("given", "printed"),
    [
        ("198.18.0.1", "198.18.0.1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("::ffff:198.18.0.1", "198.18.0.1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
    ],
)
def test_default_route_ips_print_like_go(given: str, printed: str) -> None:
    assert entry(Delegate(raw=BRIDGE, name="b", is_list=False, default_route=(given,)))[
        "default-route"
    ] == [printed]


@pytest.mark.parametrize("bad", ["198.18.0.300", "fe80::1%eth0", "gw"])
def test_bad_default_route_ip_is_an_error(bad: str) -> None:
    with pytest.raises(InvalidConfigError):
        scratch.encode_delegates(
            [Delegate(raw=BRIDGE, name="b", is_list=False, default_route=(bad,))]
        )


def test_conf_view_is_sorted_without_empty_dns_and_keeps_real_dns() -> None:
    raw = (
        b'{"type":"bridge","name":"b","cniVersion":"1.0.0","ipam":{"type":"static","x":1},'
        b'"capabilities":{"mac":true,"ips":true},"dns":{"nameservers":["192.0.2.53"],'
        b'"search":["svc"]},"prevResult":{"cniVersion":"1.0.0","mtu":1500.0}}'
    )
    conf = json.dumps(
        entry(Delegate(raw=raw, name="b", is_list=False))["Conf"], separators=(",", ":")
    )
    assert conf == (
        '{"capabilities":{"ips":true,"mac":true},"cniVersion":"1.0.0",'
        '"dns":{"nameservers":["192.0.2.53"],"search":["svc"]},"ipam":{"type":"static"},'
        '"name":"b","prevResult":{"cniVersion":"1.0.0","mtu":1500},"type":"bridge"}'
    )
    no_dns = Delegate(raw=b'{"type":"bridge","dns":{"nameservers":[]}}', name="b", is_list=False)
    assert entry(no_dns)["Conf"] == {"ipam": {}, "type": "bridge"}


def test_conflist_view_keeps_struct_order_and_flags() -> None:
    raw = (
        b'{"plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"tuning"}],'
        b'"disableGC":true,"disableCheck":true,"name":"l","cniVersion":"1.1.0"}'
    )
    data = scratch.encode_delegates([load_delegate(raw)])
    assert (
        b'"ConfList":{"cniVersion":"1.1.0","name":"l","disableCheck":true,"disableGC":true,' in data
    )
    assert (
        b'"plugins":[{"ipam":{"type":"host-local"},"type":"bridge"},{"ipam":{},"type":"tuning"}]}'
        in data
    )
    assert b'"Conf":{"cniVersion":"1.1.0","ipam":{},"name":"l"}' in data


def test_html_characters_are_escaped_like_go() -> None:
    data = scratch.encode_delegates(
        [Delegate(raw=b'{"type":"b","name":"a<b"}', name="x&y", is_list=False)]
    )
    assert b'"Name":"x\\u0026y"' in data
    assert b'"name":"a\\u003cb"' in data


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[",
        b'[{"Conf":{"ipam":{}},"Name":"x"',
        b"{}",
        b"[1]",
        b'[{"Name":1}]',
        b'[{"Name":"x","Bytes":"not base64!"}]',
        b'[{"Name":"x","ConfList":{"plugins":"bridge"}}]',
    ],
)
def test_corrupt_cache_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        scratch.decode_delegates(data)
    assert err.value.code == 6


@pytest.mark.parametrize("path", CACHES[:1], ids=lambda p: p.parent.name)
def test_truncated_golden_cache_is_a_decode_error(path: Path) -> None:
    data = path.read_bytes()
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError):
            scratch.decode_delegates(data[:cut])


def test_empty_cache_has_no_delegates() -> None:
    assert scratch.decode_delegates(b"null") == []
    assert scratch.decode_delegates(b"[]") == []


def test_old_cache_without_bytes_rebuilds_the_config_from_the_views() -> None:
    data = json.dumps(
        [
            {
                "Conf": {"cniVersion": "0.3.1", "name": "flannel", "type": "flannel"},
                "Name": "flannel",
            },
            {
                "Conf": {"cniVersion": "0.3.1", "name": "chain"},
                "ConfList": {
                    "cniVersion": "0.3.1",
                    "name": "chain",
                    "plugins": [{"type": "bridge"}],
                },
                "Name": "ns/chain",
                "ifnameRequest": "net7",
            },
        ]
    ).encode()
    conf, chain = scratch.decode_delegates(data)
    assert conf == Delegate(
        raw=b'{"cniVersion":"0.3.1","ipam":{},"name":"flannel","type":"flannel"}',
        name="flannel",
        is_list=False,
    )
    assert chain.is_list and not chain.list_only
    assert (
        chain.raw
        == b'{"cniVersion":"0.3.1","name":"chain","plugins":[{"ipam":{},"type":"bridge"}]}'
    )
    assert chain.ifname_request == "net7"


def test_base64_with_line_breaks_is_accepted_like_go() -> None:
    encoded = base64.b64encode(BRIDGE).decode()
    data = json.dumps([{"Name": "br", "Bytes": encoded[:8] + "\r\n" + encoded[8:]}]).encode()
    assert scratch.decode_delegates(data)[0].raw == BRIDGE


# ---------------------------------------------------------------- loading delegates


def test_load_delegate_detects_conflists_like_go() -> None:
    assert not load_delegate(BRIDGE).is_list
    assert load_delegate(BRIDGE).name == "br"
    assert not load_delegate(b'{"Type":"bridge","Name":"B"}').is_list
    chain = load_delegate(b'{"name":"c","plugins":[{"type":"bridge"}]}', name="ns/c")
    assert chain.is_list and chain.name == "ns/c" and not chain.list_only


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"name":"x"}', "delegates[0].type"),
        (b'{"name":"x","plugins":[]}', "delegates[0].type"),
        (b'{"name":"x","plugins":[{"mtu":1}]}', "delegates[0].plugins[0].type"),
        (b'{"name":"x","plugins":[null]}', "delegates[0].plugins[0]"),
        (b'{"name":5,"type":"bridge"}', "delegates[0].name"),
        (b'{"type":"bridge","ipam":"host-local"}', "delegates[0].ipam"),
        (b'{"type":"bridge","dns":{"nameservers":"192.0.2.53"}}', "delegates[0].dns.nameservers"),
        (
            b'{"name":"x","plugins":[{"type":"a"}],"disableCheck":"true"}',
            "delegates[0].disableCheck",
        ),
    ],
)
def test_load_delegate_errors_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidConfigError) as err:
        load_delegate(raw, prefix="delegates[0].")
    assert err.value.field == field


def test_load_delegate_rejects_non_json() -> None:
    with pytest.raises(DecodeError):
        load_delegate(b"{nope")


# ---------------------------------------------------------------- the file


def test_save_load_remove(tmp_path: Path) -> None:
    cni_dir = tmp_path / "multus"
    delegates = [Delegate(raw=BRIDGE, name="br", is_list=False, ifname_request="net1")]
    assert scratch.load(str(cni_dir), CID) is None
    scratch.save(str(cni_dir), CID, delegates)
    path = cni_dir / CID
    assert path.read_bytes() == scratch.encode_delegates(delegates)
    assert scratch.load(str(cni_dir), CID) == delegates
    scratch.remove(str(cni_dir), CID)
    assert not path.exists()
    scratch.remove(str(cni_dir), CID)  # idempotent


def test_permissions_and_no_temp_files_left(tmp_path: Path) -> None:
    cni_dir = tmp_path / "a" / "multus"
    delegates = [Delegate(raw=BRIDGE, name="br", is_list=False)]
    scratch.save(str(cni_dir), CID, delegates)
    scratch.save(str(cni_dir), CID, delegates * 2)  # replaces the file
    assert os.listdir(cni_dir) == [CID]
    assert stat.S_IMODE((cni_dir / CID).stat().st_mode) == 0o600
    assert stat.S_IMODE(cni_dir.stat().st_mode) == 0o700
    assert scratch.load(str(cni_dir), CID) == delegates * 2


def test_failed_write_leaves_no_temp_file_and_keeps_the_old_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = [Delegate(raw=BRIDGE, name="old", is_list=False)]
    scratch.save(str(tmp_path), CID, old)

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(IOFailure) as err:
        scratch.save(str(tmp_path), CID, [Delegate(raw=BRIDGE, name="new", is_list=False)])
    assert err.value.code == 5
    assert err.value.path == str(tmp_path / CID)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [CID]
    assert scratch.load(str(tmp_path), CID) == old


def test_corrupt_file_on_disk_names_the_path(tmp_path: Path) -> None:
    (tmp_path / CID).write_bytes(b'[{"Conf":')
    with pytest.raises(DecodeError) as err:
        scratch.load(str(tmp_path), CID)
    assert err.value.path == str(tmp_path / CID)


@pytest.mark.parametrize("container_id", ["../etc", "a/b", ".hidden"])
def test_container_id_cannot_leave_the_directory(tmp_path: Path, container_id: str) -> None:
    with pytest.raises(InvalidEnvironmentError):
        scratch.save(str(tmp_path), container_id, [])
    with pytest.raises(InvalidEnvironmentError):
        scratch.load(str(tmp_path), container_id)


def test_a_delegate_is_parsed_once_per_bytes_and_name() -> None:
    """NADs are resolved on every ADD; the same bytes give the same immutable delegate."""
    raw = b'{"cniVersion": "1.0.0", "name": "n", "type": "bridge"}'
    assert load_delegate(raw, name="ns/a") is load_delegate(bytearray(raw), name="ns/a")
    assert load_delegate(raw, name="ns/b").name == "ns/b"
    assert load_delegate(raw).name == "n"
