"""Delegate configs: exact bytes kept, libcni's parsing rules, Go's re-marshalling."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest

from pymultus.cni import netconf
from pymultus.cni.errors import DecodeError, InternalError, InvalidConfigError, IOFailure

GOLDEN = Path("/work/shared/reference/golden")

BRIDGE = (
    b'{"cniVersion": "1.0.0", "name": "br-a", "type": "bridge", "bridge": "br0",\n'
    b' "capabilities": {"ips": true, "mac": false}, "ipam": {"type": "host-local"}}'
)


def conflist(*plugins: dict[str, object], **top: object) -> bytes:
    return json.dumps(
        {"cniVersion": "1.0.0", "name": "net", **top, "plugins": list(plugins)}
    ).encode()


# ---------------------------------------------------------------- single configs


def test_conf_keeps_exact_bytes_and_parses_the_minimal_view() -> None:
    conf = netconf.conf_from_bytes(BRIDGE)
    assert conf.raw == BRIDGE
    assert (conf.name, conf.cni_version, conf.type) == ("br-a", "1.0.0", "bridge")
    assert conf.capabilities == {"ips": True, "mac": False}
    assert conf.data["bridge"] == "br0"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b'{"name": "x"}', "type"),
        (b'{"name": "x", "type": ""}', "type"),
        (b'{"name": "x", "type": 3}', "type"),
        (b'{"name": 3, "type": "bridge"}', "name"),
        (b'{"cniVersion": 1, "type": "bridge"}', "cniVersion"),
        (b'{"type": "bridge", "capabilities": ["ips"]}', "capabilities"),
        (b'{"type": "bridge", "capabilities": {"ips": "yes"}}', "capabilities.ips"),
        (b'{"type": "bridge", "ipam": "host-local"}', "ipam"),
        (b'{"type": "bridge", "ipam": {"type": 1}}', "ipam.type"),
        (b'{"type": "bridge", "dns": []}', "dns"),
    ],
)
def test_conf_errors_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        netconf.conf_from_bytes(data)
    assert info.value.field == field
    assert info.value.error_code == 7


@pytest.mark.parametrize("data", [b"", b"{", b"[1]", b'"bridge"', b"null"])
def test_conf_that_is_not_a_json_object_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        netconf.conf_from_bytes(data)
    assert info.value.error_code == 6


def test_conf_fields_match_ignoring_case_as_go_does() -> None:
    conf = netconf.conf_from_bytes(b'{"Name": "n", "TYPE": "bridge", "CNIVersion": "0.4.0"}')
    assert (conf.name, conf.type, conf.cni_version) == ("n", "bridge", "0.4.0")


# ---------------------------------------------------------------- lists


def test_list_keeps_its_bytes_and_remarshals_its_plugins_like_libcni() -> None:
    raw = (
        b'{"cniVersion":"0.4.0","name":"chain","plugins":['
        b'{"type":"bridge","mtu":1500.0,"isGateway":true,"note":"a<b"},'
        b'{"type":"tuning","capabilities":{"mac":true}}]}'
    )
    net = netconf.conflist_from_bytes(raw)
    assert net.raw == raw
    assert (net.name, net.cni_version) == ("chain", "0.4.0")
    assert [p.type for p in net.plugins] == ["bridge", "tuning"]
    assert net.plugins[0].raw == (
        b'{"isGateway":true,"mtu":1500,"note":"a\\u003cb","type":"bridge"}'
    )
    assert net.plugins[1].capabilities == {"mac": True}
    assert not (net.disable_check or net.disable_gc or net.load_only_inlined)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b'{"plugins": [{"type": "bridge"}]}', "name"),
        (b'{"name": 1, "plugins": [{"type": "bridge"}]}', "name"),
        (b'{"name": "n"}', "plugins"),
        (b'{"name": "n", "plugins": []}', "plugins"),
        (b'{"name": "n", "plugins": {"type": "bridge"}}', "plugins"),
        (b'{"name": "n", "plugins": ["bridge"]}', "plugins[0]"),
        (b'{"name": "n", "plugins": [{"type": "bridge"}, {"mtu": 1}]}', "plugins[1].type"),
        (b'{"name": "n", "plugins": [{"type": "a", "capabilities": {"x": 1}}]}',
         "plugins[0].capabilities.x"),
        (b'{"name": "n", "disableCheck": "maybe", "plugins": [{"type": "a"}]}', "disableCheck"),
        (b'{"name": "n", "disableGC": 1, "plugins": [{"type": "a"}]}', "disableGC"),
        (b'{"name": "n", "loadOnlyInlinedPlugins": true}', "plugins"),
        (b'{"name": "n", "cniVersions": ["1.0.0", "x"], "plugins": [{"type": "a"}]}',
         "cniVersions"),
        (b'{"name": "n", "cniVersions": "1.0.0", "plugins": [{"type": "a"}]}', "cniVersions"),
    ],
)  # fmt: skip
def test_list_errors_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        netconf.conflist_from_bytes(data)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("TRUE", True), ("false", False), (False, False)]
)
def test_list_flags_accept_booleans_and_their_strings(value: object, expected: bool) -> None:
    flags = {"disableCheck": value, "disableGC": value, "loadOnlyInlinedPlugins": value}
    net = netconf.conflist_from_bytes(conflist({"type": "a"}, **flags))
    assert (net.disable_check, net.disable_gc, net.load_only_inlined) == (expected,) * 3


@pytest.mark.parametrize(
    ("versions", "own", "expected"),
    [
        (["0.3.1", "1.0.0", "0.4.0"], "", "1.0.0"),
        (["0.4.0", "1.1.0", "9.9.9"], "", "1.1.0"),  # versions newer than libcni's are ignored
        (["0.3.1"], "1.0.0", "1.0.0"),  # cniVersion takes part in the choice
        (["9.0.0"], "0.4.0", "0.4.0"),
        ([], "0.4.0", "0.4.0"),
    ],
)
def test_list_cni_versions_picks_the_highest_supported(
    versions: list[str], own: str, expected: str
) -> None:
    data = json.dumps(
        {"name": "n", "cniVersion": own, "cniVersions": versions, "plugins": [{"type": "a"}]}
    ).encode()
    assert netconf.conflist_from_bytes(data).cni_version == expected


def test_conflist_from_conf_builds_libcnis_list() -> None:
    conf = netconf.conf_from_bytes(BRIDGE)
    net = netconf.conflist_from_conf(conf)
    assert net.raw == (
        b'{"cniVersion":"1.0.0","name":"br-a","plugins":[{"bridge":"br0","capabilities":'
        b'{"ips":true,"mac":false},"cniVersion":"1.0.0","ipam":{"type":"host-local"},'
        b'"name":"br-a","type":"bridge"}]}'
    )
    assert net.plugins == (conf,)
    assert (net.name, net.cni_version) == ("br-a", "1.0.0")


def test_load_any_takes_a_conf_or_a_list() -> None:
    assert netconf.load_any(BRIDGE).plugins[0].raw == BRIDGE
    listed = netconf.load_any(conflist({"type": "a"}, {"type": "b"}))
    assert [p.type for p in listed.plugins] == ["a", "b"]
    with pytest.raises(InvalidConfigError) as info:
        netconf.load_any(b'{"name": "n", "plugins": [{"type": "a"}, {}]}')
    assert info.value.field == "plugins[1].type"


# ---------------------------------------------------------------- files


def write(path: Path, data: bytes | dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def test_conflist_file_gets_its_subdirectory_plugins_in_name_order(tmp_path: Path) -> None:
    raw = conflist({"type": "bridge"})
    path = write(tmp_path / "10-net.conflist", raw)
    write(tmp_path / "net" / "20-b.conf", b'{"type": "tuning", "mtu": 1400}')
    write(tmp_path / "net" / "10-a.conf", b'{"type": "portmap"}')
    write(tmp_path / "net" / "30-c.json", b'{"type": "ignored"}')
    (tmp_path / "net" / "40-dir.conf").mkdir()
    net = netconf.conflist_from_file(str(path))
    assert [p.type for p in net.plugins] == ["bridge", "portmap", "tuning"]
    assert net.plugins[2].raw == b'{"type": "tuning", "mtu": 1400}'  # exact file bytes
    assert net.raw == raw  # as libcni: the list's bytes do not grow


def test_load_only_inlined_plugins_ignores_the_subdirectory(tmp_path: Path) -> None:
    path = write(tmp_path / "n.conflist", conflist({"type": "bridge"}, loadOnlyInlinedPlugins=True))
    write(tmp_path / "net" / "a.conf", b'{"type": "tuning"}')
    assert [p.type for p in netconf.conflist_from_file(str(path)).plugins] == ["bridge"]


def test_conflist_file_may_take_all_its_plugins_from_the_subdirectory(tmp_path: Path) -> None:
    path = write(tmp_path / "n.conflist", {"cniVersion": "1.0.0", "name": "net"})
    write(tmp_path / "net" / "a.conf", b'{"type": "tuning"}')
    assert [p.type for p in netconf.conflist_from_file(str(path)).plugins] == ["tuning"]
    (tmp_path / "net" / "a.conf").unlink()
    with pytest.raises(InvalidConfigError) as info:
        netconf.conflist_from_file(str(path))
    assert (info.value.field, info.value.path) == ("plugins", str(path))


def test_bad_subdirectory_plugin_names_its_file(tmp_path: Path) -> None:
    path = write(tmp_path / "n.conflist", conflist({"type": "bridge"}))
    bad = write(tmp_path / "net" / "a.conf", b'{"mtu": 1}')
    with pytest.raises(InvalidConfigError) as info:
        netconf.conflist_from_file(str(path))
    assert (info.value.field, info.value.path) == ("type", str(bad))
    assert str(bad) in info.value.msg


def test_conf_file_is_wrapped_and_unreadable_file_is_an_io_error(tmp_path: Path) -> None:
    path = write(tmp_path / "a.conf", BRIDGE)
    net = netconf.conflist_from_file(str(path))
    assert net.plugins[0].raw == BRIDGE
    assert net.name == "br-a"
    with pytest.raises(IOFailure):
        netconf.conflist_from_file(str(tmp_path / "missing.conflist"))


def test_files_in_dir_sorted_by_name_with_extension_filter(tmp_path: Path) -> None:
    for name in ("b.conflist", "a.json", "c.conf", "d.txt", ".e.conf"):
        write(tmp_path / name, b"{}")
    (tmp_path / "f.conf").mkdir()
    names = [Path(p).name for p in netconf.files_in_dir(str(tmp_path))]
    assert names == [".e.conf", "a.json", "b.conflist", "c.conf"]
    assert netconf.files_in_dir(str(tmp_path), (".conflist",)) == [str(tmp_path / "b.conflist")]
    assert netconf.files_in_dir(str(tmp_path / "missing")) == []


def test_find_by_name_takes_the_first_file_by_name(tmp_path: Path) -> None:
    write(tmp_path / "20-one.conf", {"cniVersion": "0.4.0", "name": "one", "type": "bridge"})
    write(tmp_path / "10-one.conflist", conflist({"type": "ptp"}, name="one"))
    write(tmp_path / "30-two.json", {"name": "two", "type": "macvlan"})
    found = netconf.find_by_name(str(tmp_path), "one")
    assert found is not None
    assert found.plugins[0].type == "ptp"
    two = netconf.find_by_name(str(tmp_path), "two")
    assert two is not None
    assert two.plugins[0].type == "macvlan"
    assert netconf.find_by_name(str(tmp_path), "three") is None
    write(tmp_path / "00-bad.conf", b"not json")
    with pytest.raises(DecodeError):
        netconf.find_by_name(str(tmp_path), "one")


# ---------------------------------------------------------------- injection


def test_inject_reproduces_go_multus_cni_args_injection() -> None:
    """Golden case 02: Multus injected ``args.cni`` into the NAD config through libcni's
    re-marshalling; the libcni cache holds the resulting bytes."""
    nad = (
        b'{"cniVersion":"1.0.0","name":"static-c","type":"bridge","bridge":"gold-brc",'
        b'"capabilities":{"ips":true,"mac":true},"ipam":{"type":"static"}}'
    )
    cache_file = next(
        (GOLDEN / "02-thin-json-static-ips-mac-default-route/results").glob("static-c-*")
    )
    expected = base64.b64decode(json.loads(cache_file.read_bytes())["config"])
    assert netconf.inject(nad, args={"cni": {"golden": "yes", "count": 2}}) == expected


def test_inject_sets_keys_keeps_the_rest_and_keeps_raw_values_verbatim() -> None:
    prev = msgspec.Raw(b'{"cniVersion":"0.4.0","ips":[],"dns":{}}')
    out = netconf.inject(
        b'{"type":"x","zeta":{"b":1,"a":2},"name":"old"}',
        {"cni.dev/valid-attachments": []},
        name="new",
        prevResult=prev,
    )
    assert out == (
        b'{"cni.dev/valid-attachments":[],"name":"new",'
        b'"prevResult":{"cniVersion":"0.4.0","ips":[],"dns":{}},"type":"x","zeta":{"a":2,"b":1}}'
    )


@pytest.mark.parametrize(
    ("number", "go"),
    [
        (b"1.0", b"1"),
        (b"1500", b"1500"),
        (b"0.5", b"0.5"),
        (b"1e21", b"1e+21"),
        (b"1e20", b"100000000000000000000"),
        (b"1152921504606846976", b"1152921504606847000"),  # 2**60 through float64
        (b"-3", b"-3"),
    ],
)
def test_inject_writes_numbers_as_go_float64(number: bytes, go: bytes) -> None:
    assert netconf.inject(b'{"n":' + number + b',"type":"x"}') == b'{"n":' + go + b',"type":"x"}'


def test_inject_escapes_like_go_and_refuses_null_values() -> None:
    assert netconf.inject(b'{"type":"x"}', note="<&>") == (
        b'{"note":"\\u003c\\u0026\\u003e","type":"x"}'
    )
    with pytest.raises(InternalError):
        netconf.inject(b'{"type":"x"}', prevResult=None)


PARSE_ONCE = {
    "10-net.conflist": conflist({"type": "bridge"}, loadOnlyInlinedPlugins=True),
    "10-net.conf": b'{"cniVersion": "1.0.0", "name": "net", "type": "bridge"}',
}


@pytest.mark.parametrize("name", PARSE_ONCE)
def test_a_file_is_read_every_time_and_parsed_once_per_content(tmp_path: Path, name: str) -> None:
    """The daemon reads its cluster network on every ADD: an edit is seen at once, while
    bytes already parsed are not parsed again (issue #7)."""
    path = write(tmp_path / name, PARSE_ONCE[name])
    a, b = netconf.conflist_from_file(str(path)), netconf.conflist_from_file(str(path))
    assert a.plugins[0] is b.plugins[0]  # the same parse
    path.write_bytes(PARSE_ONCE[name].replace(b"bridge", b"macvlan"))
    assert netconf.conflist_from_file(str(path)).plugins[0].type == "macvlan"
