"""The lean encoders against the full path's, on the same inputs: identical bytes, identical
errors, or ``Unhandled`` (counted: the common shapes must never be handed over).

Full path: ``core.delegate.load_delegate`` + ``core.scratch`` (delegate cache),
``cni.result.parse_result`` + ``cni.convert`` + ``encode_result`` (results),
``plugin.call._print`` (the answer), ``k8s.status`` (network-status), ``k8s.calls`` +
msgspec (the status PATCH body), ``core.add.emit_added``/``empty_result``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from pymultus.cni.convert import convert, encode_result, to_current
from pymultus.cni.env import validate_network_name
from pymultus.cni.errors import CniError
from pymultus.cni.result import canonical_cidr, canonical_ip, parse_result
from pymultus.core import add, record, scratch
from pymultus.core.delegate import Delegate as FullDelegate
from pymultus.core.delegate import load_delegate, load_delegate_list
from pymultus.k8s import calls
from pymultus.k8s.status import render_network_status, statuses_for_result
from pymultus.plugin import call
from pymultus.plugin.lean import addrs, js, kube, output, status
from pymultus.plugin.lean import results as lean_results
from pymultus.plugin.lean import scratch as lean_scratch
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.model import Delegate

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CID = "0" * 63 + "1"
GOLDEN = Path("/work/shared/reference/golden")
STATUS = "k8s.v1.cni.cncf.io/network-status"
Outcome = tuple[Any, ...]


def outcome(fn: Callable[[], Any]) -> Outcome:
    """A call's value, or its CNI error as (code, msg, details) from either path."""
    try:
        return ("ok", fn())
    except CniError as exc:
        return ("error", exc.error_code, exc.msg, exc.details)
    except LeanError as exc:
        return ("error", exc.code, exc.msg, exc.details)


# ================================================================ imports


FORBIDDEN = (
    "typing",
    "re",
    "logging",
    "json",
    "msgspec",
    "ipaddress",
    "dataclasses",
    "enum",
    "base64",
    "pymultus.cni",
    "pymultus.core",
    "pymultus.k8s",
)

_IMPORT_CHECK = """
import sys
sys.path.insert(0, {src!r})
sys.path.append({site!r})  # msgspec, for the full path's parser on malformed output
from pymultus.plugin.lean import kube, output, scratch, status
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.model import Delegate
raw = b'{{"cniVersion":"1.0.0","name":"br","type":"bridge","ipam":{{"type":"host-local"}}}}'
d = Delegate(raw, {{"cniVersion": "1.0.0", "name": "br", "type": "bridge",
                    "ipam": {{"type": "host-local"}}}}, "ns/br", is_list=False,
             default_route=("2001:DB8::1",))
cni_dir = {cni_dir!r}
scratch.save(cni_dir, "c1", [d])
assert scratch.load(cni_dir, "c1")[0].raw == raw
scratch.remove(cni_dir, "c1")
scratch.record_remove(cni_dir, "c1")
out = b'{{"cniVersion":"0.3.1","interfaces":[{{"name":"eth0","sandbox":"/x"}}],'
out += b'"ips":[{{"version":"6","address":"2001:0DB8::0001/64","interface":0}}]}}'
result = output.parse_result(out, "0.3.1")
output.print_result(result, "1.0.0")
value = status.render_network_status(status.status_entries(result, "n", True))
kube.dumps(kube.annotation_patch("k", value, status.status_uid({{"metadata": {{"uid": "u"}}}})))
status.added_message(result, "eth0", "n")
bad = [m for m in {forbidden!r} if m in sys.modules]
with open(cni_dir + "/c2", "wb") as fh:
    fh.write(b'[{{"Conf" 1}}]')
try:
    scratch.load(cni_dir, "c2")
    raise AssertionError("a corrupt cache was read")
except Unhandled:
    pass
try:
    output.parse_result(b'{{"ips": [1,]}}', "1.0.0")
    raise AssertionError("a malformed result was read")
except LeanError as exc:
    assert exc.msg.startswith("invalid CNI result: JSON is malformed"), exc.msg
print(bad)
"""


def test_the_encoders_import_and_run_on_c_modules_only(tmp_path: Path) -> None:
    """A fresh interpreter (``-I -S``, as the thin plugin runs) imports the module and runs
    the common path of every encoder without any of the slow modules; malformed JSON there
    (where the C scanner fails with ``SystemError``) is still handed over."""
    src = str(Path(lean_results.__file__).parents[3])
    site = str(Path(msgspec.__file__).parents[1])
    code = _IMPORT_CHECK.format(
        src=src, site=site, forbidden=FORBIDDEN, cni_dir=str(tmp_path / "m")
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr


# ================================================================ addresses


def _v4_forms(value: int) -> list[str]:
    addr = ipaddress.IPv4Address(value)
    octets = str(addr).split(".")
    return [str(addr), ".".join("0" + o for o in octets), ".".join(octets[:3])]


def _v6_forms(value: int) -> list[str]:
    addr = ipaddress.IPv6Address(value)
    full = addr.exploded
    forms = [str(addr), full, full.upper(), str(addr).upper(), full.replace(":0000", ":0")]
    v4 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    forms += [f"{full[:30]}{v4}", f"::ffff:{v4}", f"::{v4}", f"{addr}:1", f":{addr}"]
    return forms


ip_like = st.one_of(
    st.integers(0, 2**32 - 1).flatmap(lambda v: st.sampled_from(_v4_forms(v))),
    st.integers(0, 2**128 - 1).flatmap(lambda v: st.sampled_from(_v6_forms(v))),
    st.sampled_from(["0.0.0.0", "::", "::1", "1::", "::ffff:0:0", "0:0:1::", "fe80::1%eth0"]),
    st.text(alphabet="0123456789abcdefABCDEF:.%/ ", max_size=45),
    st.text(max_size=8),
)
prefix_like = st.sampled_from(["0", "8", "24", "32", "33", "64", "128", "129", "024", "", "x"])


def full_ip(text: str) -> str | None:
    try:
        return canonical_ip(text, "f")
    except CniError:
        return None


@PROPS
@given(ip_like)
@example("1.2.3.04")
@example("::ffff:1.2.3.4")
@example("2001:db8:0:0:1:0:0:1")
@example("1:0:0:1:0:0:0:1")
def test_addresses_as_ipaddress_reads_and_writes_them(text: str) -> None:
    assert addrs.ip_text(text) == full_ip(text)
    assert outcome(lambda: addrs.canonical_ip(text, "f")) == outcome(
        lambda: canonical_ip(text, "f")
    )


@PROPS
@given(ip_like, prefix_like)
def test_cidrs_as_the_full_path_reads_and_writes_them(address: str, length: str) -> None:
    text = f"{address}/{length}"
    assert outcome(lambda: addrs.canonical_cidr(text, "x.dst")) == outcome(
        lambda: canonical_cidr(text, "x.dst")
    )


# ================================================================ the delegate cache

BRIDGE = {
    "cniVersion": "1.0.0",
    "name": "br-a",
    "type": "bridge",
    "bridge": "br0",
    "isGateway": True,
    "ipam": {"type": "host-local", "subnet": "10.1.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]},
}
MACVLAN = {
    "cniVersion": "0.3.1",
    "name": "mv",
    "type": "macvlan",
    "master": "eth0",
    "mode": "bridge",
    "ipam": {"type": "static", "addresses": [{"address": "10.2.0.5/24"}]},
}
FLANNEL = {
    "cniVersion": "0.3.1",
    "name": "cbr0",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
COMMON = {"bridge": BRIDGE, "macvlan": MACVLAN, "flannel": FLANNEL}


def full_delegate(raw: bytes, name: str | None, list_only: bool, **requests: Any) -> FullDelegate:
    loaded = load_delegate_list(raw) if list_only else load_delegate(raw, name=name)
    return msgspec.structs.replace(loaded, **requests)


def lean_delegate(raw: bytes, full: FullDelegate) -> Delegate:
    return Delegate(
        raw,
        js.loads_object(raw),
        full.name,
        is_list=full.is_list,
        list_only=full.list_only,
        ifname_request=full.ifname_request,
        mac_request=full.mac_request,
        ip_requests=full.ip_requests,
        default_route=full.default_route,
    )


@pytest.mark.parametrize(
    ("shape", "list_only"),
    [("bridge", False), ("macvlan", False), ("flannel", False), ("flannel", True)],
)
def test_common_configs_are_encoded_by_the_lean_path(shape: str, list_only: bool) -> None:
    raw = json.dumps(COMMON[shape], indent=2).encode()
    full = full_delegate(
        raw,
        "ns/x",
        list_only,
        ifname_request="net1",
        mac_request="c2:ac:00:00:00:01",
        ip_requests=("10.1.0.7/24",),
        default_route=("10.1.0.1", "2001:DB8::1"),
    )
    lean = lean_delegate(raw, full)
    lean_scratch.check_delegate(lean)
    assert lean_scratch.encode_delegates([lean, lean]) == scratch.encode_delegates([full, full])


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*/delegate-cache.json")), ids=str)
def test_golden_caches_read_back_or_handed_over(path: Path, tmp_path: Path) -> None:
    """Go Multus's caches: read when written as the lean path writes them (all but the one
    with gateway filters), the delegates the full path reads."""
    (tmp_path / CID).write_bytes(path.read_bytes())
    full = scratch.load(str(tmp_path), CID)
    assert full is not None
    if any(d.filter_v4_gateway or d.filter_v6_gateway for d in full):
        with pytest.raises(Unhandled):
            lean_scratch.load(str(tmp_path), CID)
        return
    lean = lean_scratch.load(str(tmp_path), CID)
    assert lean is not None
    assert [same_delegate(a, b) for a, b in zip(lean, full, strict=True)] == [True] * len(full)


def same_delegate(lean: Delegate, full: FullDelegate) -> bool:
    return (
        lean.raw == full.raw
        and lean.conf == json.loads(full.raw)
        and lean.name == full.name
        and lean.net_name == json.loads(full.raw).get("name", "")
        and (lean.is_list, lean.list_only) == (full.is_list, full.list_only)
        and (lean.ifname_request, lean.mac_request) == (full.ifname_request, full.mac_request)
        and (lean.ip_requests, lean.default_route) == (full.ip_requests, full.default_route)
    )


# ---------------------------------------------------------------- generated configs

names = st.sampled_from(["net", "br-a", "n.1_x", "cbr0", "a<b>&c", ""])
scalars = st.one_of(
    st.booleans(), st.integers(-(2**60), 2**60), st.text(max_size=5), st.none(), st.just(1.5)
)
plain_json = st.recursive(
    st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
odd_keys = st.sampled_from(
    ["mtu", "bridge", "weird<&>", "\u043a\u043b\u044e\u0447", "args", "x.y/z"]
)
dns_values = st.fixed_dictionaries(
    {},
    optional={
        "nameservers": st.lists(st.sampled_from(["10.0.0.10", "fd00::a"]), max_size=2),
        "domain": st.sampled_from(["", "cluster.local"]),
        "search": st.lists(st.sampled_from(["a.svc", "b"]), max_size=2),
        "options": st.lists(st.sampled_from(["ndots:5"]), max_size=1),
    },
)
capabilities = st.dictionaries(
    st.sampled_from(["portMappings", "ips", "mac", "bandwidth"]), st.booleans(), max_size=3
)


def plugin_conf(top: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A plugin config: the libcni keys (valid values) plus plugin keys."""
    base: dict[str, st.SearchStrategy[Any]] = {
        "type": st.sampled_from(["bridge", "macvlan", "tuning"])
    }
    optional: dict[str, st.SearchStrategy[Any]] = {
        "capabilities": capabilities,
        "ipam": st.fixed_dictionaries(
            {},
            optional={"type": st.sampled_from(["host-local", ""]), "subnet": st.just("10.0.0.0/8")},
        ),
        "dns": dns_values,
        "prevResult": st.dictionaries(
            st.sampled_from(["cniVersion", "ips", "zz"]), plain_json, max_size=2
        ),
        "runtimeConfig": st.dictionaries(st.text(max_size=3), plain_json, max_size=2),
        "cni.dev/valid-attachments": st.lists(
            st.fixed_dictionaries({"containerID": st.just("c1"), "ifname": st.just("eth0")}),
            max_size=1,
        ),
    }
    if top:
        base["name"] = names
        optional["cniVersion"] = st.sampled_from(VERSIONS)
    return st.fixed_dictionaries(base, optional=optional).flatmap(
        lambda d: st.dictionaries(odd_keys, plain_json, max_size=2).map(lambda x: {**x, **d})
    )


def conflist() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": names, "plugins": st.lists(plugin_conf(False), min_size=1, max_size=3)},
        optional={
            "cniVersion": st.sampled_from(VERSIONS),
            "disableCheck": st.booleans(),
            "disableGC": st.booleans(),
        },
    )


@st.composite
def corrupted(draw: st.DrawFn, conf: dict[str, Any]) -> dict[str, Any]:
    """Sometimes one key in another case, null, of a wrong type, or with numbers Go would
    rewrite, at the top, in ipam/dns, or in a plugin."""
    targets = [conf]
    if isinstance(conf.get("ipam"), dict):
        targets.append(conf["ipam"])
    if isinstance(conf.get("dns"), dict):
        targets.append(conf["dns"])
    targets += [p for p in conf.get("plugins", []) if isinstance(p, dict)]
    for _ in range(draw(st.integers(0, 2))):
        target = draw(st.sampled_from(targets))
        if not target:
            continue
        key = draw(st.sampled_from(sorted(target)))
        how = draw(st.sampled_from(["case", "null", "wrong", "float", "bigint", "string-bool"]))
        if how == "case":
            target[key.upper() if key != key.upper() else key.lower()] = target.pop(key)
        elif how == "null":
            target[key] = None
        elif how == "wrong":
            target[key] = draw(scalars)
        elif how == "float":
            target[key] = {"a": 1.5} if key == "prevResult" else 2.5
        elif how == "bigint":
            target[key] = {"n": 2**60} if key == "prevResult" else 2**60
        else:
            target[key] = "true"
    return conf


requests = st.fixed_dictionaries(
    {},
    optional={
        "ifname_request": st.sampled_from(["net1", "a<b>"]),
        "mac_request": st.just("c2:ac:00:00:00:01"),
        "ip_requests": st.lists(st.sampled_from(["10.1.0.7/24", "fd00::7/64"]), max_size=2).map(
            tuple
        ),
        "default_route": st.none()
        | st.lists(
            st.sampled_from(["10.1.0.1", "2001:DB8::1", "::ffff:10.0.0.1", "fd00:0::1"]) | ip_like,
            max_size=2,
        ).map(tuple),
    },
)


def encode_json(obj: Any, style: int) -> bytes:
    if style == 0:
        return json.dumps(obj, separators=(",", ":")).encode()
    return json.dumps(obj, indent=style, ensure_ascii=style == 1).encode()


@PROPS
@given(
    st.one_of(plugin_conf(True), conflist()).flatmap(corrupted),
    st.booleans(),
    requests,
    st.integers(0, 2),
    st.sampled_from(["ns/nad", "ns/a<b>&\u2028\u00e9"]),
)
def test_delegate_cache_entries_as_the_full_path_writes_them(
    conf: dict[str, Any], list_only: bool, wanted: dict[str, Any], style: int, name: str
) -> None:
    raw = encode_json(conf, style)
    try:
        full = full_delegate(raw, name, list_only and "plugins" in conf, **wanted)
        expected = scratch.encode_delegates([full])
    except CniError:
        event("refused by the full path")
        is_list = "plugins" in conf and "type" not in conf
        lean = Delegate(raw, js.loads_object(raw), name, is_list=is_list, **wanted)
        with pytest.raises(Unhandled):
            lean_scratch.check_delegate(lean)
        return
    lean = lean_delegate(raw, full)
    try:
        lean_scratch.check_delegate(lean)
    except Unhandled:
        event("handed over")
        return
    event("encoded")
    assert lean_scratch.encode_delegates([lean]) == expected
    with_cache_dir(lambda cni_dir: saved_and_read_back(cni_dir, lean, full))


def with_cache_dir(check: Callable[[str], None]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        check(os.path.join(tmp, "multus"))


def saved_and_read_back(cni_dir: str, lean: Delegate, full: FullDelegate) -> None:
    """What the lean path saves, both paths read back as the full path reads its own file
    (``default-route`` in Go's text by then)."""
    lean_scratch.save(cni_dir, CID, [lean])
    expected = scratch.decode_delegates(scratch.encode_delegates([full]))
    assert scratch.load(cni_dir, CID) == expected
    loaded = lean_scratch.load(cni_dir, CID)
    assert loaded is not None
    assert same_delegate(loaded[0], expected[0])


@PROPS
@given(st.one_of(plugin_conf(True), conflist()), requests, st.integers(0, 2))
def test_valid_plain_configs_are_never_handed_over(
    conf: dict[str, Any], wanted: dict[str, Any], style: int
) -> None:
    """Configs with exactly spelled, well typed libcni keys (any plugin keys, dns,
    capabilities, prevResult, runtimeConfig) stay on the lean path; only a default-route that
    is not an address, or a network name libcni refuses, goes to the full path."""
    raw = encode_json(conf, style)
    try:
        full = full_delegate(raw, "ns/nad", False, **wanted)
        scratch.encode_delegates([full])
    except CniError:
        return
    lean = lean_delegate(raw, full)
    handed_over = wanted.get("default_route") and None in map(full_ip, wanted["default_route"])
    if handed_over or not valid_network_name(conf.get("name")):
        event("handed over")
        return
    event("encoded")
    assert lean_scratch.encode_delegates([lean]) == scratch.encode_delegates([full])


def valid_network_name(name: Any) -> bool:
    try:
        validate_network_name(name)
    except CniError:
        return False
    return True


def test_unusual_delegates_are_handed_over() -> None:
    bridge = json.dumps(BRIDGE).encode()
    cases: list[dict[str, Any]] = [
        {**BRIDGE, "IPAM": BRIDGE["ipam"]},
        {**BRIDGE, "cniversion": "1.0.0"},
        {**BRIDGE, "dns": None},
        {**BRIDGE, "capabilities": {"ips": "yes"}},
        {**BRIDGE, "prevResult": {"mtu": 1.5}},
        {**FLANNEL, "disableCheck": "true"},
        {**FLANNEL, "Plugins": FLANNEL["plugins"]},
        {**BRIDGE, "name": "a b"},
        {k: v for k, v in BRIDGE.items() if k != "name"},
        {**FLANNEL, "name": ".x"},
    ]
    for conf in cases:
        raw = json.dumps(conf).encode()
        lean = Delegate(raw, conf, "x", is_list="plugins" in conf)
        with pytest.raises(Unhandled):
            lean_scratch.check_delegate(lean)
    lean = Delegate(bridge, BRIDGE, "x", is_list=False, default_route=("10.0.0.1%eth0",))
    with pytest.raises(Unhandled):
        lean_scratch.check_delegate(lean)


# ---------------------------------------------------------------- files


def bridge_delegate(**requests: Any) -> tuple[Delegate, FullDelegate]:
    raw = json.dumps(BRIDGE).encode()
    full = full_delegate(raw, "ns/br", False, **requests)
    return lean_delegate(raw, full), full


def test_save_writes_the_full_paths_file_modes(tmp_path: Path) -> None:
    lean, full = bridge_delegate(ifname_request="net1")
    cni_dir = tmp_path / "a" / "multus"
    lean_scratch.save(str(cni_dir), CID, [lean])
    path = cni_dir / CID
    assert path.read_bytes() == scratch.encode_delegates([full])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cni_dir.stat().st_mode) == 0o700 & ~current_umask()
    assert sorted(os.listdir(cni_dir)) == [CID]  # no temporary file left
    lean_scratch.save(str(cni_dir), CID, [lean, lean])  # replaced whole
    assert path.read_bytes() == scratch.encode_delegates([full, full])


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_save_refuses_before_writing(tmp_path: Path) -> None:
    bad = Delegate(b'{"type":5}', {"type": 5}, "x", is_list=False)
    lean, _ = bridge_delegate()
    with pytest.raises(Unhandled):
        lean_scratch.save(str(tmp_path / "multus"), CID, [lean, bad])
    with pytest.raises(Unhandled):
        lean_scratch.save(str(tmp_path / "multus"), "../x", [lean])
    assert not (tmp_path / "multus").exists()


def test_write_failures_give_the_full_paths_errors(tmp_path: Path) -> None:
    lean, full = bridge_delegate()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert lean_error(lambda: lean_scratch.save(str(blocker), CID, [lean])) == full_error(
        lambda: scratch.save(str(blocker), CID, [full])
    )
    (tmp_path / "d" / CID).mkdir(parents=True)  # a directory where the file goes
    cni_dir = str(tmp_path / "d")
    assert lean_error(lambda: lean_scratch.save(cni_dir, CID, [lean])) == full_error(
        lambda: scratch.save(cni_dir, CID, [full])
    )
    assert lean_error(lambda: lean_scratch.remove(cni_dir, CID)) == full_error(
        lambda: scratch.remove(cni_dir, CID)
    )
    assert os.listdir(cni_dir) == [CID]  # the temporary files were removed


def lean_error(fn: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(LeanError) as info:
        fn()
    return info.value.code, info.value.msg, info.value.details


def full_error(fn: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(CniError) as info:
        fn()
    return info.value.error_code, info.value.msg, info.value.details


def test_remove_and_record_remove(tmp_path: Path) -> None:
    lean, _ = bridge_delegate()
    lean_scratch.save(str(tmp_path), CID, [lean])
    lean_scratch.remove(str(tmp_path), CID)
    lean_scratch.remove(str(tmp_path), CID)  # already gone: fine
    assert not (tmp_path / CID).exists()
    records = tmp_path / "pymultus-records"
    records.mkdir()
    (records / f"{CID}.json").write_text("{}")
    lean_scratch.record_remove(str(tmp_path), CID)
    lean_scratch.record_remove(str(tmp_path), CID)
    assert os.listdir(records) == []
    assert lean_scratch.record_path(str(tmp_path), CID) == record.record_path(str(tmp_path), CID)
    for bad in ("", "a/b"):
        assert lean_error(partial(lean_scratch.remove, str(tmp_path), bad)) == full_error(
            partial(scratch.remove, str(tmp_path), bad)
        )


def test_record_remove_failure_is_the_boundarys_internal_error(tmp_path: Path) -> None:
    """``record.remove`` lets an OSError out; the plugin's boundary makes it code 999."""
    (tmp_path / "pymultus-records" / f"{CID}.json").mkdir(parents=True)
    with pytest.raises(OSError) as full:
        record.remove(str(tmp_path), CID)
    bug = f"internal error: {type(full.value).__name__}: {full.value}"
    assert lean_error(lambda: lean_scratch.record_remove(str(tmp_path), CID)) == (999, bug, "")


def test_load_hands_over_what_it_does_not_write(tmp_path: Path) -> None:
    _, full = bridge_delegate()
    cni_dir = str(tmp_path)
    assert lean_scratch.load(cni_dir, CID) is None
    entry = json.loads(scratch.encode_delegates([full]))[0]
    variants: list[Any] = [
        [{k: v for k, v in entry.items() if k != "Bytes"}],
        [{**entry, "deviceID": "0000:00:01.0", "resourceName": "r"}],
        [{**entry, "IsFilterV4Gateway": True}],
        [{**entry, "infinibandGUIDRequest": "g"}],
        [{**entry, "Name": 5}],
        [{**entry, "ifnameRequest": ""}],
        [{**entry, "Bytes": entry["Bytes"] + "\n"}],
        None,
        {"a": 1},
    ]
    for variant in variants:
        (tmp_path / CID).write_bytes(msgspec.json.encode(variant))
        with pytest.raises(Unhandled):
            lean_scratch.load(cni_dir, CID)
    for data in (b"[", b"\xff", scratch.encode_delegates([full]) + b" "):
        (tmp_path / CID).write_bytes(data)
        with pytest.raises(Unhandled):
            lean_scratch.load(cni_dir, CID)
    with pytest.raises(Unhandled):
        lean_scratch.load(cni_dir, "bad/id")
    (tmp_path / CID).write_bytes(b"[]")
    assert lean_scratch.load(cni_dir, CID) == [] == scratch.load(cni_dir, CID)


# ================================================================ results


#: Text forms of valid addresses (canonical or not) and of broken ones.
def v4_text(valid_only: bool) -> st.SearchStrategy[str]:
    good = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))
    return good if valid_only else good | ip_like


def v6_text(valid_only: bool) -> st.SearchStrategy[str]:
    good = st.integers(0, 2**128 - 1).flatmap(lambda v: st.sampled_from(_v6_forms(v)[:5]))
    good = good | st.sampled_from(["::", "fd00::1", "2001:db8::a"])
    return good if valid_only else good | ip_like


def cidr_text(valid_only: bool) -> st.SearchStrategy[str]:
    v4 = st.tuples(v4_text(valid_only), st.integers(0, 32))
    v6 = st.tuples(v6_text(valid_only), st.integers(0, 128))
    good = (v4 | v6).map(lambda t: f"{t[0]}/{t[1]}") | st.sampled_from(
        ["0.0.0.0/0", "::/0", "0.0.0.0/8", "10.0.0.1/024"]
    )
    if valid_only:
        return good
    return good | st.tuples(ip_like, prefix_like).map(lambda t: f"{t[0]}/{t[1]}")


def junk() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=3),
        st.lists(st.integers(0, 3), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    )


def field(good: st.SearchStrategy[Any], valid_only: bool) -> st.SearchStrategy[Any]:
    """``good``, or now and then (1 in 16) a value of any JSON type."""
    if valid_only:
        return good
    return st.integers(0, 15).flatmap(lambda n: junk() if n == 0 else good)


@st.composite
def json_object(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Some of ``fields`` (always the required ones), plus unknown keys, in a drawn order."""
    keys = [k for k in fields if k in required or draw(st.booleans())]
    pairs = [(k, draw(fields[k])) for k in keys]
    pairs += [(f"x-{i}", draw(junk())) for i in range(draw(st.integers(0, 1)))]
    return dict(draw(st.permutations(pairs)))


def route(valid: bool) -> st.SearchStrategy[dict[str, Any]]:
    ip = v4_text(valid) | v6_text(valid)
    return json_object(
        {
            "dst": field(cidr_text(valid), valid),
            "gw": field(st.none() | st.just("") | ip, valid),
            "mtu": field(st.integers(0, 9000), valid),
            "advmss": field(st.integers(0, 9000), valid),
            "priority": field(st.integers(0, 2**31), valid),
            "table": field(st.none() | st.integers(0, 255), valid),
            "scope": field(st.none() | st.integers(0, 255), valid),
        },
        () if not valid else ("dst",),
    )


def dns(valid: bool) -> st.SearchStrategy[dict[str, Any]]:
    words = st.lists(st.sampled_from(["10.0.0.10", "a.svc", "ndots:5", "x<y>"]), max_size=2)
    return json_object(
        {
            "nameservers": field(words, valid),
            "domain": field(st.sampled_from(["", "cluster.local"]), valid),
            "search": field(words, valid),
            "options": field(words, valid),
        }
    )


def results(valid: bool) -> st.SearchStrategy[dict[str, Any]]:
    text = st.sampled_from(["eth0", "net1", "", "a<b>&c", "\u00e9"])
    ip = v4_text(valid) | v6_text(valid)
    interface = json_object(
        {
            "name": field(text, valid),
            "mac": field(st.sampled_from(["", "c2:ac:00:00:00:01"]), valid),
            "sandbox": field(st.sampled_from(["", "/var/run/netns/x"]), valid),
            "mtu": field(st.integers(0, 9000), valid),
            "socketPath": field(text, valid),
            "pciID": field(text, valid),
        },
        () if not valid else ("name",),
    )
    ipc = json_object(
        {
            "version": field(st.sampled_from(["4", "6"]), valid)
            if valid
            else st.sampled_from(["4", "6", "", "5"]),
            "interface": field(st.none() | st.integers(-1, 3), valid),
            "address": field(cidr_text(valid), valid),
            "gateway": field(st.just("") | ip, valid),
        },
        () if not valid else ("address",),
    )
    ip_020 = json_object(
        {
            "ip": field(cidr_text(valid), valid),
            "gateway": field(st.just("") | ip, valid),
            "routes": field(st.lists(route(valid), max_size=2), valid),
        },
        () if not valid else ("ip",),
    )
    version = st.sampled_from(VERSIONS if valid else [*VERSIONS, *VERSIONS, "", "0.5.0"])
    return json_object(
        {
            "cniVersion": field(version, valid),
            "interfaces": field(st.lists(interface, max_size=3), valid),
            "ips": field(st.lists(ipc, max_size=3), valid),
            "routes": field(st.lists(route(valid), max_size=3), valid),
            "dns": field(dns(valid), valid) if not valid else st.none() | dns(valid),
            "ip4": field(st.none() | ip_020, valid),
            "ip6": field(st.none() | ip_020, valid),
        }
    )


@st.composite
def valid_results(draw: st.DrawFn) -> tuple[bytes, str]:
    """Results the full path accepts (non-canonical address text included): the family's
    own fields only, versions matching addresses."""
    doc = draw(results(True))
    given_version = draw(st.sampled_from([*VERSIONS, ""]))
    family = (doc.get("cniVersion") or given_version or "0.1.0")[:3]
    if family in ("0.1", "0.2"):
        doc = {k: v for k, v in doc.items() if k not in ("interfaces", "ips", "routes")}
        for key, want in (("ip4", 4), ("ip6", 6)):
            if isinstance(doc.get(key), dict):
                net = ipaddress.ip_interface(_plain_cidr(doc[key]["ip"]))
                if net.version != want or "ffff" in str(net.ip).lower():
                    doc[key] = None
                else:
                    doc[key]["routes"] = [
                        r for r in doc[key].get("routes", []) if _family_of(r["dst"]) == want
                    ]
    else:
        doc = {k: v for k, v in doc.items() if k not in ("ip4", "ip6")}
        doc["ips"] = [_fix_ip(ip, family) for ip in doc.get("ips", []) if _usable(ip["address"])]
    doc["routes"] = [r for r in doc.get("routes", []) if _usable(r["dst"])]
    if family in ("0.1", "0.2"):
        doc.pop("routes")
    if family[0] == "0" and doc.get("dns", {}) is None:
        del doc["dns"]  # a 0.x result's dns is not nullable
    return json.dumps(doc).encode(), given_version


def _plain_cidr(text: str) -> str:
    address, _, length = text.partition("/")
    return f"{ipaddress.ip_address(address)}/{int(length)}"


def _family_of(cidr: str) -> int:
    return ipaddress.ip_address(cidr.partition("/")[0]).version


def _usable(cidr: str) -> bool:
    try:
        canonical_cidr(cidr, "x")
    except CniError:
        return False
    return True


def _fix_ip(ip: dict[str, Any], family: str) -> dict[str, Any]:
    if family in ("0.3", "0.4"):
        return {**ip, "version": str(_family_of(ip["address"]))}
    return ip


def full_parse(data: bytes, version: str) -> Outcome:
    return outcome(lambda: msgspec.to_builtins(parse_result(data, version)))


def no_fallback() -> Any:
    """The full path's parser, which the lean results must not need, made to fail."""
    return mock.patch.object(output, "_full_path_parse", side_effect=AssertionError("fallback"))


def lean_parse(data: bytes, version: str) -> Outcome:
    return outcome(lambda: output.parse_result(data, version))


@PROPS
@given(valid_results())
@example((b'{"cniVersion":"0.3.1","ips":[{"address":"10.0.0.5/24"}]}', "0.3.1"))
def test_valid_results_parse_convert_and_encode_as_the_full_path(case: tuple[bytes, str]) -> None:
    data, version = case
    with no_fallback():
        lean = output.parse_result(data, version)
    full = parse_result(data, version)
    assert lean == msgspec.to_builtins(full)
    assert_same_outputs(lean, full)


def assert_same_outputs(lean: dict[str, Any], full: Any) -> None:
    """Every output the lean path makes of a parsed result, against the full path's."""
    for sort_keys in (None, True, False):
        for indent in (False, True):
            assert lean_results.encode_result(lean, indent=indent, sort_keys=sort_keys) == (
                encode_result(full, indent=indent, sort_keys=sort_keys)
            )
    for to in VERSIONS:
        conf: Any = SimpleNamespace(cni_version=to)
        assert outcome(partial(output.print_result, lean, to)) == outcome(
            partial(call._print, full, conf)
        )
        expected = outcome(lambda: msgspec.to_builtins(convert(full, to)))  # noqa: B023
        assert outcome(partial(lean_results.convert, lean, to)) == expected
    current = msgspec.to_builtins(convert(full, "1.0.0")) if full.cniVersion[:1] != "1" else None
    assert lean_results.to_current(lean) == (current or msgspec.to_builtins(full))
    for is_default in (True, False):
        entries = statuses_for_result(to_current(full), "ns/a<b>", is_default)
        ours = status.status_entries(lean, "ns/a<b>", is_default)
        assert ours == [msgspec.to_builtins(e) for e in entries]
        assert status.render_network_status(ours) == render_network_status(entries)
    assert status.added_message(lean, "net1", "ns/x") == emitted(full)


def emitted(result: Any) -> str | None:
    sent: list[str] = []
    events = SimpleNamespace(emit=lambda pod, kind, reason, message: sent.append(message))
    deps: Any = SimpleNamespace(events=events)
    add.emit_added(deps, cast(Any, SimpleNamespace()), "net1", "ns/x", result)
    return sent[0] if sent else None


@PROPS
@given(results(False), st.sampled_from([*VERSIONS, *VERSIONS, "", "0.5.0"]))
@example({"ips": [{"address": "10.0.0.1/24", "interface": 1e300}]}, "1.0.0")
@example({"interfaces": [{"name": 2**64}]}, "1.0.0")
@example({"interfaces": [{"name": 10**400}]}, "1.0.0")
@example({"cniVersion": None}, "1.0.0")
@example({"ips": [{"address": "1.2.3.4/24", "version": "6"}]}, "0.4.0")
@example({"ip4": {"ip": "fd00::1/64"}}, "0.2.0")
@example({"ip4": {"gateway": "1.2.3.4"}}, "0.2.0")
@example({"ips": [{"address": "::ffff:1.2.3.4/120"}]}, "1.0.0")
@example({"ips": [{"version": "5", "address": "1.2.3.4/24"}]}, "0.4.0")
@example({"ips": [{"address": "1.2.3.4/24", "gateway": "::FFFF:1.2.3.4"}]}, "1.1.0")
@example({"routes": [{"dst": "0.0.0.0/0", "gw": ""}, {"dst": "::0/0", "gw": "::1"}]}, "1.0.0")
def test_any_result_parses_or_fails_as_the_full_path(doc: dict[str, Any], version: str) -> None:
    data = json.dumps(doc).encode()
    lean, full = lean_parse(data, version), full_parse(data, version)
    event(f"{lean[0]} {lean[2].split(':')[1:3] if lean[0] == 'error' else ''}")
    assert lean == full
    if lean[0] == "ok":
        assert_same_outputs(lean[1], parse_result(data, version))


ADDRESS_KEYS = {"address": "cidr", "ip": "cidr", "dst": "cidr", "gateway": "ip", "gw": "ip"}


@st.composite
def bad_address(draw: st.DrawFn) -> tuple[bytes, str]:
    """A valid result with one address, gateway or ``version`` replaced by odd text."""
    data, version = draw(valid_results())
    doc = json.loads(data)
    spots = [
        (obj, key) for obj in _objects(doc) for key in obj if key in (*ADDRESS_KEYS, "version")
    ]
    if spots:
        obj, key = draw(st.sampled_from(spots))
        if key == "version":
            obj[key] = draw(st.sampled_from(["", "4", "6", "5"]))
        elif ADDRESS_KEYS[key] == "ip":
            obj[key] = draw(ip_like)
        else:
            obj[key] = draw(st.tuples(ip_like, prefix_like).map(lambda t: f"{t[0]}/{t[1]}"))
    return json.dumps(doc).encode(), version


def _objects(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value, *(o for v in value.values() for o in _objects(v))]
    if isinstance(value, list):
        return [o for v in value for o in _objects(v)]
    return []


@PROPS
@given(bad_address())
def test_addresses_in_results_checked_as_the_full_path(case: tuple[bytes, str]) -> None:
    data, version = case
    lean, full = lean_parse(data, version), full_parse(data, version)
    event(f"{lean[0]} {lean[2].split(':')[2][:16] if lean[0] == 'error' else ''}")
    assert lean == full
    if lean[0] == "ok":
        assert_same_outputs(lean[1], parse_result(data, version))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"ips": [1,]}',
        b'{"a": NaN}',
        b'{"a": 1e999}',
        b'{"ips": 1e999}',
        b'{"a": "\\ud800"}',
        b'{"a": "\\ud83d\\ude00"}',
        b'{"ips": 5, "ips": []}',
        b'{"ips": [], "ips": 5}',
        b"\xef\xbb\xbf{}",
        b'{"a": "\xff"}',
        b"[" * 70 + b"]" * 70,
        b'{"a":' * 65 + b"1" + b"}" * 65,
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b'{"x": 1' + b"0" * 5000 + b"}",
        b" " * (4 * 1024 * 1024 + 1),
        b'{"cniVersion": "1.0.0"} x',
    ],
)
def test_odd_bytes_fail_or_parse_as_the_full_path(data: bytes) -> None:
    assert lean_parse(data, "1.0.0") == full_parse(data, "1.0.0")


def test_golden_results_and_network_status() -> None:
    """The delegates' results Go Multus recorded, through every output."""
    paths = sorted(GOLDEN.glob("*/results/*"))
    assert paths
    for path in paths:
        cached = json.loads(path.read_bytes())["result"]
        data = json.dumps(cached).encode()
        lean = output.parse_result(data, cached["cniVersion"])
        assert_same_outputs(lean, parse_result(data, cached["cniVersion"]))
    case = GOLDEN / "01-thin-comma-annotation"
    entries = []
    for index, (ifname, name) in enumerate(
        [("eth0", "golden-cluster"), ("net1", "golden/br-a"), ("data0", "golden/mv-b")]
    ):
        net = name.rpartition("/")[2]
        found = next((case / "results").glob(f"{net}-*-{ifname}"))
        data = json.dumps(json.loads(found.read_bytes())["result"]).encode()
        entries += status.status_entries(output.parse_result(data, "1.0.0"), name, index == 0)
    assert status.render_network_status(entries) == (case / "network-status.txt").read_text()
    printed = output.print_result(
        output.parse_result(
            json.dumps(
                json.loads(next((case / "results").glob("golden-cluster-*")).read_bytes())["result"]
            ).encode(),
            "1.0.0",
        ),
        "1.0.0",
    )
    assert printed == (case / "add.stdout").read_bytes()


COMMON_RESULTS = [
    (b'{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/n"}],'
     b'"ips":[{"interface":0,"address":"10.1.0.5/24","gateway":"10.1.0.1"}]}', "1.0.0"),
    (b'{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","mac":"c2:ac:00:00:00:01",'
     b'"sandbox":"/n"}],"ips":[{"version":"4","interface":0,"address":"10.1.0.5/24"},'
     b'{"version":"6","interface":0,"address":"fd00::5/64","gateway":"fd00::1"}],'
     b'"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0","gw":"fd00::1"}],'
     b'"dns":{"nameservers":["10.0.0.10"]}}', "0.3.1"),
    (b'{"cniVersion":"0.4.0","interfaces":[{"name":"cni0"},{"name":"veth1"},'
     b'{"name":"eth0","sandbox":"/n"}],"ips":[{"version":"4","interface":2,'
     b'"address":"10.244.1.7/24","gateway":"10.244.1.1"}],"dns":{}}', "0.4.0"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "version"), COMMON_RESULTS)
def test_common_results_stay_on_the_lean_path(data: bytes, version: str) -> None:
    with no_fallback():
        lean = output.parse_result(data, version)
    assert output.can_print(version, "1.0.0")
    assert_same_outputs(lean, parse_result(data, version))


def test_can_print_knows_every_spec_version() -> None:
    assert all(output.can_print(a, b) for a in VERSIONS for b in (*VERSIONS, ""))
    assert output.can_print("", "0.3.1")
    assert not output.can_print("0.5.0", "1.0.0")
    assert not output.can_print("1.0.0", "2.0.0")


@pytest.mark.parametrize("conf_version", ["", "1.0.0", "1.1.0"])
def test_empty_result_prints_as_the_full_path(conf_version: str) -> None:
    req: Any = SimpleNamespace(
        conf=SimpleNamespace(cni_version=conf_version),
        cmd=SimpleNamespace(ifname="eth0", netns="/var/run/netns/x"),
    )
    full = add.empty_result(req)
    lean = output.empty_result(conf_version, "eth0", "/var/run/netns/x")
    assert lean == msgspec.to_builtins(full)
    assert output.print_result(lean, conf_version) == call._print(full, req.conf)


@pytest.mark.parametrize("conf_version", ["0.3.1", "0.2.0", "9.9.9"])
def test_empty_result_under_a_0x_config_is_the_full_paths(conf_version: str) -> None:
    with pytest.raises(Unhandled):
        output.empty_result(conf_version, "eth0", "/x")


# ================================================================ the status PATCH body


@PROPS
@given(
    st.text(max_size=6) | st.sampled_from(["", "2d2d05b0-06c1"]),
    st.text(max_size=20) | st.just('[{\n    "name": "a<b>\\u003c"\n}]'),
)
def test_status_patch_body_as_the_full_path_sends_it(uid: str, value: str) -> None:
    """The PATCH body ``kube.Api.set_annotation_status`` sends for the status (the pod's UID
    as ``status.status_uid`` reads it), against ``k8s.calls`` encoded by msgspec."""
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": uid}}
    try:
        patch = kube.annotation_patch(STATUS, value, status.status_uid(pod))
        ours = kube.dumps(patch)
    except UnicodeEncodeError:
        with pytest.raises(msgspec.EncodeError):
            msgspec.json.encode(value)
        return
    expected = msgspec.json.encode(calls._annotation_patch(STATUS, value, uid))
    assert ours == expected


def test_status_uid_of_odd_pods() -> None:
    assert status.status_uid({}) == ""
    assert status.status_uid({"metadata": None}) == ""
    assert status.status_uid({"metadata": []}) == ""  # Pod.from_dict: `or {}`
    for pod in ({"metadata": {"uid": 5}}, {"metadata": [1]}):
        with pytest.raises(Unhandled):
            status.status_uid(pod)
