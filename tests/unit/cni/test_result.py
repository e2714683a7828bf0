"""CNI results: parsing, Go-exact encoding and conversion, on concrete vectors.

Byte-exact vectors come from Go Multus captures (``shared/reference/golden``); the conversion
vectors restate libcni's converters (``types/020``, ``types/040``, ``types/100``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import pytest
from tests.support.golden import golden_dir

from pymultus.cni.convert import (
    CHAIN,
    REGISTRY,
    Family,
    convert,
    encode_result,
    has_interfaces_or_ips,
    parse_result,
    result_version,
    to_current,
)
from pymultus.cni.errors import CniError, DecodeError, IncompatibleVersionError, InternalError
from pymultus.cni.result import (
    DNS,
    Interface,
    Interface040,
    IPConfig,
    IPConfig020,
    IPConfig040,
    Result,
    Result020,
    Result040,
    Route,
)

_ROOT = Path(__file__).resolve().parents[3]


def _golden_dir() -> Path:
    return golden_dir()


def _golden(rel: str) -> bytes:
    return (_golden_dir() / rel).read_bytes()


# --- byte-exact golden vectors -----------------------------------------------------------


@pytest.mark.parametrize(
    "rel",
    [
        "01-thin-comma-annotation/add.stdout",
        "02-thin-json-static-ips-mac-default-route/add.stdout",
        "04-thin-cni-0.4.0/add.stdout",
        "07-thick-daemon-responses/add.stdout",
        "07-thick-shim-requests/add.stdout",
    ],
)
def test_1x_stdout_round_trips_byte_exactly_with_sorted_keys(rel: str) -> None:
    data = _golden(rel)
    result = parse_result(data)
    assert isinstance(result, Result)
    assert encode_result(result, indent=True, sort_keys=True) == data
    assert encode_result(result, indent=True) == data  # libcni sorts 1.x by default


@pytest.mark.parametrize(
    "rel",
    [
        "04-thin-cni-0.4.0/cluster-network-also-0.4.0/add.stdout",
        "04-thin-cni-0.3.1/cluster-network-also-0.3.1/add.stdout",
        "07-thick-shim-requests/add-0.3.1.stdout",
    ],
)
def test_040_stdout_round_trips_byte_exactly_in_struct_order(rel: str) -> None:
    data = _golden(rel)
    result = parse_result(data)
    assert isinstance(result, Result040)
    assert encode_result(result, indent=True) == data
    assert b'"dns": {}' in data


def _cache_files() -> list[str]:
    base = _golden_dir()
    return sorted(str(p.relative_to(base)) for p in base.glob("**/results/*"))


@pytest.mark.parametrize("rel", _cache_files())
def test_libcni_cache_result_round_trips_sorted_compact(rel: str) -> None:
    """libcni's cache keeps the result as a map: keys sorted, compact, for every version."""
    data = _golden(rel)
    raw = data[data.index(b'"result":') + len(b'"result":') : -1]
    assert encode_result(parse_result(raw), sort_keys=True) == raw


def _http_body(rel: str) -> bytes:
    return _golden(rel).split(b"\r\n\r\n", 1)[1]


def test_daemon_reply_result_1_1_0_round_trips() -> None:
    body = _http_body("07-thick-daemon-responses/responses/02-add-cni.http")
    raw = body[len(b'{"Result":') : -1]
    result = parse_result(raw)
    assert result_version(result) == "1.1.0"
    assert encode_result(result) == raw


def test_shim_converts_daemon_result_to_config_version_like_go() -> None:
    """The Go shim prints the daemon's 1.0.0 result as 0.3.1 for a 0.3.1 config."""
    body = _http_body("07-thick-shim-requests/responses/12-add031-cni.http")
    result = parse_result(msgspec.json.encode(msgspec.json.decode(body)["Result"]))
    assert encode_result(convert(result, "0.3.1"), indent=True) == _golden(
        "07-thick-shim-requests/add-0.3.1.stdout"
    )
    assert encode_result(result, indent=True) == _golden("07-thick-shim-requests/add.stdout")


# --- parsing ------------------------------------------------------------------------------

RESULT_020 = b"""{
    "cniVersion": "0.2.0",
    "ip4": {
        "ip": "198.18.0.5/24",
        "gateway": "198.18.0.1",
        "routes": [
            {
                "dst": "0.0.0.0/0"
            },
            {
                "dst": "192.0.2.0/24",
                "gw": "198.18.0.254"
            }
        ]
    },
    "ip6": {
        "ip": "2001:db8::5/64"
    },
    "dns": {
        "nameservers": [
            "198.18.0.53"
        ],
        "domain": "example.test"
    }
}"""

RESULT_110 = (
    b'{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","mtu":1400,'
    b'"sandbox":"/var/run/netns/x","socketPath":"/run/vhost.sock","pciID":"0000:00:01.0"}],'
    b'"ips":[{"interface":0,"address":"198.18.0.5/24","gateway":"198.18.0.1"}],'
    b'"routes":[{"dst":"0.0.0.0/0","gw":"198.18.0.1","mtu":1300,"advmss":1200,"priority":5,'
    b'"table":100,"scope":0}],"dns":{"nameservers":["198.18.0.53"],"search":["a.test"]}}'
)


def test_020_result_parses_and_encodes_in_go_field_order() -> None:
    result = parse_result(RESULT_020)
    assert result == Result020(
        cniVersion="0.2.0",
        ip4=IPConfig020(
            ip="198.18.0.5/24",
            gateway="198.18.0.1",
            routes=[Route("0.0.0.0/0"), Route("192.0.2.0/24", gw="198.18.0.254")],
        ),
        ip6=IPConfig020(ip="2001:db8::5/64"),
        dns=DNS(nameservers=["198.18.0.53"], domain="example.test"),
    )
    assert encode_result(result, indent=True) == RESULT_020


def test_020_result_without_ips_still_writes_dns() -> None:
    assert encode_result(Result020(cniVersion="0.1.0")) == b'{"cniVersion":"0.1.0","dns":{}}'


def test_110_result_keeps_1_1_fields_and_sorts_by_default() -> None:
    result = parse_result(RESULT_110)
    assert isinstance(result, Result)
    assert result.interfaces[0] == Interface(
        "eth0", "02:00:00:00:00:01", 1400, "/var/run/netns/x", "/run/vhost.sock", "0000:00:01.0"
    )
    assert result.routes[0] == Route("0.0.0.0/0", "198.18.0.1", 1300, 1200, 5, 100, 0)
    assert encode_result(result, sort_keys=False) == RESULT_110
    assert encode_result(result) == gojson_sorted(RESULT_110)


def gojson_sorted(data: bytes) -> bytes:
    return msgspec.json.encode(msgspec.json.decode(data), order="sorted")


def test_empty_dns_is_omitted_from_1x_and_kept_in_0x() -> None:
    r100 = parse_result(b'{"cniVersion":"1.0.0","dns":{}}')
    assert r100 == Result(cniVersion="1.0.0")
    assert encode_result(r100) == b'{"cniVersion":"1.0.0"}'
    # Even a hand-built 1.x result with an empty DNS object is written without it.
    assert encode_result(Result("1.0.0", dns=DNS())) == b'{"cniVersion":"1.0.0"}'
    r040 = parse_result(b'{"cniVersion":"0.4.0"}')
    assert encode_result(r040) == b'{"cniVersion":"0.4.0","dns":{}}'


def test_html_characters_are_escaped_like_go() -> None:
    result = Result("1.0.0", interfaces=[Interface("a<b>&c\u2028")])
    assert encode_result(result) == (
        b'{"cniVersion":"1.0.0","interfaces":[{"name":"a\\u003cb\\u003e\\u0026c\\u2028"}]}'
    )
    assert parse_result(encode_result(result)) == result


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("2001:DB8:0:0:0:0:0:1/64", "2001:db8::1/64"),
        ("2001:db8:0:1:1:1:1:1/64", "2001:db8:0:1:1:1:1:1/64"),  # one zero group stays
        ("2001:db8:0:0:1:0:0:1/128", "2001:db8::1:0:0:1/128"),  # first of equal runs
        ("198.18.0.5/024", "198.18.0.5/24"),
        ("198.18.0.5/32", "198.18.0.5/32"),
    ],
)
def test_addresses_are_written_in_go_canonical_form(given: str, canonical: str) -> None:
    data = msgspec.json.encode({"cniVersion": "1.0.0", "ips": [{"address": given}]})
    result = parse_result(data)
    assert isinstance(result, Result)
    assert result.ips[0].address == canonical


def test_ipv4_mapped_gateway_is_printed_dotted_like_go() -> None:
    data = b'{"cniVersion":"1.0.0","routes":[{"dst":"0.0.0.0/0","gw":"::ffff:198.18.0.1"}]}'
    result = parse_result(data)
    assert isinstance(result, Result)
    assert result.routes[0].gw == "198.18.0.1"


def test_empty_gateways_mean_none() -> None:
    data = (
        b'{"cniVersion":"1.0.0","ips":[{"address":"198.18.0.5/24","gateway":""}],'
        b'"routes":[{"dst":"0.0.0.0/0","gw":""}]}'
    )
    result = parse_result(data)
    assert isinstance(result, Result)
    assert result.routes[0].gw is None
    assert result.ips[0].gateway == ""
    assert b"gw" not in encode_result(result)
    assert b"gateway" not in encode_result(result)


@pytest.mark.parametrize(
    ("data", "given", "expected_type", "expected_version"),
    [
        (b'{"ip4":{"ip":"198.18.0.5/24"}}', None, Result020, "0.1.0"),
        (b'{"ip4":{"ip":"198.18.0.5/24"}}', "0.2.0", Result020, "0.2.0"),
        (b'{"ips":[{"version":"4","address":"198.18.0.5/24"}]}', "0.3.1", Result040, "0.3.1"),
        (b'{"ips":[{"address":"198.18.0.5/24"}]}', "1.1.0", Result, "1.1.0"),
        # The result's own version wins over the config's, as in libcni's invoke.
        (b'{"cniVersion":"0.4.0"}', "1.0.0", Result040, "0.4.0"),
        (b'{"cniVersion":"1.0.0"}', "0.3.1", Result, "1.0.0"),
        (b'{"cniVersion":""}', "0.4.0", Result040, "0.4.0"),
    ],
)
def test_version_comes_from_json_else_from_caller(
    data: bytes, given: str | None, expected_type: type, expected_version: str
) -> None:
    result = parse_result(data, given)
    assert type(result) is expected_type
    assert result_version(result) == expected_version


def test_result_without_any_version_keeps_cniversion_absent() -> None:
    result = parse_result(b'{"ip4":{"ip":"198.18.0.5/24"}}')
    assert isinstance(result, Result020)
    assert result.cniVersion == ""
    assert encode_result(result) == b'{"ip4":{"ip":"198.18.0.5/24"},"dns":{}}'


def _doc(version: str, body: str) -> bytes:
    return f'{{"cniVersion":"{version}",{body}}}'.encode()


def _ips(entry: str) -> str:
    return f'"ips":[{{{entry}}}]'


_A = '"address":"198.18.0.5/24"'


@pytest.mark.parametrize(
    ("data", "error", "field"),
    [
        (b"", DecodeError, None),
        (b"not json", DecodeError, None),
        (b"\xff\xfe", DecodeError, None),
        (b"[]", DecodeError, None),
        (b"null", DecodeError, None),
        (b"[" * 100_000, DecodeError, "result"),
        (b'{"cniVersion":5}', DecodeError, "cniVersion"),
        (b'{"cniVersion":"9.9.9"}', IncompatibleVersionError, "cniVersion"),
        (b'{"cniVersion":"1.0"}', IncompatibleVersionError, "cniVersion"),
        (_doc("1.0.0", '"ips":{}'), DecodeError, "ips"),
        (_doc("1.0.0", _ips('"address":"nope"')), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips("")), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips('"address":"198.18.0.5"')), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips('"address":"198.18.0.5/33"')), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips('"address":"198.18.0.5/-1"')), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips('"address":"198.18.0.05/24"')), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips('"address":"fe80::1%eth0/64"')), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips('"address":"::ffff:198.18.0.1/120"')), DecodeError, "ips[0].address"),
        (_doc("1.0.0", _ips(_A + ',"gateway":"x"')), DecodeError, "ips[0].gateway"),
        (_doc("1.0.0", _ips(_A + ',"interface":"0"')), DecodeError, "ips[0].interface"),
        (_doc("1.1.0", '"routes":[{"gw":"198.18.0.1"}]'), DecodeError, "routes[0]"),
        (_doc("1.1.0", '"routes":[{"dst":"::/0","gw":"198.18.0"}]'), DecodeError, "routes[0].gw"),
        (_doc("1.1.0", '"routes":[{"dst":"::/0","mtu":"1"}]'), DecodeError, "routes[0].mtu"),
        (_doc("1.0.0", '"interfaces":[{"mac":"x"}]'), DecodeError, "interfaces[0]"),
        (_doc("1.0.0", '"dns":{"nameservers":"x"}'), DecodeError, "dns.nameservers"),
        (_doc("0.4.0", _ips(_A + ',"version":"5"')), DecodeError, "ips[0].version"),
        (_doc("0.4.0", _ips(_A + ',"version":"6"')), DecodeError, "ips[0].version"),
        (_doc("0.3.1", '"routes":[{"dst":"::/129"}]'), DecodeError, "routes[0].dst"),
        (_doc("0.2.0", '"ip4":{"ip":"2001:db8::1/64"}'), DecodeError, "ip4.ip"),
        (_doc("0.2.0", '"ip6":{"ip":"198.18.0.5/24"}'), DecodeError, "ip6.ip"),
        (_doc("0.2.0", '"ip4":{"ip":"198.18.0.5/24","gateway":"::g"}'), DecodeError, "ip4.gateway"),
        (
            _doc("0.2.0", '"ip4":{"ip":"198.18.0.5/24","routes":[{"dst":"x"}]}'),
            DecodeError,
            "ip4.routes[0].dst",
        ),
    ],
)
def test_bad_results_raise_cni_errors_naming_the_field(
    data: bytes, error: type[CniError], field: str | None
) -> None:
    with pytest.raises(error) as info:
        parse_result(data)
    assert info.value.field == field
    assert type(info.value) is error


def test_unknown_caller_version_is_incompatible() -> None:
    with pytest.raises(IncompatibleVersionError):
        parse_result(b"{}", "0.5.0")


# --- conversion ---------------------------------------------------------------------------

R100 = Result(
    cniVersion="1.0.0",
    interfaces=[Interface("br0", "02:00:00:00:00:01"), Interface("eth0", sandbox="/netns/a")],
    ips=[
        IPConfig(1, "198.18.0.5/24", "198.18.0.1"),
        IPConfig(1, "2001:db8::5/64", "2001:db8::1"),
        IPConfig(1, "198.18.1.5/24"),
        IPConfig(None, "2001:db8:1::5/64"),
    ],
    routes=[
        Route("2001:db8:2::/48", "2001:db8::1"),
        Route("0.0.0.0/0"),
        Route("192.0.2.0/24", "198.18.0.254"),
    ],
    dns=DNS(nameservers=["198.18.0.53"]),
)

R040 = Result040(
    cniVersion="0.4.0",
    interfaces=[Interface040("br0", "02:00:00:00:00:01"), Interface040("eth0", sandbox="/netns/a")],
    ips=[
        IPConfig040("4", 1, "198.18.0.5/24", "198.18.0.1"),
        IPConfig040("6", 1, "2001:db8::5/64", "2001:db8::1"),
        IPConfig040("4", 1, "198.18.1.5/24"),
        IPConfig040("6", None, "2001:db8:1::5/64"),
    ],
    routes=[
        Route("2001:db8:2::/48", "2001:db8::1"),
        Route("0.0.0.0/0"),
        Route("192.0.2.0/24", "198.18.0.254"),
    ],
    dns=DNS(nameservers=["198.18.0.53"]),
)

R020 = Result020(
    cniVersion="0.2.0",
    ip4=IPConfig020(
        "198.18.0.5/24",
        "198.18.0.1",
        [Route("0.0.0.0/0"), Route("192.0.2.0/24", "198.18.0.254")],
    ),
    ip6=IPConfig020("2001:db8::5/64", "2001:db8::1", [Route("2001:db8:2::/48", "2001:db8::1")]),
    dns=DNS(nameservers=["198.18.0.53"]),
)


def test_1_0_to_0_4_sets_version_from_address_family() -> None:
    assert convert(R100, "0.4.0") == R040


def test_0_4_to_1_0_drops_version() -> None:
    assert convert(R040, "1.0.0") == R100


@pytest.mark.parametrize("source", [R100, R040], ids=["1.0.0", "0.4.0"])
def test_down_to_0_2_keeps_first_address_per_family_and_routes_by_family(
    source: Result | Result040,
) -> None:
    assert convert(source, "0.2.0") == R020
    assert convert(source, "0.1.0") == msgspec.structs.replace(R020, cniVersion="0.1.0")


def test_0_2_to_0_4_lists_ip4_then_ip6_without_interfaces() -> None:
    assert convert(R020, "0.3.0") == Result040(
        cniVersion="0.3.0",
        ips=[
            IPConfig040("4", None, "198.18.0.5/24", "198.18.0.1"),
            IPConfig040("6", None, "2001:db8::5/64", "2001:db8::1"),
        ],
        routes=[
            Route("0.0.0.0/0"),
            Route("192.0.2.0/24", "198.18.0.254"),
            Route("2001:db8:2::/48", "2001:db8::1"),
        ],
        dns=DNS(nameservers=["198.18.0.53"]),
    )


def test_route_without_address_of_its_family_is_dropped_going_to_0_2() -> None:
    only_v4 = Result("1.0.0", ips=[IPConfig(None, "198.18.0.5/24")], routes=[Route("::/0")])
    assert convert(only_v4, "0.2.0") == Result020("0.2.0", ip4=IPConfig020("198.18.0.5/24"))


@pytest.mark.parametrize("source", [Result("1.1.0"), Result040("0.3.1"), R040])
def test_result_without_addresses_cannot_become_0_2(source: Result | Result040) -> None:
    empty = msgspec.structs.replace(source, ips=[])
    with pytest.raises(IncompatibleVersionError) as info:
        convert(empty, "0.2.0")
    assert info.value.field == "ips"


def test_1_1_to_1_0_drops_the_1_1_fields() -> None:
    r110 = parse_result(RESULT_110)
    r100 = convert(r110, "1.0.0")
    assert r100 == Result(
        cniVersion="1.0.0",
        interfaces=[Interface("eth0", "02:00:00:00:00:01", sandbox="/var/run/netns/x")],
        ips=[IPConfig(0, "198.18.0.5/24", "198.18.0.1")],
        routes=[Route("0.0.0.0/0", "198.18.0.1")],
        dns=DNS(nameservers=["198.18.0.53"], search=["a.test"]),
    )
    legacy = convert(r110, "0.3.1")
    assert isinstance(legacy, Result040)
    assert legacy.routes == [Route("0.0.0.0/0", "198.18.0.1")]


def test_1_0_to_1_1_changes_only_the_version() -> None:
    r110 = convert(R100, "1.1.0")
    assert r110 == msgspec.structs.replace(R100, cniVersion="1.1.0")
    assert r110.interfaces is not R100.interfaces  # no shared mutable parts


def test_same_family_conversion_retags_and_same_version_is_identity() -> None:
    assert convert(R040, "0.4.0") is R040
    retagged = convert(R040, "0.3.1")
    assert retagged == msgspec.structs.replace(R040, cniVersion="0.3.1")
    assert convert(Result020(ip4=IPConfig020("198.18.0.5/24")), "0.1.0").cniVersion == "0.1.0"


def test_conversion_does_not_change_its_input() -> None:
    before = msgspec.json.encode(R100)
    for version in ("0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.1.0"):
        convert(R100, version)
    assert msgspec.json.encode(R100) == before


@pytest.mark.parametrize("version", ["2.0.0", "0.5.0", "abc"])
def test_unknown_target_version_is_incompatible(version: str) -> None:
    with pytest.raises(IncompatibleVersionError):
        convert(R100, version)


def test_to_current_keeps_1_1_and_lifts_older_results_to_1_0() -> None:
    r110 = convert(R100, "1.1.0")
    assert to_current(r110) is r110
    assert to_current(R100) is R100
    assert to_current(R040) == R100
    assert result_version(to_current(R020)) == "1.0.0"


def test_registry_links_exactly_the_neighbouring_families() -> None:
    pairs = {(a, b) for a, b in itertools.pairwise(CHAIN)}
    assert set(REGISTRY) == pairs | {(b, a) for a, b in pairs}
    assert CHAIN == (Family.V020, Family.V040, Family.V100, Family.V110)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (Result("1.0.0"), False),
        (Result("1.0.0", interfaces=[Interface("eth0")]), True),
        (Result040("0.4.0", ips=[IPConfig040("4", None, "198.18.0.5/24")]), True),
        (Result020("0.2.0"), False),
        (Result020("0.2.0", ip6=IPConfig020("2001:db8::5/64")), True),
    ],
)
def test_has_interfaces_or_ips(result: Result | Result040 | Result020, expected: bool) -> None:
    assert has_interfaces_or_ips(result) is expected


@pytest.mark.parametrize(
    ("result", "version"),
    [(Result020(), "0.1.0"), (Result040(), "0.4.0"), (Result(), "1.1.0")],
)
def test_unset_version_means_what_libcni_assumes(
    result: Result | Result040 | Result020, version: str
) -> None:
    assert result_version(result) == version


def test_hand_built_1x_result_without_version_converts_as_1_1() -> None:
    built = Result(interfaces=[Interface("eth0", mtu=9000)], ips=[IPConfig(0, "198.18.0.5/24")])
    assert convert(built, "1.0.0") == Result(
        "1.0.0", interfaces=[Interface("eth0")], ips=[IPConfig(0, "198.18.0.5/24")]
    )


@pytest.mark.parametrize(
    "result", [Result("0.4.0"), Result040("1.0.0"), Result020("0.3.1"), Result040("0.2.0")]
)
def test_result_whose_type_cannot_hold_its_version_is_a_bug(
    result: Result | Result040 | Result020,
) -> None:
    with pytest.raises(InternalError):
        convert(result, "1.0.0")


def test_public_api_of_convert_is_pinned() -> None:
    from pymultus.cni import convert as module

    assert set(module.__all__) == {
        *("AnyResult", "CHAIN", "REGISTRY", "Converter", "Family", "convert", "encode_result"),
        *("family_of", "has_interfaces_or_ips", "parse_result", "result_family"),
        *("result_version", "to_current"),
    }


def test_040_ip_without_version_takes_it_from_the_address() -> None:
    """Debian's loopback at 0.3.x omits ``version``; libcni accepts that."""
    result = parse_result(b'{"cniVersion":"0.3.1","ips":[{"address":"::1/128"}]}')
    assert isinstance(result, Result040)
    assert result.ips[0].version == "6"
