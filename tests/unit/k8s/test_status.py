"""network-status entries: one rule of the NAD client's CreateNetworkStatuses per test."""

from __future__ import annotations

import msgspec
import pytest

from pymultus.cni.convert import parse_result, to_current
from pymultus.cni.errors import DecodeError
from pymultus.cni.result import DNS, Interface, IPConfig, Result, Route
from pymultus.k8s.devinfo import (
    DeviceInfo,
    PciDevice,
    device_info_from_mapping,
    parse_device_info,
)
from pymultus.k8s.status import (
    NetworkStatus,
    parse_network_status,
    render_network_status,
    statuses_for_result,
)

SANDBOX = "/var/run/netns/test"


def _result(
    interfaces: list[Interface] | None = None,
    ips: list[IPConfig] | None = None,
    routes: list[Route] | None = None,
    dns: DNS | None = None,
) -> Result:
    return Result(
        cniVersion="1.0.0",
        interfaces=interfaces or [],
        ips=ips or [],
        routes=routes or [],
        dns=dns,
    )


def _host(name: str) -> Interface:
    return Interface(name=name, mac="02:00:00:00:00:01")


def _pod(name: str, mac: str = "02:00:00:00:00:0a", mtu: int = 0) -> Interface:
    return Interface(name=name, mac=mac, mtu=mtu, sandbox=SANDBOX)


def _wire(entries: list[NetworkStatus]) -> list[dict[str, object]]:
    """What the annotation carries, as plain data (key order checked by the byte tests)."""
    decoded: list[dict[str, object]] = msgspec.json.decode(render_network_status(entries))
    return decoded


# --- exactly one interface ---------------------------------------------------------------


def test_single_interface_takes_all_ips_without_prefix() -> None:
    result = _result(
        [_pod("net1", mtu=1400)],
        [
            IPConfig(interface=0, address="198.51.100.7/24", gateway="198.51.100.1"),
            IPConfig(interface=5, address="2001:db8::7/64"),  # index ignored here
            IPConfig(address="203.0.113.9/32"),
        ],
    )

    assert _wire(statuses_for_result(result, "ns/a", False)) == [
        {
            "name": "ns/a",
            "interface": "net1",
            "ips": ["198.51.100.7", "2001:db8::7", "203.0.113.9"],
            "mac": "02:00:00:00:00:0a",
            "mtu": 1400,
            "dns": {},
        }
    ]


def test_single_interface_without_sandbox_still_gives_an_entry() -> None:
    result = _result([_host("br0")], [IPConfig(interface=0, address="198.51.100.7/24")])

    assert _wire(statuses_for_result(result, "ns/a", True)) == [
        {"name": "ns/a", "ips": ["198.51.100.7"], "default": True, "dns": {}}
    ]


@pytest.mark.parametrize("is_default", [True, False])
def test_default_appears_only_when_true(is_default: bool) -> None:
    [entry] = _wire(statuses_for_result(_result([_pod("eth0")]), "cbr0", is_default))

    assert ("default" in entry) is is_default
    assert entry.get("default", False) is is_default


def test_mtu_appears_only_when_not_zero() -> None:
    [entry] = _wire(statuses_for_result(_result([_pod("eth0", mtu=0)]), "cbr0", True))

    assert "mtu" not in entry


def test_dns_is_always_present_and_keeps_only_set_fields() -> None:
    dns = DNS(nameservers=["192.0.2.53"], search=["svc.local"], options=["ndots:5"])
    [entry] = _wire(statuses_for_result(_result([_pod("eth0")], dns=dns), "cbr0", True))

    assert entry["dns"] == {
        "nameservers": ["192.0.2.53"],
        "search": ["svc.local"],
        "options": ["ndots:5"],
    }


# --- gateway -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ([Route(dst="0.0.0.0/0", gw="198.51.100.1")], ["198.51.100.1"]),
        ([Route(dst="::/0", gw="2001:DB8::1")], ["2001:db8::1"]),
        ([Route(dst="", gw="198.51.100.1")], ["198.51.100.1"]),
        ([Route(dst="0.0.0.0/0")], ["<nil>"]),
        ([Route(dst="0.0.0.0/8", gw="198.51.100.1")], ["198.51.100.1"]),  # Go looks at the IP only
        ([Route(dst="203.0.113.0/24", gw="198.51.100.1")], None),
        ([Route(dst="0.0.0.5/0", gw="198.51.100.1")], None),  # the address as written is not 0
        (
            [Route(dst="0.0.0.0/0", gw="198.51.100.1"), Route(dst="::/0", gw="2001:db8::1")],
            ["198.51.100.1", "2001:db8::1"],
        ),
    ],
)
def test_gateway_lists_every_default_route(routes: list[Route], expected: list[str] | None) -> None:
    [entry] = _wire(statuses_for_result(_result([_pod("eth0")], routes=routes), "cbr0", True))

    assert entry.get("gateway") == expected


def test_nil_gateway_renders_like_go() -> None:
    entries = statuses_for_result(
        _result([_pod("eth0")], routes=[Route(dst="0.0.0.0/0")]), "x", False
    )

    assert '"gateway": [\n        "\\u003cnil\\u003e"\n    ]' in render_network_status(entries)


# --- zero or several interfaces ----------------------------------------------------------


def test_multi_interface_entries_per_sandbox_interface_with_ips_by_index() -> None:
    result = _result(
        [_host("br0"), _pod("net1", "02:00:00:00:00:0b"), _pod("net2", "02:00:00:00:00:0c", 9000)],
        [
            IPConfig(interface=2, address="198.51.100.2/24"),
            IPConfig(interface=1, address="198.51.100.1/24"),
            IPConfig(interface=0, address="203.0.113.1/24"),  # host side: dropped
            IPConfig(interface=7, address="203.0.113.7/24"),  # no such interface: dropped
            IPConfig(address="192.0.2.9/24"),  # no index: the last entry
        ],
        [Route(dst="0.0.0.0/0", gw="198.51.100.254"), Route(dst="192.0.2.0/24", gw="198.51.100.1")],
        DNS(domain="example.test"),
    )

    assert _wire(statuses_for_result(result, "ns/multi", False)) == [
        {
            "name": "ns/multi",
            "interface": "net1",
            "ips": ["198.51.100.1"],
            "mac": "02:00:00:00:00:0b",
            "dns": {"domain": "example.test"},
            "gateway": ["198.51.100.254"],
        },
        {
            "name": "ns/multi",
            "interface": "net2",
            "ips": ["198.51.100.2", "192.0.2.9"],
            "mac": "02:00:00:00:00:0c",
            "mtu": 9000,
            "dns": {"domain": "example.test"},
            "gateway": ["198.51.100.254"],
        },
    ]


def test_multi_interface_entries_do_not_share_lists() -> None:
    result = _result([_pod("a"), _pod("b")], routes=[Route(dst="0.0.0.0/0", gw="192.0.2.1")])
    first, second = statuses_for_result(result, "n", False)

    first.gateway.append("192.0.2.2")
    first.ips.append("192.0.2.3")

    assert second.gateway == ["192.0.2.1"]
    assert second.ips == []


@pytest.mark.parametrize(
    ("ips", "expected_default"),
    [
        # The interface of the first IP that has both a gateway and an index.
        (
            [
                IPConfig(interface=1, address="198.51.100.1/24"),
                IPConfig(interface=2, address="198.51.100.2/24", gateway="198.51.100.254"),
            ],
            ["b"],
        ),
        # No IP with a gateway: the first sandbox interface.
        ([IPConfig(interface=2, address="198.51.100.2/24")], ["a"]),
        # A gateway on an unindexed IP does not count.
        ([IPConfig(address="198.51.100.2/24", gateway="198.51.100.254")], ["a"]),
        # The gateway's interface is on the host side: nobody is marked (as in Go).
        ([IPConfig(interface=0, address="198.51.100.2/24", gateway="198.51.100.254")], []),
    ],
)
def test_master_marks_one_interface(ips: list[IPConfig], expected_default: list[str]) -> None:
    result = _result([_host("br0"), _pod("a"), _pod("b")], ips)

    entries = statuses_for_result(result, "cbr0", True)

    assert [e.interface for e in entries if e.default] == expected_default


def test_non_master_marks_nothing() -> None:
    result = _result(
        [_pod("a"), _pod("b")],
        [IPConfig(interface=0, address="198.51.100.2/24", gateway="198.51.100.254")],
    )

    assert not any(e.default for e in statuses_for_result(result, "ns/x", False))


def test_result_without_sandbox_interfaces_gives_no_entry() -> None:
    result = _result(
        [_host("br0"), _host("veth0")], [IPConfig(interface=0, address="192.0.2.1/24")]
    )

    assert statuses_for_result(result, "ns/x", True) == []


def test_result_without_interfaces_gives_no_entry_even_with_ips() -> None:
    result = _result(ips=[IPConfig(address="192.0.2.1/24", gateway="192.0.2.254")])

    assert statuses_for_result(result, "ns/passthru", True) == []


# --- the result's own version (converted to 1.x first) -----------------------------------

_RESULT_BY_VERSION = {
    "0.2.0": b'{"cniVersion":"0.2.0","ip4":{"ip":"198.51.100.7/24","gateway":"198.51.100.1"}}',
    "0.3.1": b'{"cniVersion":"0.3.1","interfaces":[{"name":"net1","mac":"02:00:00:00:00:0a",'
    b'"sandbox":"/ns"}],"ips":[{"version":"4","interface":0,"address":"198.51.100.7/24"}],'
    b'"routes":[{"dst":"0.0.0.0/0","gw":"198.51.100.1"}],"dns":{}}',
    "0.4.0": b'{"cniVersion":"0.4.0","interfaces":[{"name":"net1","mac":"02:00:00:00:00:0a",'
    b'"sandbox":"/ns"}],"ips":[{"version":"4","interface":0,"address":"198.51.100.7/24"}],'
    b'"routes":[{"dst":"0.0.0.0/0","gw":"198.51.100.1"}]}',
    "1.0.0": b'{"cniVersion":"1.0.0","interfaces":[{"name":"net1","mac":"02:00:00:00:00:0a",'
    b'"sandbox":"/ns"}],"ips":[{"interface":0,"address":"198.51.100.7/24"}],'
    b'"routes":[{"dst":"0.0.0.0/0","gw":"198.51.100.1"}]}',
    "1.1.0": b'{"cniVersion":"1.1.0","interfaces":[{"name":"net1","mac":"02:00:00:00:00:0a",'
    b'"mtu":1400,"sandbox":"/ns"}],"ips":[{"interface":0,"address":"198.51.100.7/24"}],'
    b'"routes":[{"dst":"0.0.0.0/0","gw":"198.51.100.1"}]}',
}


@pytest.mark.parametrize("version", sorted(_RESULT_BY_VERSION))
def test_status_of_each_result_version(version: str) -> None:
    result = to_current(parse_result(_RESULT_BY_VERSION[version]))

    entries = _wire(statuses_for_result(result, "ns/a", False))

    if version == "0.2.0":  # no interfaces at all: Go writes no entry for it
        assert entries == []
        return
    expected: dict[str, object] = {
        "name": "ns/a",
        "interface": "net1",
        "ips": ["198.51.100.7"],
        "mac": "02:00:00:00:00:0a",
        "dns": {},
        "gateway": ["198.51.100.1"],
    }
    if version == "1.1.0":
        expected = {**expected, "mtu": 1400}
    assert entries == [expected]


# --- device-info -------------------------------------------------------------------------

_DEVICE_JSON = (
    b'{"pci":{"representor-device":"eth5","pci-address":"0000:03:00.1","extra":1},'
    b'"version":"1.0.0","type":"pci","unknown":{"x":1}}'
)


def test_device_info_is_typed_ordered_and_unknown_keys_dropped() -> None:
    entries = statuses_for_result(
        _result([_pod("net1")]), "ns/sriov", False, msgspec.json.decode(_DEVICE_JSON)
    )

    assert render_network_status(entries) == (
        "[{\n"
        '    "name": "ns/sriov",\n'
        '    "interface": "net1",\n'
        '    "mac": "02:00:00:00:00:0a",\n'
        '    "dns": {},\n'
        '    "device-info": {\n'
        '        "type": "pci",\n'
        '        "version": "1.0.0",\n'
        '        "pci": {\n'
        '            "pci-address": "0000:03:00.1",\n'
        '            "representor-device": "eth5"\n'
        "        }\n"
        "    }\n"
        "}]"
    )


def test_device_info_goes_to_every_entry_of_a_multi_interface_result() -> None:
    info = DeviceInfo(type="pci", version="1.0.0", pci=PciDevice(pci_address="0000:03:00.1"))

    entries = statuses_for_result(_result([_pod("a"), _pod("b")]), "n", False, info)

    assert [e.device_info for e in entries] == [info, info]


def test_empty_device_info_file_still_shows_as_empty_object() -> None:
    [entry] = _wire(statuses_for_result(_result([_pod("a")]), "n", False, parse_device_info(b"{}")))

    assert entry["device-info"] == {}


@pytest.mark.parametrize("data", [b"not json", b'{"type": 5}', b"[]"])
def test_bad_device_info_file_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_device_info(data, path="/var/run/k8s.cni.cncf.io/devinfo/cni/x")


def test_bad_device_info_mapping_names_the_field() -> None:
    with pytest.raises(DecodeError) as caught:
        device_info_from_mapping({"pci": "not an object"})

    assert caught.value.field == "device-info"


# --- rendering and parsing ---------------------------------------------------------------


def test_render_joins_indented_elements_like_go() -> None:
    entries = [
        NetworkStatus(name="cbr0", interface="eth0", ips=["198.51.100.7"], default=True),
        NetworkStatus(name="ns/a&b<c>"),
    ]

    assert render_network_status(entries) == (
        "[{\n"
        '    "name": "cbr0",\n'
        '    "interface": "eth0",\n'
        '    "ips": [\n'
        '        "198.51.100.7"\n'
        "    ],\n"
        '    "default": true,\n'
        '    "dns": {}\n'
        "},{\n"
        '    "name": "ns/a\\u0026b\\u003cc\\u003e",\n'
        '    "dns": {}\n'
        "}]"
    )


def test_render_of_nothing_is_an_empty_list() -> None:
    assert render_network_status([]) == "[]"


def test_parse_reads_missing_optional_fields_as_defaults() -> None:
    [entry] = parse_network_status('[{"name":"x","default":true,"some-vendor-key":1}]')

    assert entry == NetworkStatus(name="x", default=True)


@pytest.mark.parametrize(
    "value",
    ["", "not json", '{"name":"x"}', '[{"interface":"eth0"}]', '[{"name":"x","ips":"1.2.3.4"}]'],
)
def test_parse_rejects_what_is_not_a_status_list(value: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_network_status(value)

    assert caught.value.field == "k8s.v1.cni.cncf.io/network-status"


# --- results that are not valid ----------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (_result([_pod("a")], [IPConfig(interface=0, address="bogus/24")]), "ips[0].address"),
        (_result([_pod("a")], [IPConfig(interface=0, address="198.51.100.1")]), "ips[0].address"),
        (_result([_pod("a")], routes=[Route(dst="nowhere")]), "routes[0].dst"),
        (_result([_pod("a")], routes=[Route(dst="0.0.0.0/0", gw="x")]), "routes[0].gw"),
    ],
)
def test_invalid_result_addresses_name_the_field(result: Result, field: str) -> None:
    with pytest.raises(DecodeError) as caught:
        statuses_for_result(result, "n", True)

    assert caught.value.field == field
