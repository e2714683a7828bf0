"""The selection annotations: both forms, every key, and every error naming its field."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymultus.cni.errors import InvalidConfigError
from pymultus.k8s.selection import (
    Bandwidth,
    NetworkSelection,
    PortMapping,
    check_gateways,
    is_valid_mac,
    parse_default_network_annotation,
    parse_networks_annotation,
)

NETS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NET = "v1.multus-cni.io/default-network"


def _parse(value: str) -> list[NetworkSelection]:
    return parse_networks_annotation(value, "pod-ns")


def _error(value: str) -> InvalidConfigError:
    with pytest.raises(InvalidConfigError) as caught:
        _parse(value)
    return caught.value


def _json(*elements: object) -> str:
    return json.dumps(list(elements))


# --- comma form --------------------------------------------------------------------------


def test_empty_annotation_means_no_networks() -> None:
    assert _parse("") == []


def test_comma_form_names_namespaces_and_interfaces() -> None:
    assert _parse("br-a, other-ns/sriov-a@vf0,br-a") == [
        NetworkSelection(name="br-a", namespace="pod-ns"),
        NetworkSelection(name="sriov-a", namespace="other-ns", interface="vf0"),
        NetworkSelection(name="br-a", namespace="pod-ns"),
    ]


def test_comma_form_trims_every_part() -> None:
    assert _parse("\t ns / name @ if0 \u3000") == [
        NetworkSelection(name="name", namespace="ns", interface="if0")
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/name", NetworkSelection(name="name", namespace="pod-ns")),  # empty ns: the pod's
        ("name@", NetworkSelection(name="name", namespace="pod-ns")),  # empty ifname: none
        ("a.b", NetworkSelection(name="a.b", namespace="pod-ns")),  # dotted names are allowed
        ("0", NetworkSelection(name="0", namespace="pod-ns")),
    ],
)
def test_comma_form_edge_items(value: str, expected: NetworkSelection) -> None:
    assert _parse(value) == [expected]


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ("a/b/c", f"{NETS}[0]", 'has more than one "/"'),
        ("x, a@b@c", f"{NETS}[1]", 'has more than one "@"'),
        ("Bad_Name", f"{NETS}[0].name", "is not a valid object name"),
        ("-a", f"{NETS}[0].name", "is not a valid object name"),
        ("a.", f"{NETS}[0].name", "is not a valid object name"),
        ("a" * 254, f"{NETS}[0].name", "is not a valid object name"),
        ("a, , b", f"{NETS}[1].name", "a network name is required"),
        ("a,", f"{NETS}[1].name", "a network name is required"),
        ("   ", f"{NETS}[0].name", "a network name is required"),
        ("ns/", f"{NETS}[0].name", "is required"),
        ("Upper/x", f"{NETS}[0].namespace", "is not a valid namespace"),
        ("a.b/x", f"{NETS}[0].namespace", "is not a valid namespace"),
        (f"{'n' * 64}/x", f"{NETS}[0].namespace", "is not a valid namespace"),
        ("x@abcdefghijklmnop", f"{NETS}[0].interface", "too long"),
        ("x@a:b", f"{NETS}[0].interface", "whitespace"),
        ("x@.", f"{NETS}[0].interface", ". or .."),
        ("x@..", f"{NETS}[0].interface", ". or .."),
        ("a@net1, b@net1", f"{NETS}[1].interface", f"already requested by {NETS}[0]"),
    ],
)
def test_comma_form_errors(value: str, field: str, message: str) -> None:
    err = _error(value)

    assert err.field == field
    assert str(err).startswith(f"{field}: ")
    assert message in str(err)
    assert err.code == 7


def test_fifteen_byte_interface_name_is_the_longest_allowed() -> None:
    [sel] = _parse("x@abcdefghijklmno")

    assert sel.interface == "abcdefghijklmno"
    assert _error("x@abcdefghijklmn\u00e9").field == f"{NETS}[0].interface"  # 16 bytes


# --- JSON form ---------------------------------------------------------------------------


def test_json_form_with_every_key() -> None:
    value = _json(
        {
            "name": "static-c",
            "namespace": "other",
            "interface": "data0",
            "ips": ["198.51.100.7/24", "2001:db8::7"],
            "mac": "c2:11:22:33:44:66",
            "infiniband-guid": "c2:11:22:33:44:55:66:77",
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": "192.0.2.1"},
                {"hostPort": 53, "containerPort": 53},
            ],
            "bandwidth": {"ingressRate": 1000, "egressBurst": 20},
            "cni-args": {"vlan": 101, "nested": {"a": [1, "b"]}},
            "default-route": ["198.51.100.1"],
            "deviceID": "0000:03:00.1",
            "ipam-claim-reference": "ignored-by-multus",
        }
    )

    assert _parse(value) == [
        NetworkSelection(
            name="static-c",
            namespace="other",
            interface="data0",
            ips=("198.51.100.7/24", "2001:db8::7"),
            mac="c2:11:22:33:44:66",
            infiniband_guid="c2:11:22:33:44:55:66:77",
            port_mappings=(
                PortMapping(hostPort=8080, containerPort=80, protocol="TCP", hostIP="192.0.2.1"),
                PortMapping(hostPort=53, containerPort=53),
            ),
            bandwidth=Bandwidth(ingressRate=1000, egressBurst=20),
            cni_args={"vlan": 101, "nested": {"a": [1, "b"]}},
            default_route=("198.51.100.1",),
            device_id="0000:03:00.1",
        )
    ]


def test_json_form_defaults() -> None:
    [sel] = _parse(_json({"name": "a"}))

    assert sel == NetworkSelection(name="a", namespace="pod-ns")
    assert sel.default_route is None
    assert sel.cni_args is None
    assert sel.bandwidth is None


def test_empty_default_route_list_is_kept_apart_from_absent() -> None:
    [sel] = _parse(_json({"name": "a", "default-route": []}))

    assert sel.default_route == ()


def test_default_route_is_stored_as_go_prints_it() -> None:
    [sel] = _parse(_json({"name": "a", "default-route": ["2001:DB8:0:0::1", "::ffff:192.0.2.1"]}))

    assert sel.default_route == ("2001:db8::1", "192.0.2.1")


@pytest.mark.parametrize(
    ("element", "interface"),
    [
        ({"name": "a", "interfaceRequest": "old0"}, "old0"),
        ({"name": "a", "interface": "new0", "interfaceRequest": "old0"}, "new0"),
        ({"name": "a", "interface": "", "interfaceRequest": "old0"}, "old0"),
    ],
)
def test_interface_request_alias_is_used_only_without_interface(
    element: dict[str, str], interface: str
) -> None:
    [sel] = _parse(_json(element))

    assert sel.interface == interface


def test_json_keys_match_case_insensitively_like_go() -> None:
    value = _json(
        {"NAME": "a", "Namespace": "ns", "IPs": ["192.0.2.1"], "MAC": "02:00:00:00:00:01"}
    )

    assert _parse(value) == [
        NetworkSelection(name="a", namespace="ns", ips=("192.0.2.1",), mac="02:00:00:00:00:01")
    ]


def test_exact_key_match_wins_over_a_folded_one_and_last_duplicate_wins() -> None:
    [sel] = _parse('[{"name":"first","Name":"second","mac":"02:00:00:00:00:01"}]')

    assert sel.name == "second"


def test_null_values_count_as_absent() -> None:
    value = _json(
        {
            "name": "a",
            "namespace": None,
            "ips": None,
            "mac": None,
            "cni-args": None,
            "default-route": None,
            "bandwidth": None,
            "portMappings": None,
        }
    )

    assert _parse(value) == [NetworkSelection(name="a", namespace="pod-ns")]


def test_json_is_detected_by_a_quote_alone() -> None:
    assert _error('"a"').field == NETS


def test_dotted_names_are_accepted_in_json() -> None:
    assert _parse(_json({"name": "a.b.c"}))[0].name == "a.b.c"


def test_portmapping_protocol_is_checked_case_insensitively_and_kept_as_given() -> None:
    value = _json(
        {"name": "a", "portMappings": [{"hostPort": 1, "containerPort": 65535, "protocol": "sctp"}]}
    )

    assert _parse(value)[0].port_mappings == (
        PortMapping(hostPort=1, containerPort=65535, protocol="sctp"),
    )


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ("[", NETS, "is not valid JSON"),
        ('[{"name":"a"}] x', NETS, "is not valid JSON"),
        ('{"name":"a"}', NETS, "must be a JSON list of objects, not an object"),
        ("[null]", f"{NETS}[0]", "must be an object, not null"),
        ('["a"]', f"{NETS}[0]", "must be an object, not a string"),
        ("[{}]", f"{NETS}[0].name", "is required"),
        ('[{"name":""}]', f"{NETS}[0].name", "is required"),
        ('[{"name":5}]', f"{NETS}[0].name", "must be a string, not a number"),
        ('[{"name":"a/b"}]', f"{NETS}[0].name", "is not a valid object name"),
        ('[{"name":"a","namespace":"a b"}]', f"{NETS}[0].namespace", "not a valid namespace"),
        ('[{"name":"a","interface":"abcdefghijklmnop"}]', f"{NETS}[0].interface", "too long"),
        ('[{"name":"a","interface":"a b"}]', f"{NETS}[0].interface", "whitespace"),
        ('[{"name":"a","interface":true}]', f"{NETS}[0].interface", "must be a string"),
        ('[{"name":"a","interfaceRequest":"a/b"}]', f"{NETS}[0].interfaceRequest", "whitespace"),
        ('[{"name":"a","ips":"192.0.2.1"}]', f"{NETS}[0].ips", "must be a list of strings"),
        ('[{"name":"a","ips":[5]}]', f"{NETS}[0].ips[0]", "must be a string"),
        ('[{"name":"a","ips":["192.0.2.1","x"]}]', f"{NETS}[0].ips[1]", "not a valid IP"),
        ('[{"name":"a","ips":["192.0.2.1/33"]}]', f"{NETS}[0].ips[0]", "not a valid IP"),
        ('[{"name":"a","ips":["192.0.2.1/255.0.0.0"]}]', f"{NETS}[0].ips[0]", "not a valid IP"),
        ('[{"name":"a","ips":["192.0.2.1/"]}]', f"{NETS}[0].ips[0]", "not a valid IP"),
        ('[{"name":"a","ips":["fe80::1%eth0"]}]', f"{NETS}[0].ips[0]", "not a valid IP"),
        ('[{"name":"a","ips":["192.0.2.01"]}]', f"{NETS}[0].ips[0]", "not a valid IP"),
        ('[{"name":"a","ips":[""]}]', f"{NETS}[0].ips[0]", "not a valid IP"),
        ('[{"name":"a","mac":5}]', f"{NETS}[0].mac", "must be a string"),
        ('[{"name":"a","infiniband-guid":"zz"}]', f"{NETS}[0].infiniband-guid", "not a valid GUID"),
        ('[{"name":"a","portMappings":{}}]', f"{NETS}[0].portMappings", "must be a list"),
        ('[{"name":"a","portMappings":[null]}]', f"{NETS}[0].portMappings[0]", "must be an object"),
        (
            '[{"name":"a","portMappings":[{"hostPort":80}]}]',
            f"{NETS}[0].portMappings[0].containerPort",
            "is required",
        ),
        (
            '[{"name":"a","portMappings":[{"hostPort":0,"containerPort":80}]}]',
            f"{NETS}[0].portMappings[0].hostPort",
            "out of range (1..65535)",
        ),
        (
            '[{"name":"a","portMappings":[{"hostPort":80,"containerPort":65536}]}]',
            f"{NETS}[0].portMappings[0].containerPort",
            "out of range",
        ),
        (
            '[{"name":"a","portMappings":[{"hostPort":"80","containerPort":80}]}]',
            f"{NETS}[0].portMappings[0].hostPort",
            "must be an integer, not a string",
        ),
        (
            '[{"name":"a","portMappings":[{"hostPort":80.5,"containerPort":80}]}]',
            f"{NETS}[0].portMappings[0].hostPort",
            "must be an integer, not a number",
        ),
        (
            '[{"name":"a","portMappings":[{"hostPort":true,"containerPort":80}]}]',
            f"{NETS}[0].portMappings[0].hostPort",
            "must be an integer, not a boolean",
        ),
        (
            '[{"name":"a","portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}]',
            f"{NETS}[0].portMappings[0].protocol",
            "is not one of TCP, UDP, SCTP",
        ),
        (
            '[{"name":"a","portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"x"}]}]',
            f"{NETS}[0].portMappings[0].hostIP",
            "not a valid IP",
        ),
        ('[{"name":"a","bandwidth":[]}]', f"{NETS}[0].bandwidth", "must be an object, not a list"),
        (
            '[{"name":"a","bandwidth":{"ingressRate":-1}}]',
            f"{NETS}[0].bandwidth.ingressRate",
            "out of range",
        ),
        (
            '[{"name":"a","bandwidth":{"egressBurst":9223372036854775808}}]',
            f"{NETS}[0].bandwidth.egressBurst",
            "out of range",
        ),
        ('[{"name":"a","cni-args":[1]}]', f"{NETS}[0].cni-args", "must be an object, not a list"),
        (
            '[{"name":"a","default-route":"192.0.2.1"}]',
            f"{NETS}[0].default-route",
            "must be a list",
        ),
        ('[{"name":"a","default-route":["gw"]}]', f"{NETS}[0].default-route[0]", "not a valid IP"),
        (
            '[{"name":"a","default-route":[null]}]',
            f"{NETS}[0].default-route[0]",
            "must be a string",
        ),
        ('[{"name":"a","deviceID":1}]', f"{NETS}[0].deviceID", "must be a string"),
        (
            '[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]',
            f"{NETS}[1].interface",
            "already requested",
        ),
    ],
)
def test_json_form_errors(value: str, field: str, message: str) -> None:
    err = _error(value)

    assert err.field == field
    assert str(err).startswith(f"{field}: ")
    assert message in str(err)


def test_error_message_names_annotation_index_and_field() -> None:
    err = _error(_json({"name": "a"}, {"name": "b", "mac": "zz"}))

    assert str(err) == 'k8s.v1.cni.cncf.io/networks[1].mac: "zz" is not a valid MAC address'
    assert err.field == "k8s.v1.cni.cncf.io/networks[1].mac"


def test_an_error_in_a_later_element_rejects_the_whole_annotation() -> None:
    with pytest.raises(InvalidConfigError):
        _parse(_json({"name": "good"}, {"name": "bad", "ips": ["nope"]}))


# --- MAC addresses: Go's net.ParseMAC ----------------------------------------------------


@pytest.mark.parametrize(
    "mac",
    [
        "01:23:45:67:89:AB",
        "01:23:45:67:89:ab:cd:ef",
        "01:23:45:67:89:ab:cd:ef:00:00:01:23:45:67:89:ab:cd:ef:00:00",
        "01-23-45-67-89-AB",
        "01-23-45-67-89-ab-cd-ef",
        "0123.4567.89AB",
        "0123.4567.89ab.cdef",
        "0123.4567.89ab.cdef.0000.0123.4567.89ab.cdef.0000",
    ],
)
def test_valid_mac_forms(mac: str) -> None:
    assert is_valid_mac(mac)
    assert _parse(_json({"name": "a", "mac": mac}))[0].mac == mac  # kept as written


@pytest.mark.parametrize(
    "mac",
    [
        "",
        "zz",
        "01.02.03.04.05.06",
        "01:02:03:04:05:06:",
        "x1:02:03:04:05:06",
        "01002:03:04:05:06",
        "01:02003:04:05:06",
        "01:02:03:04:05006",
        "01-02:03:04:05:06",
        "01:02-03-04-05-06",
        "0123:4567:89AF",
        "0123-4567-89AF",
        "01:23:45:67:89:ab:cd",  # 7 bytes
        "0123.4567.89ab.",
        "01:23:45:67:89:\u0661\u0662",  # non-ASCII digits
    ],
)
def test_invalid_mac_forms(mac: str) -> None:
    assert not is_valid_mac(mac)


# --- the default-network annotation ------------------------------------------------------


def test_default_network_namespace_defaults_to_multus_namespace() -> None:
    assert parse_default_network_annotation("calico-conf", "kube-system") == NetworkSelection(
        name="calico-conf", namespace="kube-system"
    )


def test_default_network_in_json_keeps_its_requests() -> None:
    value = _json({"name": "calico-conf", "namespace": "net", "ips": ["192.0.2.5/24"]})

    sel = parse_default_network_annotation(value, "kube-system")

    assert (sel.namespace, sel.ips) == ("net", ("192.0.2.5/24",))


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ("", DEFAULT_NET, "must name exactly one network"),
        ("a, b", DEFAULT_NET, "it names 2"),
        ("[]", DEFAULT_NET, "it names 0"),
        ('[{"name":"a","mac":"x"}]', f"{DEFAULT_NET}[0].mac", "not a valid MAC address"),
        ("A", f"{DEFAULT_NET}[0].name", "not a valid object name"),
    ],
)
def test_default_network_errors(value: str, field: str, message: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        parse_default_network_annotation(value, "kube-system")

    assert caught.value.field == field
    assert message in str(caught.value)


# --- gateways across the annotation ------------------------------------------------------


def _with_routes(*routes: tuple[str, ...] | None) -> list[NetworkSelection]:
    return [
        NetworkSelection(name=f"n{i}", namespace="ns", default_route=r)
        for i, r in enumerate(routes)
    ]


@pytest.mark.parametrize(
    "routes",
    [
        (None, None),
        ((), ()),
        (("192.0.2.1",), ("2001:db8::1",)),
        (("192.0.2.1", "2001:db8::1"), None),
    ],
)
def test_one_gateway_per_family_is_fine(routes: tuple[tuple[str, ...] | None, ...]) -> None:
    check_gateways(_with_routes(*routes))


@pytest.mark.parametrize(
    ("routes", "field"),
    [
        ((("192.0.2.1",), ("198.51.100.1",)), f"{NETS}[1].default-route"),
        ((None, ("192.0.2.1", "192.0.2.1")), f"{NETS}[1].default-route"),
        ((("2001:db8::1",), None, ("2001:db8::2",)), f"{NETS}[2].default-route"),
    ],
)
def test_two_gateways_of_one_family_are_refused(
    routes: tuple[tuple[str, ...] | None, ...], field: str
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        check_gateways(_with_routes(*routes))

    assert caught.value.field == field
    assert "does not support ECMP" in str(caught.value)


def test_ipv4_mapped_gateway_counts_as_ipv4() -> None:
    selections = _parse(
        _json(
            {"name": "a", "default-route": ["::ffff:192.0.2.1"]},
            {"name": "b", "default-route": ["192.0.2.9"]},
        )
    )

    with pytest.raises(InvalidConfigError, match=re.escape("IPv4 gateway 192.0.2.9")):
        check_gateways(selections)


# --- never a traceback -------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_element_keys = st.sampled_from(
    [
        "name",
        "namespace",
        "ips",
        "mac",
        "interface",
        "portMappings",
        "bandwidth",
        "cni-args",
        "default-route",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_gives_a_config_error(value: str) -> None:
    try:
        parse_networks_annotation(value, "ns")
    except InvalidConfigError as err:
        assert err.field is not None and err.field.startswith(NETS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(_element_keys, _json_values, max_size=5), max_size=3))
def test_any_json_elements_parse_or_give_a_config_error(elements: list[dict[str, object]]) -> None:
    try:
        parse_networks_annotation(json.dumps(elements), "ns")
    except InvalidConfigError as err:
        assert err.field is not None and err.field.startswith(NETS)
