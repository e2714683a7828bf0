"""Properties of result conversion and parsing, checked with hypothesis.

What is lossless, pair by pair (``r`` is any valid result of the first version; "back" converts
the result to ``r``'s own version again):

- 0.1.0/0.2.0 -> any version -> back: lossless for a result with an address (routes of
  ``ip4`` have IPv4 destinations and routes of ``ip6`` IPv6 ones, which a valid result has); one
  without ``ip4`` and ``ip6`` goes up but cannot come back, as in libcni.
- 0.3.x/0.4.0 -> 1.0.0/1.1.0 or another 0.3.x/0.4.0 -> back: lossless.
- 1.0.0 -> 1.1.0 or 0.3.x/0.4.0 -> back: lossless.
- 1.1.0 -> 1.0.0 or 0.x: loses exactly the 1.1-only fields (interface ``mtu``/``socketPath``/
  ``pciID``, route ``mtu``/``advmss``/``priority``/``table``/``scope``); otherwise as 1.0.0.
- 0.3.0 and later -> 0.1.0/0.2.0: keeps exactly the first address of each family with its
  gateway, the routes whose destination family has such an address (in order), and dns; a
  result without addresses raises ``IncompatibleVersionError``. Down and back up is lossless
  for the results that 0.2 can hold, i.e. those that came from a 0.2 result.

And for every version: encode then parse gives the same result, in either key order; any bytes
given to ``parse_result`` give a result or a ``CniError``, never another exception.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymultus.cni.convert import AnyResult, convert, encode_result, parse_result, result_version
from pymultus.cni.errors import CniError, IncompatibleVersionError
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

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VERSIONS_020 = ("0.1.0", "0.2.0")
VERSIONS_040 = ("0.3.0", "0.3.1", "0.4.0")
ALL_VERSIONS = (*VERSIONS_020, *VERSIONS_040, "1.0.0", "1.1.0")

_V4 = ipaddress.IPv4Network("198.18.0.0/15")
_V6 = ipaddress.IPv6Network("2001:db8::/32")


def _addr(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[str]:
    return st.integers(0, net.num_addresses - 1).map(lambda n: str(net.network_address + n))


def _cidr(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[str]:
    return st.tuples(_addr(net), st.integers(net.prefixlen, net.max_prefixlen)).map(
        lambda t: f"{t[0]}/{t[1]}"
    )


v4_ip, v6_ip = _addr(_V4), _addr(_V6)
v4_cidr, v6_cidr = _cidr(_V4), _cidr(_V6)
text = st.sampled_from(["", "eth0", "net1", "a<b>&c", "\u00e9\u2028"]) | st.text(max_size=6)


def _routes(dst: st.SearchStrategy[str], gw: st.SearchStrategy[str]) -> st.SearchStrategy[Route]:
    return st.builds(Route, dst=dst, gw=st.none() | gw)


v4_route = _routes(st.just("0.0.0.0/0") | v4_cidr, v4_ip)
v6_route = _routes(st.just("::/0") | v6_cidr, v6_ip)
any_route = v4_route | v6_route
route_110 = st.builds(
    Route,
    dst=st.just("0.0.0.0/0") | v4_cidr | v6_cidr,
    gw=st.none() | v4_ip | v6_ip,
    mtu=st.integers(0, 9000),
    advmss=st.integers(0, 9000),
    priority=st.integers(0, 2**31 - 1),
    table=st.none() | st.integers(0, 2**31 - 1),
    scope=st.none() | st.integers(0, 255),
)
dns = st.builds(
    DNS,
    nameservers=st.lists(v4_ip | v6_ip, max_size=2),
    domain=st.just("") | text,
    search=st.lists(text, max_size=2),
    options=st.lists(text, max_size=2),
)
addresses = st.lists(
    st.tuples(v4_cidr, st.just("") | v4_ip) | st.tuples(v6_cidr, st.just("") | v6_ip),
    max_size=4,
)


def _interfaces(extra: bool) -> st.SearchStrategy[list[Interface]]:
    base: dict[str, st.SearchStrategy[Any]] = {
        "name": text,
        "mac": st.just("") | text,
        "sandbox": st.just("") | text,
    }
    if extra:
        base |= {"mtu": st.integers(0, 9000), "socketPath": text, "pciID": text}
    return st.lists(st.builds(Interface, **base), max_size=3)


interfaces_100, interfaces_110 = _interfaces(False), _interfaces(True)
interfaces_040 = st.lists(st.builds(Interface040, text, text, text), max_size=3)
routes_100, routes_110 = st.lists(any_route, max_size=4), st.lists(route_110, max_size=4)
index_seeds = st.lists(st.none() | st.integers(0, 2), min_size=4, max_size=4)


def _indices(draw: st.DrawFn, count: int) -> list[int | None]:
    """One valid ``interface`` index (or None) per address, for ``count`` interfaces."""
    return [None if s is None or not count else s % count for s in draw(index_seeds)]


@st.composite
def results_100(draw: st.DrawFn, version: str = "1.0.0") -> Result:
    extra = version == "1.1.0"
    ifaces = draw(interfaces_110 if extra else interfaces_100)
    index = _indices(draw, len(ifaces))
    ips = [IPConfig(index[n], a, g) for n, (a, g) in enumerate(draw(addresses))]
    found = draw(dns)
    routes = draw(routes_110 if extra else routes_100)
    return Result(version, ifaces, ips, routes, None if found.is_empty() else found)


@st.composite
def results_040(draw: st.DrawFn) -> Result040:
    ifaces = draw(interfaces_040)
    index = _indices(draw, len(ifaces))
    ips = [
        IPConfig040("6" if ":" in a else "4", index[n], a, g)
        for n, (a, g) in enumerate(draw(addresses))
    ]
    version = draw(st.sampled_from(VERSIONS_040))
    return Result040(version, ifaces, ips, draw(routes_100), draw(dns))


def _ipc_020(cidr: Any, ip: Any, route: Any) -> st.SearchStrategy[IPConfig020 | None]:
    return st.none() | st.builds(IPConfig020, cidr, st.just("") | ip, st.lists(route, max_size=3))


results_020 = st.builds(
    Result020,
    st.sampled_from(VERSIONS_020),
    _ipc_020(v4_cidr, v4_ip, v4_route),
    _ipc_020(v6_cidr, v6_ip, v6_route),
    dns,
)
any_result: st.SearchStrategy[AnyResult] = (
    results_020 | results_040() | results_100() | results_100("1.1.0")
)


def _strip_110(result: Result) -> Result:
    """``result`` without the fields only 1.1.0 has (the model of 1.1 -> 1.0)."""
    return msgspec.structs.replace(
        result,
        interfaces=[Interface(i.name, i.mac, sandbox=i.sandbox) for i in result.interfaces],
        routes=[Route(r.dst, r.gw) for r in result.routes],
    )


def _addresses(result: Result | Result040) -> list[tuple[str, str, str]]:
    return [(("6" if ":" in i.address else "4"), i.address, i.gateway) for i in result.ips]


def _model_020(result: Result | Result040, version: str) -> Result020:
    """The 0.2 form of ``result``, stated independently of the converters."""
    firsts: dict[str, IPConfig020] = {}
    for family, address, gateway in _addresses(result):
        firsts.setdefault(family, IPConfig020(address, gateway))
    for route in result.routes:
        family = "6" if ":" in route.dst else "4"
        if family in firsts:
            firsts[family].routes.append(Route(route.dst, route.gw))
    found = result.dns if result.dns is not None else DNS()
    return Result020(version, firsts.get("4"), firsts.get("6"), found)


# --- round trips --------------------------------------------------------------------------


@PROPS
@given(any_result, st.booleans(), st.sampled_from([None, True, False]))
def test_encode_then_parse_gives_the_same_result(
    result: AnyResult, indent: bool, sort_keys: bool | None
) -> None:
    assert parse_result(encode_result(result, indent=indent, sort_keys=sort_keys)) == result


@PROPS
@given(results_020, st.sampled_from(ALL_VERSIONS))
def test_0_2_results_survive_every_version(result: Result020, version: str) -> None:
    there = convert(result, version)
    assert result_version(there) == version
    if result.ip4 is None and result.ip6 is None and version not in VERSIONS_020:
        return  # nothing to come back with: covered by the down-to-0.2 property
    assert convert(there, result.cniVersion) == result


@PROPS
@given(results_040(), st.sampled_from((*VERSIONS_040, "1.0.0", "1.1.0")))
def test_0_4_results_survive_0_3_and_later(result: Result040, version: str) -> None:
    assert convert(convert(result, version), result.cniVersion) == result


@PROPS
@given(results_100(), st.sampled_from((*VERSIONS_040, "1.1.0")))
def test_1_0_results_survive_0_3_and_later(result: Result, version: str) -> None:
    assert convert(convert(result, version), "1.0.0") == result


@PROPS
@given(results_100("1.1.0"), st.sampled_from((*VERSIONS_040, "1.0.0")))
def test_1_1_results_lose_exactly_the_1_1_fields(result: Result, version: str) -> None:
    expected = _strip_110(result)
    if version == "1.0.0":
        assert convert(result, version) == msgspec.structs.replace(expected, cniVersion="1.0.0")
    assert convert(convert(result, version), "1.1.0") == expected


@PROPS
@given(results_040() | results_100() | results_100("1.1.0"), st.sampled_from(VERSIONS_020))
def test_down_to_0_2_keeps_first_address_per_family(
    result: Result040 | Result, version: str
) -> None:
    if not result.ips:
        try:
            convert(result, version)
        except IncompatibleVersionError as err:
            assert err.field == "ips"
            return
        raise AssertionError("a result without addresses became a 0.2 result")
    assert convert(result, version) == _model_020(result, version)


@PROPS
@given(results_020, st.sampled_from((*VERSIONS_040, "1.0.0", "1.1.0")))
def test_results_that_0_2_can_hold_go_down_and_up_unchanged(
    source: Result020, version: str
) -> None:
    if source.ip4 is None and source.ip6 is None:
        return
    up = convert(source, version)
    assert convert(convert(up, "0.2.0"), version) == up


@PROPS
@given(any_result, st.sampled_from(ALL_VERSIONS))
def test_every_converted_result_encodes_and_parses_as_its_version(
    result: AnyResult, version: str
) -> None:
    try:
        there = convert(result, version)
    except IncompatibleVersionError:
        return
    again = parse_result(encode_result(there))
    assert again == there
    assert result_version(again) == version


# --- parsing never crashes ----------------------------------------------------------------

_KEYS = [
    *("cniVersion", "interfaces", "ips", "routes", "dns", "ip4", "ip6", "ip", "version"),
    *("name", "mac", "mtu", "sandbox", "socketPath", "pciID", "interface", "address"),
    *("gateway", "dst", "gw", "advmss", "priority", "table", "scope", "nameservers"),
    *("domain", "search", "options"),
]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["4", "6", "198.18.0.5/24", "198.18.0.1", "2001:db8::/32", "::/0", ""])
    | st.text(max_size=8)
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=20,
)
result_like = st.fixed_dictionaries(
    {"cniVersion": st.sampled_from([*ALL_VERSIONS, "", "9.9.9"])},
    optional=dict.fromkeys(("interfaces", "ips", "routes", "dns", "ip4", "ip6"), json_values),
)


def _parses_or_cni_error(data: bytes, version: str | None) -> None:
    try:
        result = parse_result(data, version)
    except CniError:
        return
    assert isinstance(result, (Result, Result040, Result020))


@PROPS
@given(st.binary(max_size=200), st.none() | st.sampled_from(ALL_VERSIONS))
def test_any_bytes_give_a_result_or_a_cni_error(data: bytes, version: str | None) -> None:
    _parses_or_cni_error(data, version)


@PROPS
@given(result_like | json_values, st.none() | st.sampled_from([*ALL_VERSIONS, "x"]))
def test_any_json_gives_a_result_or_a_cni_error(value: Any, version: str | None) -> None:
    _parses_or_cni_error(msgspec.json.encode(value), version)
