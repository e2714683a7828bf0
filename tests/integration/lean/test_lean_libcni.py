"""The lean libcni (``lean.chain``, ``spawn``, ``cnicache``, ``sweep``; results read by
``results``/``output``) against the full path's ``cni.chain``/``cni.invoke``/``cni.cache``.

Every test runs the same input through both and compares what comes out: results (bytes and
key order), libcni's cache files, plugins' stdin and ``CNI_*`` environment (as a recording
plugin saw them), error codes, messages and details, what a rollback or a DEL ran, what is
left on disk. Pure parts (result parsing and conversion, cache bytes, stdin, error decoding,
runtime args) are compared on hypothesis-generated inputs; plugin runs on the recording
plugin, a few shell scripts, and Debian's real plugins in fresh network namespaces.
"""

from __future__ import annotations

import base64
import fcntl
import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.netns import NetnsPair, addresses, make_pair
from tests.support.plugins import install_recorder, read_records, recorder_conf

from pymultus.cni import cache, netconf
from pymultus.cni.chain import CNIConfig, RuntimeConf, _Net
from pymultus.cni.convert import convert, encode_result, parse_result
from pymultus.cni.env import CmdArgs
from pymultus.cni.errors import CniError, decode_plugin_failure
from pymultus.config.multus import parse_multus_conf
from pymultus.core import delegates
from pymultus.core.delegate import Delegate as CoreDelegate
from pymultus.core.request import Request
from pymultus.core.runtime import runtime_conf
from pymultus.plugin.lean import addrs, chain, cnicache, js, output, spawn, sweep
from pymultus.plugin.lean import results as lean_results
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.model import Call, Delegate
from pymultus.plugin.lean.request import VERSIONS as LEAN_VERSIONS

pytestmark = pytest.mark.root

CNI_BIN = "/usr/lib/cni"
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARGS = [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "ns"), ("K8S_POD_NAME", "web-0")]
ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
_RANDOM = re.compile(rb"veth[0-9a-f]{8}|[0-9a-f]{2}(?::[0-9a-f]{2}){5}|pm[hp]-[0-9a-f]{6}")

Outcome = tuple[Any, ...]


# ================================================================ helpers


def delegate(conf: dict[str, Any], *, is_list: bool | None = None) -> Delegate:
    raw = json.dumps(conf).encode()
    listed = "plugins" in conf if is_list is None else is_list
    return Delegate(raw, js.loads_object(raw), conf.get("name", ""), is_list=listed)


def full_net(d: Delegate) -> netconf.NetConf | netconf.NetConfList:
    return netconf.conflist_from_bytes(d.raw) if d.is_list else netconf.conf_from_bytes(d.raw)


def full_rt(rt: chain.Runtime) -> RuntimeConf:
    return RuntimeConf(rt.container_id, rt.netns, rt.ifname, tuple(rt.args), rt.capability_args)


def outcome(fn: Callable[[], Any]) -> Outcome:
    """("ok", value) or ("error", code, msg, details), from either path."""
    try:
        return ("ok", fn())
    except LeanError as exc:
        return ("error", exc.code, exc.msg, exc.details)
    except CniError as exc:
        return ("error", exc.error_code, exc.msg, exc.details)


def full_result(r: Any) -> tuple[dict[str, Any], bytes]:
    data = encode_result(r)
    return js.loads_object(data), data


def masked(data: bytes) -> bytes:
    return _RANDOM.sub(lambda m: b"X" * len(m.group()), data)


def files(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative name: bytes)."""
    if not directory.exists():
        return {}
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def calls(record: Path) -> list[tuple[str, dict[str, str], str]]:
    """What a recorder saw (verb, CNI_* environment, exact stdin); the file is emptied."""
    seen = [(r["command"], r["env"], r["stdinB64"]) for r in read_records(record)]
    record.unlink(missing_ok=True)
    return seen


def script(bin_dir: Path, name: str, body: str, *, mode: int = 0o755) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(body)
    path.chmod(mode)
    return path


# ================================================================ results (pure)

_ADDRESSES = [
    "10.1.2.3/24",
    "198.18.0.5/20",
    "0.0.0.0/0",
    "10.01.2.3/24",
    "10.1.2.3/024",
    "10.1.2.3/33",
    "10.1.2.3",
    "256.1.2.3/8",
    "2001:db8::1/64",
    "2001:DB8::1/64",
    "2001:0db8::1/64",
    "2001:db8:0:0:1::1/64",
    "2001:db8::1:0:0:1/128",
    "::/0",
    "::1/128",
    "::ffff:1.2.3.4/96",
    "::ffff:102:304/128",
    "::1.2.3.4/128",
    "fe80::1%eth0/64",
    "1:2:3:4:5:6:7:8/129",
    "",
]
_GATEWAYS = ["", "10.1.2.1", "2001:db8::1", "fe80::1", "10.1.2.01", "::ffff:10.1.2.1", "x"]
_GATEWAYS += ["::ffff:a01:201", "fe80::1%eth0"]
_VERSIONS = [*ALL_VERSIONS, "", "9.9.9"]

scalar = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([2**60, 1.5, "s"])
text = st.sampled_from(["", "eth0", "net1", "a<b>&c", "\u00e9\u2028", "/var/run/netns/x"])


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``value``, sometimes anything."""
    return st.one_of(value, value, value, scalar)


def obj(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with a random subset of ``fields`` (and at times an unknown key)."""
    keys = sorted(fields)
    return st.fixed_dictionaries(
        {}, optional={**{k: fields[k] for k in keys}, "extra": scalar | st.just([1, {"a": 2}])}
    )


interfaces = st.lists(
    maybe(
        obj(
            {
                "name": maybe(text),
                "mac": maybe(st.sampled_from(["", "02:00:00:00:00:01"])),
                "sandbox": maybe(text),
                "mtu": maybe(st.integers(0, 9000)),
                "socketPath": maybe(text),
                "pciID": maybe(text),
            }
        )
    ),
    max_size=3,
)
ips = st.lists(
    maybe(
        obj(
            {
                "version": maybe(st.sampled_from(["", "4", "6", "5"])),
                "interface": st.none() | st.integers(-1, 3) | st.booleans(),
                "address": maybe(st.sampled_from(_ADDRESSES)),
                "gateway": maybe(st.sampled_from(_GATEWAYS)),
            }
        )
    ),
    max_size=3,
)
routes = st.lists(
    maybe(
        obj(
            {
                "dst": maybe(st.sampled_from(_ADDRESSES)),
                "gw": st.none() | st.sampled_from(_GATEWAYS),
                "mtu": maybe(st.integers(0, 9000)),
                "advmss": maybe(st.integers(0, 3)),
                "priority": maybe(st.integers(0, 3)),
                "table": st.none() | st.integers(0, 3),
                "scope": st.none() | st.integers(0, 3),
            }
        )
    ),
    max_size=3,
)
dns = st.none() | obj(
    {
        "nameservers": maybe(st.lists(st.sampled_from(["1.1.1.1", "x"]), max_size=2)),
        "domain": maybe(text),
        "search": maybe(st.lists(text, max_size=2)),
        "options": maybe(st.lists(text, max_size=2)),
    }
)
_VALID_ADDRESSES = [a for a in _ADDRESSES if a in ("10.1.2.3/24", "198.18.0.5/20", "0.0.0.0/0")]
_VALID_ADDRESSES += ["2001:db8::1/64", "2001:db8:0:0:1::1/64", "::/0", "::1/128", "fd00::a:0:0/96"]


def shaped(addresses: list[str], gateways: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Results of the right shape, their leaves drawn from ``addresses``/``gateways``."""
    addr, gw, small = st.sampled_from(addresses), st.sampled_from(gateways), st.integers(0, 3)
    iface = st.fixed_dictionaries(
        {"name": text},
        optional={
            "mac": text,
            "sandbox": text,
            "mtu": st.integers(0, 9000),
            "socketPath": text,
            "pciID": text,
        },
    )
    ip = st.fixed_dictionaries(
        {"address": addr},
        optional={
            "version": st.sampled_from(["", "4", "6"]),
            "interface": st.none() | small,
            "gateway": gw,
        },
    )
    route = st.fixed_dictionaries(
        {"dst": addr},
        optional={
            "gw": st.none() | gw,
            "mtu": small,
            "advmss": small,
            "priority": small,
            "table": st.none() | small,
            "scope": st.none() | small,
        },
    )
    names = st.lists(text, max_size=2)
    dns = st.fixed_dictionaries(
        {}, optional={"nameservers": names, "domain": text, "search": names, "options": names}
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "cniVersion": st.sampled_from(_VERSIONS),
            "interfaces": st.lists(iface, max_size=3),
            "ips": st.lists(ip, max_size=3),
            "routes": st.lists(route, max_size=3),
            "dns": st.none() | dns,
        },
    )


valid_shapes = shaped(_VALID_ADDRESSES, ["", "10.1.2.1", "2001:db8::1"])
messy = obj(
    {
        "cniVersion": maybe(st.sampled_from(_VERSIONS)),
        "interfaces": maybe(interfaces),
        "ips": maybe(ips),
        "routes": maybe(routes),
        "dns": dns,
        # a 0.2.0 result's keys
        "ip4": maybe(obj({"ip": st.sampled_from(_ADDRESSES)})),
    }
)
results = st.one_of(shaped(_ADDRESSES, _GATEWAYS), valid_shapes, messy)
version_arg = st.none() | st.sampled_from(_VERSIONS)


def full_parse(data: bytes, version: str | None) -> tuple[dict[str, Any], bytes]:
    return full_result(parse_result(data, version))


@PROPS
@given(results, version_arg, st.booleans())
def test_parse_result_is_the_full_paths(
    res: dict[str, Any], version: str | None, indent: bool
) -> None:
    data = json.dumps(res, indent=4 if indent else None).encode()
    lean = outcome(lambda: output.parse_result(data, version))
    full = outcome(lambda: full_parse(data, version))
    if lean[0] == "ok":
        lean = ("ok", (lean[1], lean_results.encode_result(lean[1])))
    assert lean == full
    if lean[0] == "ok":  # the full path's Struct's key order too
        assert list(lean[1][0]) == list(msgspec.to_builtins(parse_result(data, version)))


@PROPS
@given(results, version_arg)
def test_what_lean_reads_itself_the_full_path_reads_alike(
    res: dict[str, Any], version: str | None
) -> None:
    """``parse_object`` (a cached result, decoded already: no full-path fallback) gives the
    full path's bytes for what it accepts, the full path's error for what it refuses."""
    obj = json.loads(json.dumps(res))
    mine = outcome(lambda: lean_results.encode_result(lean_results.parse_object(obj, version)))
    assert mine == outcome(lambda: full_parse(json.dumps(res).encode(), version)[1])


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_every_address_text_reads_as_the_full_path(version: str) -> None:
    """Each address and gateway text in each place a result holds one, every ``version``."""
    for address in _ADDRESSES:
        for gateway in [*_GATEWAYS, None]:
            for family in ("", "4", "6", "5"):
                ip: dict[str, Any] = {"address": address, "version": family}
                route: dict[str, Any] = {"dst": address, "gw": gateway}
                if gateway is not None:
                    ip["gateway"] = gateway
                for res in ({"ips": [ip]}, {"routes": [route]}):
                    data = json.dumps({"cniVersion": version, **res}).encode()
                    mine = outcome(lambda d=data: output.parse_result(d, None))  # type: ignore[misc]
                    full = outcome(lambda d=data: full_parse(d, None)[0])  # type: ignore[misc]
                    assert mine == full, data


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"",
        b"[]",
        b'{"cniVersion":"1.0.0","ips":[{"address":"\\ud800"}]}',
        b'{"cniVersion":"1.0.0","x":1e400}',
        b'{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.1/24"}}',
        b'{"cniVersion":"1.0.0","interfaces":[{"name":"a","mtu":1152921504606846976}]}',
        b" " * 10 + b'{"cniVersion":"1.0.0"}' + b"\n",
    ],
)
def test_unusual_results_are_the_full_paths(data: bytes) -> None:
    assert outcome(lambda: output.parse_result(data, "1.0.0")) == outcome(
        lambda: full_parse(data, "1.0.0")[0]
    )


BRIDGE_RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cnibr0", "mac": "82:ea:e7:09:6a:fc"},
        {"name": "veth4240efef", "mac": "36:7c:04:50:d2:35"},
        {"name": "eth0", "mac": "ee:8c:55:ee:56:2e", "sandbox": "/var/run/netns/p"},
    ],
    "ips": [{"interface": 2, "address": "198.18.10.10/24", "gateway": "198.18.10.1"}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "198.18.10.1"}, {"dst": "2001:db8::/32"}],
    "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
}


@pytest.mark.parametrize("version", LEAN_VERSIONS)
def test_real_plugin_results_are_read_without_the_full_path(version: str) -> None:
    res = dict(BRIDGE_RESULT, cniVersion=version)
    mine = lean_results.parse_object(res, None)
    assert lean_results.encode_result(mine) == full_parse(json.dumps(res).encode(), None)[1]


@PROPS
@given(valid_shapes, st.sampled_from(LEAN_VERSIONS), st.sampled_from(ALL_VERSIONS))
def test_convert_is_the_full_paths(res: dict[str, Any], own: str, target: str) -> None:
    data = json.dumps(dict(res, cniVersion=own)).encode()
    try:
        full = parse_result(data)
    except CniError:
        return  # not a result: nothing to convert
    lean = output.parse_result(data, None)
    mine = outcome(lambda: lean_results.encode_result(lean_results.convert(lean, target)))
    assert mine == outcome(lambda: encode_result(convert(full, target)))


@PROPS
@given(valid_shapes, st.sampled_from(LEAN_VERSIONS))
def test_to_current_is_the_full_paths(res: dict[str, Any], own: str) -> None:
    from pymultus.cni.convert import to_current

    data = json.dumps(dict(res, cniVersion=own)).encode()
    try:
        full = parse_result(data)
    except CniError:
        return
    lean = output.parse_result(data, None)
    assert lean_results.encode_result(lean_results.to_current(lean)) == encode_result(
        to_current(full)
    )


@PROPS
@given(
    st.binary(min_size=16, max_size=16)
    | st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF]), min_size=8, max_size=8).map(
        lambda w: b"".join(x.to_bytes(2, "big") for x in w)
    )
)
def test_ipv6_text_is_pythons(packed: bytes) -> None:
    addr = ipaddress.IPv6Address(packed)
    if addr.ipv4_mapped is None:
        assert addrs.v6_text(int.from_bytes(packed, "big")) == str(addr)


# ================================================================ cache, stdin (pure)

caps_values = st.fixed_dictionaries(
    {},
    optional={
        "portMappings": st.just([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        "PortMappings": st.just([{"hostPort": 1, "containerPort": 2, "protocol": "udp"}]),
        "mac": st.just("02:00:00:00:00:07"),
        "ips": st.just(["10.1.1.1/24"]),
        "bandwidth": st.just({"ingressRate": 1000, "egressBurst": 2}),
        "a<b>": text,
    },
)
cni_args = st.lists(st.tuples(st.sampled_from(["K8S_POD_NAME", "IP", "X"]), text), max_size=3)


@PROPS
@given(
    st.sampled_from([BRIDGE_RESULT, dict(BRIDGE_RESULT, cniVersion="0.4.0")]),
    cni_args,
    caps_values,
    st.sampled_from(["", "/var/run/netns/p<1>"]),
    st.sampled_from([b'{"name":"n"}', b'{\n  "x": "\\u00e9<"\n}', b""]),
)
def test_cache_entry_bytes_are_libcnis(
    res: dict[str, Any],
    args: list[tuple[str, str]],
    caps: dict[str, Any],
    netns: str,
    config: bytes,
) -> None:
    full = parse_result(json.dumps(res).encode())
    lean = msgspec.to_builtins(full)
    rt = chain.Runtime("cid-1", netns, "eth0", args, caps)
    entry = cache.CacheEntry.for_result(
        full,
        container_id="cid-1",
        ifname="eth0",
        network_name="net",
        config=config,
        netns=netns,
        cni_args=tuple(args),
        capability_args=caps,
    )
    mine = cnicache.entry_bytes("net", config, rt, cnicache.cached_result_bytes(lean))
    assert mine == cache.encode(entry)
    back = cnicache.decode_entry(mine)
    assert back is not None
    assert (back.config, back.cni_args, back.capability_args) == (config, args, caps)


plugin_confs = st.fixed_dictionaries(
    {"type": st.just("bridge")},
    optional={
        "capabilities": st.fixed_dictionaries(
            {},
            optional={
                "portMappings": st.booleans(),
                "PORTMAPPINGS": st.booleans(),
                "mac": st.booleans(),
                "ips": st.booleans(),
                "bandwidth": st.booleans(),
            },
        ),
        "prevResult": st.just({"cniVersion": "0.4.0"}),
        "runtimeConfig": st.just({"old": True}),
        "name": st.just("plugin-own"),
        "zzz": text,
        "ipam": st.just({"type": "host-local", "subnet": "10.0.0.0/24"}),
    },
)


@PROPS
@given(
    plugin_confs,
    st.sampled_from(LEAN_VERSIONS),
    st.none() | st.sampled_from(["0.3.1", "0.4.0", "1.0.0", "1.1.0"]),
    caps_values,
)
def test_plugin_stdin_is_libcnis(
    plugin: dict[str, Any], version: str, prev_version: str | None, caps: dict[str, Any]
) -> None:
    conf = {"cniVersion": version, "name": "net", "plugins": [plugin]}
    d = delegate(conf)
    full = netconf.conflist_from_bytes(d.raw)
    prev_full = (
        None
        if prev_version is None
        else parse_result(json.dumps(dict(BRIDGE_RESULT, cniVersion=prev_version)).encode())
    )
    prev = None if prev_full is None else msgspec.to_builtins(prev_full)
    rt = chain.Runtime("cid", "/n", "eth0", ARGS, caps)
    mine = chain._stdin(chain._net(d), chain._net(d).plugins[0], prev, rt)
    cni = CNIConfig([CNI_BIN])
    assert mine == cni._stdin(_Net.of_list(full), full.plugins[0], prev_full, full_rt(rt))


# ================================================================ plugin failures (pure)

error_objects = st.fixed_dictionaries(
    {},
    optional={
        "code": st.integers(-3, 200) | st.sampled_from([2**70, True, 1.0, "7", None]),
        "msg": text | scalar,
        "details": text | scalar,
        "cniVersion": st.just("1.0.0"),
    },
)
stdouts = (
    st.binary(max_size=40)
    | error_objects.map(lambda o: json.dumps(o).encode())
    | error_objects.map(lambda o: b"  \n" + json.dumps(o, indent=2).encode() + b"\n")
    | st.sampled_from(
        [b"", b"\x0c", b" \n", b"[1]", b'"x"', b"{", b'{"code":1}x', b'{"code":1e400}', b"\xff{"]
    )
)


@PROPS
@given(stdouts, st.binary(max_size=30), st.sampled_from([1, 2, -9, -15, 255]))
def test_plugin_failures_read_as_the_full_path(stdout: bytes, stderr: bytes, status: int) -> None:
    mine = spawn.plugin_failure("bridge", stdout, stderr, status)
    full = decode_plugin_failure("bridge", stdout, stderr, status)
    assert (mine.code, mine.msg, mine.details) == (full.error_code, full.msg, full.details)


# ================================================================ runtime args (pure)

arg_values = st.sampled_from(["", "x", " spaced ", "a=b", "é"])
cni_arg_strings = st.lists(
    st.tuples(
        st.sampled_from(["K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_UID", "X", " Y "]),
        arg_values,
    ).map(lambda t: f"{t[0]}={t[1]}")
    | st.sampled_from(["", " ", "K8S_POD_INFRA_CONTAINER_ID=infra", "IgnoreUnknown=1"]),
    max_size=6,
).map(";".join)


@PROPS
@given(
    cni_arg_strings,
    st.booleans(),
    st.sampled_from(["", "02:00:00:00:00:09"]),
    st.lists(st.sampled_from(["10.1.1.5/24", "2001:db8::5/64"]), max_size=2, unique=True),
    st.none() | st.sampled_from([{}, {"portMappings": [{"hostPort": 1, "containerPort": 2}]}]),
)
def test_runtime_is_the_full_paths(
    args: str, master: bool, mac: str, ips: list[str], runtime: dict[str, Any] | None
) -> None:
    environ = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "cid",
        "CNI_NETNS": "/var/run/netns/p",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": args,
        "CNI_PATH": "/opt/cni/bin",
    }
    multus: dict[str, Any] = {"cniVersion": "1.0.0", "name": "multus", "type": "multus"}
    multus["clusterNetwork"] = "/etc/cni/net.d/10-flannel.conflist"
    if runtime is not None:
        multus["runtimeConfig"] = runtime
    d = Delegate(
        b"{}", {"name": "n"}, "ns/n", is_list=False, mac_request=mac, ip_requests=tuple(ips)
    )
    try:
        lean = chain.runtime_for(Call(environ), d, "net1", is_master=master, runtime_config=runtime)
    except Unhandled:
        return
    cmd = CmdArgs("ADD", "cid", "/var/run/netns/p", "eth0", args, ("/opt/cni/bin",), b"")
    req = Request.build(cmd, parse_multus_conf(json.dumps(multus).encode()))
    core = CoreDelegate(
        raw=b"{}", name="ns/n", is_list=False, mac_request=mac, ip_requests=tuple(ips)
    )
    full = runtime_conf(req, core, "net1", is_master=master)
    assert (lean.container_id, lean.netns, lean.ifname) == (full.container_id, full.netns, "net1")
    assert (tuple(lean.args), lean.capability_args) == (full.args, dict(full.capability_args))


def test_runtime_args_the_full_path_refuses_are_unhandled() -> None:
    environ = {"CNI_CONTAINERID": "cid", "CNI_ARGS": "K8S_POD_NAME=a;oops"}
    d = Delegate(b"{}", {"name": "n"}, "n", is_list=False)
    with pytest.raises(Unhandled):
        chain.runtime_for(Call(environ), d, "eth0", is_master=True)
    d = Delegate(b"{}", {"name": "n"}, "n", is_list=False, mac_request="a;b")
    with pytest.raises(Unhandled):
        chain.runtime_for(Call({"CNI_ARGS": ""}), d, "eth0", is_master=False)


# ================================================================ running plugins: recorder


class Both:
    """One delegate run by both paths in turn, on the same paths and arguments, with
    separate caches; ``record`` is the recording plugins' log."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir(exist_ok=True)
        self.record = tmp / "calls.jsonl"
        self.timeout = 10.0

    @property
    def bin_path(self) -> list[str]:
        return [str(self.bin), CNI_BIN]

    def cache(self, which: str) -> Path:
        return self.tmp / f"cache-{which}"

    def lean(self, verb: str, d: Delegate, rt: chain.Runtime, cache_dir: str = "") -> Outcome:
        run = chain.add if verb == "ADD" else chain.delete
        where = cache_dir or str(self.cache("lean"))
        return outcome(
            lambda: run(d, rt, bin_path=self.bin_path, cache_dir=where, timeout=self.timeout)
        )

    def full(self, verb: str, d: Delegate, rt: chain.Runtime, cache_dir: str = "") -> Outcome:
        cni = CNIConfig(
            self.bin_path, cache_dir=cache_dir or str(self.cache("full")), timeout=self.timeout
        )
        if verb == "ADD":
            return outcome(lambda: full_result(delegates.add(cni, full_net(d), full_rt(rt))))
        return outcome(lambda: delegates.delete(cni, full_net(d), full_rt(rt)))

    def compare(
        self, verbs: list[str], d: Delegate, rt: chain.Runtime, *, cache_dir: str = ""
    ) -> list[Outcome]:
        """Each verb by lean then full: outcomes, plugin calls and cache files alike."""
        seen = []
        for verb in verbs:
            lean = self.lean(verb, d, rt, cache_dir)
            lean_calls = calls(self.record)
            full = self.full(verb, d, rt, cache_dir)
            assert lean == full, verb
            assert lean_calls == calls(self.record), verb
            if not cache_dir:
                assert files(self.cache("lean")) == files(self.cache("full")), verb
            seen.append(lean)
        return seen

    def recorder(self, name: str, **behaviour: Any) -> dict[str, Any]:
        install_recorder(self.bin, name)
        conf = recorder_conf(name, self.record)
        del conf["cniVersion"], conf["name"]
        if behaviour:
            conf["behaviour"] = behaviour
        return conf


@pytest.fixture
def both(tmp_path: Path) -> Both:
    return Both(tmp_path)


def rt_for(caps: dict[str, Any] | None = None, netns: str = "/var/run/netns/fake") -> chain.Runtime:
    return chain.Runtime("cid-1", netns, "eth0", ARGS, caps or {})


def fixed_plugin(both: Both, name: str, result: dict[str, Any]) -> dict[str, Any]:
    """A shell plugin that logs its stdin and prints ``result`` as it is (any version)."""
    out = both.tmp / f"{name}.json"
    out.write_text(json.dumps(result))
    log = both.tmp / f"{name}.log"
    script(
        both.bin,
        name,
        f'#!/bin/sh\n{{ echo "$CNI_COMMAND $CNI_ARGS"; cat; echo; }} >> {log}\n'
        f'[ "$CNI_COMMAND" = ADD ] && cat {out}\nexit 0\n',
    )
    return {"type": name}


@pytest.mark.parametrize("version", LEAN_VERSIONS)
@pytest.mark.parametrize("first", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_chain_with_conversions_runs_as_the_full_path(both: Both, version: str, first: str) -> None:
    """A first plugin answering in another version than asked: the next one gets it as
    prevResult converted to the list's; the cache holds the last result; DEL gets the cache's."""
    res = dict(BRIDGE_RESULT, cniVersion=first)
    res["interfaces"][0] = dict(res["interfaces"][0], mtu=1500, socketPath="/s")  # type: ignore[index]
    res["routes"] = [{"dst": "0.0.0.0/0", "gw": "198.18.10.1", "mtu": 1400, "table": 0}]
    fixed = fixed_plugin(both, "fixed", res)
    caps = {"PortMappings": [{"hostPort": 80}], "mac": "02:00:00:00:00:07", "ips": ["10.9.9.9/8"]}
    rec = both.recorder("rec-b")
    rec["capabilities"] = {"portMappings": True, "MAC": True, "ips": False}
    d = delegate({"cniVersion": version, "name": "chain", "plugins": [fixed, rec]})
    added, deleted = both.compare(["ADD", "DEL"], d, rt_for(caps))
    assert added[0] == "ok" and deleted == ("ok", None)
    log = (both.tmp / "fixed.log").read_text().splitlines()
    assert len(log) == 8  # lean ADD, full ADD, lean DEL, full DEL: verb and stdin each
    assert log[0:2] == log[2:4] and log[4:6] == log[6:8]


@pytest.mark.parametrize("version", LEAN_VERSIONS)
def test_single_conf_add_del_as_the_full_path(both: Both, version: str) -> None:
    conf = both.recorder("rec-a")
    conf.update(cniVersion=version, name="single", result=BRIDGE_RESULT)
    conf["capabilities"] = {"ips": True}
    d = delegate(conf)
    added, deleted, again = both.compare(["ADD", "DEL", "DEL"], d, rt_for({"ips": ["10.1.1.1/24"]}))
    assert added[0] == "ok" and deleted == again == ("ok", None)


@pytest.mark.parametrize(
    ("behaviour", "extra"),
    [
        ({"ADD": "error"}, {}),
        ({"ADD": {"action": "error", "code": 11, "msg": "try <later>", "details": "d&d"}}, {}),
        ({"ADD": "garbage"}, {}),
        ({"ADD": "garbage-ok"}, {}),
        ({"ADD": "crash", "stderr": "panic: at the disco\n"}, {}),
        ({"ADD": {"action": "exit-silent", "exitCode": 3}}, {}),
        ({"ADD": "ok"}, {"result": {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}}),
        ({"ADD": "ok", "DEL": "error"}, {}),
        ({"ADD": "ok", "DEL": "crash"}, {}),
    ],
)
@pytest.mark.parametrize("form", ["conf", "second-of-list"])
def test_failures_answer_and_roll_back_as_the_full_path(
    both: Both, behaviour: dict[str, Any], extra: dict[str, Any], form: str
) -> None:
    bad = both.recorder("rec-bad", **behaviour)
    bad.update(extra)
    if form == "conf":
        d = delegate({**bad, "cniVersion": "1.0.0", "name": "net"})
    else:
        first = both.recorder("rec-a")
        bad["name"] = "bad<1>"  # named in libcni's error prefix
        d = delegate({"cniVersion": "0.4.0", "name": "net", "plugins": [first, bad]})
    added, _ = both.compare(["ADD", "DEL"], d, rt_for())
    if form != "conf" and added[0] == "error":
        assert added[2].startswith('plugin type="rec-bad" name="bad<1>" failed (add): ')


def test_del_is_best_effort_and_keeps_the_cache_as_the_full_path(both: Both) -> None:
    plugins = [both.recorder(f"rec-{i}", DEL="error" if i != 1 else "ok") for i in range(3)]
    plugins[2]["behaviour"]["DEL"] = {"action": "error", "code": 11, "msg": "second"}
    d = delegate({"cniVersion": "1.0.0", "name": "net", "plugins": plugins})
    added, deleted = both.compare(["ADD", "DEL"], d, rt_for())
    assert added[0] == "ok" and deleted[0] == "error" and "also failed" in deleted[2]
    assert files(both.cache("lean"))  # kept for the retry


@pytest.mark.parametrize("content", [b"garbage", b'{"kind":"cniCacheV1","result":{"ips":1}}'])
@pytest.mark.parametrize("form", ["conf", "list"])
def test_unreadable_cache_on_del_as_the_full_path(both: Both, content: bytes, form: str) -> None:
    conf = both.recorder("rec-a")
    if form == "conf":
        d = delegate({**conf, "cniVersion": "1.0.0", "name": "net"})
    else:
        d = delegate({"cniVersion": "1.0.0", "name": "net", "plugins": [conf]})
    for which in ("lean", "full"):
        (both.cache(which) / "results").mkdir(parents=True)
        (both.cache(which) / "results" / "net-cid-1-eth0").write_bytes(content)
    both.compare(["DEL"], d, rt_for())


def test_missing_plugin_is_unhandled_by_check_and_answered_as_the_full_path(both: Both) -> None:
    first = both.recorder("rec-a")
    d = delegate({"cniVersion": "1.0.0", "name": "net", "plugins": [first, {"type": "nope"}]})
    chain.check(d)  # the config is fine...
    with pytest.raises(Unhandled):
        chain.check(d, both.bin_path)  # ...the bin path is not
    assert calls(both.record) == []
    added, _ = both.compare(["ADD", "DEL"], d, rt_for())
    assert added[:2] == ("error", 7) and 'failed to find plugin "nope" in path' in added[2]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(("#!/bin/sh\necho hi\n", 0o644), id="not-executable"),
        pytest.param(("echo no shebang\n", 0o755), id="exec-format"),
        pytest.param(("#!/nonexistent/sh\n", 0o755), id="no-interpreter"),
    ],
)
def test_plugins_that_cannot_start_as_the_full_path(both: Both, body: tuple[str, int]) -> None:
    script(both.bin, "broken", body[0], mode=body[1])
    d = delegate({"cniVersion": "1.0.0", "name": "net", "type": "broken"})
    added = both.compare(["ADD"], d, rt_for())[0]
    assert added[:2] == ("error", 5) and "failed to execute plugin 'broken'" in added[2]


@pytest.mark.parametrize("ignore_term", [False, True])
def test_a_hung_plugin_is_killed_as_the_full_path(both: Both, ignore_term: bool) -> None:
    hang = {"action": "hang", "stderr": "waiting...\n", "ignoreTerm": ignore_term}
    hang["spawnChild"] = True
    bad = both.recorder("rec-hang", ADD=hang)
    d = delegate({"cniVersion": "1.0.0", "name": "net", "plugins": [both.recorder("rec-a"), bad]})
    both.timeout = 1.0
    started = time.monotonic()
    lean = both.lean("ADD", d, rt_for())
    took = time.monotonic() - started
    children = [r["childPid"] for r in read_records(both.record) if r["childPid"]]
    lean_calls = calls(both.record)
    full = both.full("ADD", d, rt_for())
    assert lean == full
    assert lean[:3] == (
        "error",
        5,
        "plugin type=\"rec-hang\" failed (add): plugin 'rec-hang' "
        "timed out after 1 s and was killed",
    )
    assert lean[3] == "waiting..."
    assert (
        [c[0] for c in lean_calls]
        == [c[0] for c in calls(both.record)]
        == ["ADD"] * 2 + ["DEL"] * 2
    )
    assert took < 1.0 + (2.5 if ignore_term else 1.5)
    assert children
    for pid in children:  # the plugin's session went with it
        assert _gone(pid)


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (its parent, the plugin, is dead)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rsplit(")", 1)[1].split()[0] == "Z"


def test_a_plugin_closing_its_outputs_and_lingering_times_out(both: Both) -> None:
    script(both.bin, "linger", "#!/bin/sh\nexec >&- 2>&-\nsleep 30\n")
    d = delegate({"cniVersion": "1.0.0", "name": "net", "type": "linger"})
    both.timeout = 0.5
    added = both.compare(["ADD"], d, rt_for())[0]
    assert added[:2] == ("error", 5)


def test_a_big_stdin_and_output_are_exchanged_as_the_full_path(both: Both) -> None:
    """More than a pipe holds both ways: stdin written as the plugin reads it."""
    script(
        both.bin,
        "echoer",
        '#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then cat >/dev/null; '
        'printf \'{"cniVersion":"1.0.0","interfaces":[{"name":"%s"}]}\' "$CNI_IFNAME"; '
        "head -c 300000 /dev/zero | tr '\\0' ' '; else cat >/dev/null; fi\n",
    )
    d = delegate({"cniVersion": "1.0.0", "name": "net", "type": "echoer", "pad": "x" * 200_000})
    added = both.compare(["ADD", "DEL"], d, rt_for())[0]
    assert added[0] == "ok"


def test_a_plugin_that_does_not_read_its_stdin_still_answers(both: Both) -> None:
    """Its stdin pipe breaks (more than the pipe holds is left unread): its answer counts."""
    script(
        both.bin,
        "deaf",
        '#!/bin/sh\nprintf \'{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8"}]}\'\n',
    )
    d = delegate({"cniVersion": "1.0.0", "name": "net", "type": "deaf", "pad": "x" * 300_000})
    added = both.compare(["ADD"], d, rt_for())[0]
    assert added[0] == "ok"


def test_plugins_get_the_same_environment_and_no_inherited_descriptor(both: Both) -> None:
    """The whole environment, the open descriptors (``close_fds``), the session
    (``start_new_session``) and default SIGPIPE (``restore_signals``) as Popen gives them."""
    log = both.tmp / "seen.log"
    script(
        both.bin,
        "looker",
        "#!/bin/sh\ncat >/dev/null\nread -r stat < /proc/$$/stat\nset -- $stat\n"
        f"{{ env | sort; echo fds: $(ls /proc/$$/fd); echo pgrp=$(($5 - $$)) sid=$(($6 - $$)); "
        f"grep -E '^Sig(Ign|Blk)' /proc/$$/status; }} > {log}.$CNI_COMMAND\n"
        'printf \'{"cniVersion":"1.0.0"}\'\n',
    )
    d = delegate({"cniVersion": "1.0.0", "name": "net", "type": "looker"})
    # Far above the descriptors dash itself opens (the script at 10, saved ones from 11).
    opened = os.open(os.devnull, os.O_RDONLY)
    leak = fcntl.fcntl(opened, fcntl.F_DUPFD, 97)
    os.close(opened)
    os.set_inheritable(leak, True)
    try:
        both.lean("ADD", d, rt_for())
        lean = (both.tmp / "seen.log.ADD").read_text()
        both.full("ADD", d, rt_for())
        full = (both.tmp / "seen.log.ADD").read_text()
    finally:
        os.close(leak)
    assert _glibc_internal_unmasked(lean) == _glibc_internal_unmasked(full)
    fds = next(line for line in lean.splitlines() if line.startswith("fds:")).split()[1:]
    assert str(leak) not in fds and "CNI_COMMAND=ADD" in lean
    assert "pgrp=0 sid=0" in lean  # its own session and group


def _glibc_internal_unmasked(seen: str) -> str:
    """glibc's ``posix_spawn`` leaves its internal signals 32 and 33 ignored in the child
    (``setsigdef`` cannot name them); Popen's children have them at default. A dynamically
    linked program gets glibc's handlers back at start, Go ignores them: no plugin notices.
    Masked on both sides: Popen's children inherit whatever this process ignores, and a test
    runner started through a ``posix_spawn`` (make, a CI shell) ignores them too."""

    def unmask(m: re.Match[str]) -> str:
        return f"SigIgn:\t{int(m.group(1), 16) & ~(0b11 << 31):016x}"

    return re.sub(r"SigIgn:\t([0-9a-f]{16})", unmask, seen)


def test_stderr_of_a_successful_plugin_goes_to_the_sink(both: Both) -> None:
    script(both.bin, "talker", "#!/bin/sh\necho chatty >&2\nprintf '{}'\n")
    seen: list[tuple[str, bytes]] = []
    out = spawn.run_plugin(
        "talker",
        b"{}",
        dict(os.environ),
        both.bin_path,
        timeout=5,
        stderr_sink=lambda plugin, err: seen.append((plugin, err)),
    )
    assert (out, seen) == (b"{}", [("talker", b"chatty\n")])


def test_a_failing_cache_write_rolls_back_as_the_full_path(both: Both) -> None:
    d = delegate({"cniVersion": "1.0.0", "name": "net", "plugins": [both.recorder("rec-a")]})
    not_a_dir = both.tmp / "cache-is-a-file"
    not_a_dir.write_text("")
    added = both.compare(["ADD"], d, rt_for(), cache_dir=str(not_a_dir))[0]
    assert added[:2] == ("error", 5)
    assert added[2].startswith('failed to set network "net" cached result: cannot create ')


def test_the_result_cache_file_is_private_and_replaced_atomically(both: Both) -> None:
    d = delegate({"cniVersion": "1.0.0", "name": "net", "plugins": [both.recorder("rec-a")]})
    both.compare(["ADD"], d, rt_for())
    for which in ("lean", "full"):
        results = both.cache(which) / "results"
        assert stat.S_IMODE(results.stat().st_mode) == 0o700
        assert [(p.name, stat.S_IMODE(p.stat().st_mode)) for p in results.iterdir()] == [
            ("net-cid-1-eth0", 0o600)
        ]


@pytest.mark.parametrize(
    "conf",
    [
        {"cniVersion": "0.2.0", "name": "n", "type": "bridge"},
        {"cniVersion": "1.0.0", "name": "n", "Type": "bridge"},
        {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "mtu": 1.5},
        {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "big": 2**60},
        {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": []},
        {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "capabilities": {"a": 1}},
        {"cniVersion": "1.0.0", "name": "-n", "type": "bridge"},
        {"cniVersion": "1.0.0", "name": "n", "type": "../bridge"},
        {"cniVersion": "1.0.0", "name": "n", "plugins": []},
        {"cniVersions": ["1.0.0"], "name": "n", "plugins": [{"type": "bridge"}]},
        {"cniVersion": "1.0.0", "name": "n", "disableCheck": 1, "plugins": [{"type": "bridge"}]},
        {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge", "Capabilities": {}}]},
    ],
)
def test_configs_the_lean_path_does_not_run_are_unhandled(conf: dict[str, Any]) -> None:
    with pytest.raises(Unhandled):
        chain.check(delegate(conf))


def test_bad_names_are_unhandled_before_any_plugin_runs(both: Both) -> None:
    d = delegate({"cniVersion": "1.0.0", "name": "net", "plugins": [both.recorder("rec-a")]})
    for rt in (chain.Runtime("-bad", "/n", "eth0", ARGS), chain.Runtime("c", "/n", "eth 0")):
        with pytest.raises(Unhandled):
            chain.add(d, rt, bin_path=both.bin_path, cache_dir=str(both.tmp), timeout=5)
    assert calls(both.record) == []


# ================================================================ DEL's leftover sweep


def _leftover_fields(entry: Any) -> tuple[Any, ...]:
    return (
        entry.container_id,
        entry.ifname,
        entry.network_name,
        entry.config,
        entry.netns,
        tuple(map(tuple, entry.cni_args)),
        dict(entry.capability_args),
    )


def _make_leftovers(both: Both, cache_dir: Path) -> None:
    """Attachments of cid-1 (a conf, a list), one of another container, and debris."""
    cni = CNIConfig(both.bin_path, cache_dir=str(cache_dir))
    conf = {**both.recorder("rec-a"), "cniVersion": "0.4.0", "name": "single"}
    listed = {"cniVersion": "1.0.0", "name": "listed", "plugins": [both.recorder("rec-b")]}
    for data, ifname, cid in (
        (conf, "net1", "cid-1"),
        (listed, "net2", "cid-1"),
        (listed, "net1", "cid-2"),
    ):
        net = netconf.load_any(json.dumps(data).encode())
        rt = RuntimeConf(
            cid, "/var/run/netns/old", ifname, tuple(ARGS), {"mac": "02:00:00:00:00:01"}
        )
        cni.add_network_list(net, rt)
    (cache_dir / "results" / ".tmp-x-cid-1-eth0").write_text("{}")
    (cache_dir / "results" / "other-cid-10-eth0").write_text("{}")
    calls(both.record)


def test_leftovers_are_the_full_paths(both: Both) -> None:
    cache_dir = both.cache("lean")
    _make_leftovers(both, cache_dir)
    mine = sweep.check_leftovers(str(cache_dir), "cid-1")
    full = cache.list_attachments(str(cache_dir), container_id="cid-1")
    assert [_leftover_fields(e) for e in mine] == [_leftover_fields(e) for e in full]
    assert len(mine) == 2
    (cache_dir / "results" / "junk-cid-1-eth9").write_text("junk")
    with pytest.raises(Unhandled):
        sweep.check_leftovers(str(cache_dir), "cid-1")
    (cache_dir / "results" / "junk-cid-1-eth9").unlink()
    old = json.loads(mine[0].config)
    old["cniVersion"] = "0.2.0"  # one the lean path does not run, unless it is skipped
    entry = json.loads((cache_dir / "results" / "single-cid-1-net1").read_text())
    entry["config"] = base64.b64encode(json.dumps(old).encode()).decode()
    (cache_dir / "results" / "single-cid-1-net1").write_text(json.dumps(entry))
    with pytest.raises(Unhandled):
        sweep.check_leftovers(str(cache_dir), "cid-1")
    assert len(sweep.check_leftovers(str(cache_dir), "cid-1", {("single", "net1")})) == 2
    assert calls(both.record) == []


@pytest.mark.parametrize("fail", [False, True])
def test_leftover_sweep_is_the_full_paths(both: Both, fail: bool) -> None:
    from pymultus.core.delete import _del_leftovers

    _make_leftovers(both, both.cache("lean"))
    shutil.copytree(both.cache("lean"), both.cache("full"))
    if fail:
        (both.bin / "rec-b.json").write_text(json.dumps({"behaviour": {"DEL": "error"}}))
    tried = {("listed", "net9")}
    call = Call({"CNI_CONTAINERID": "cid-1", "CNI_NETNS": "/var/run/netns/now"})
    sweep.check_leftovers(str(both.cache("lean")), "cid-1", tried)
    lean = sweep.delete_leftovers(
        str(both.cache("lean")), call, tried, bin_path=both.bin_path, timeout=10
    )
    lean_calls = calls(both.record)
    cni = CNIConfig(both.bin_path, cache_dir=str(both.cache("full")), timeout=10)
    cmd = CmdArgs("DEL", "cid-1", "/var/run/netns/now", "eth0", "", tuple(both.bin_path), b"")
    multus = {"cniVersion": "1.0.0", "name": "m", "type": "multus", "clusterNetwork": "x"}
    req = Request.build(cmd, parse_multus_conf(json.dumps(multus).encode()))
    from pymultus.core.deps import Deps

    full = _del_leftovers(cni, req, Deps(), tried)
    assert [(e.code, e.msg, e.details) for e in lean] == [
        (e.error_code, e.msg, e.details) for e in full
    ]
    assert len(lean) == (1 if fail else 0)
    assert lean_calls == calls(both.record)
    assert len(lean_calls) == 2
    assert files(both.cache("lean")) == files(both.cache("full"))


# ================================================================ real plugins, real netns


def _ipam(tmp: Path) -> dict[str, Any]:
    """One address only: both paths get the same, whatever host-local reserved before."""
    r = {"subnet": "198.18.10.0/24", "rangeStart": "198.18.10.10", "rangeEnd": "198.18.10.10"}
    return {"type": "host-local", "dataDir": str(tmp / "ipam"), "ranges": [[r]]}


def _real(form: str, version: str, tmp: Path) -> tuple[Delegate, dict[str, Any]]:
    bridge = {"type": "bridge", "bridge": "cnibr0", "isGateway": True, "ipam": _ipam(tmp)}
    caps: dict[str, Any] = {}
    if form == "conf":
        return delegate({"cniVersion": version, "name": "brnet", **bridge}), caps
    if form == "macvlan":
        mv = {"type": "macvlan", "master": "mvm0", "mode": "bridge", "ipam": _ipam(tmp)}
        return delegate({"cniVersion": version, "name": "mvnet", **mv}), caps
    if form == "bridge+portmap":
        second = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
        caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    else:
        second = {
            "type": "tuning",
            "capabilities": {"mac": True},
            "sysctl": {"net.ipv4.conf.eth0.forwarding": "1"},
        }
        caps = {"mac": "02:11:22:33:44:55"}
    return delegate({"cniVersion": version, "name": "brnet", "plugins": [bridge, second]}), caps


@pytest.fixture
def two_pairs() -> Iterator[tuple[NetnsPair, NetnsPair]]:
    with make_pair() as a, make_pair() as b:
        for pair in (a, b):
            pair.add_veth("mvm0", "mvm0peer")
        yield a, b


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
@pytest.mark.parametrize("form", ["conf", "bridge+portmap", "bridge+tuning", "macvlan"])
def test_real_plugins_add_and_del_as_the_full_path(
    tmp_path: Path, two_pairs: tuple[NetnsPair, NetnsPair], form: str, version: str
) -> None:
    """Lean in one netns pair, then the full path in another, same config and ids: results,
    cache files, the pod's address, and what DEL leaves are the same once MACs, veth names
    and netns names are masked."""
    d, caps = _real(form, version, tmp_path)
    seen: dict[str, list[Any]] = {}
    for which, pair in zip(("lean", "full"), two_pairs, strict=True):
        both = Both(tmp_path)
        rt = chain.Runtime("cid-real", pair.pod_path, "eth0", ARGS, caps)
        run = both.lean if which == "lean" else both.full
        with pair.in_host():
            added = run("ADD", d, rt)
            assert added[0] == "ok", added
            after_add = {k: masked(v) for k, v in files(both.cache(which)).items()}
            pod = addresses(pair.pod, "eth0")
            deleted = run("DEL", d, rt)
            again = run("DEL", d, rt)
        allocated = sorted(p.name for p in (tmp_path / "ipam").rglob("198.*"))
        seen[which] = [
            masked(added[1][1]),
            list(added[1][0]),
            after_add,
            pod,
            deleted,
            again,
            files(both.cache(which)),
            allocated,
        ]
    assert seen["lean"] == seen["full"]
    assert seen["lean"][3] == ["198.18.10.10/24"]
    assert seen["lean"][6] == {} and seen["lean"][7] == []


def test_a_failing_real_ipam_answers_as_the_full_path(
    tmp_path: Path, two_pairs: tuple[NetnsPair, NetnsPair]
) -> None:
    ipam = {"type": "host-local", "subnet": "10.0.0.0/33", "dataDir": str(tmp_path / "ipam")}
    d = delegate(
        {"cniVersion": "1.0.0", "name": "brnet", "type": "bridge", "bridge": "b0", "ipam": ipam}
    )
    seen = []
    for which, pair in zip(("lean", "full"), two_pairs, strict=True):
        both = Both(tmp_path)
        run = both.lean if which == "lean" else both.full
        with pair.in_host():
            seen.append(run("ADD", d, chain.Runtime("cid-x", pair.pod_path, "eth0", ARGS)))
    assert seen[0] == seen[1]
    assert seen[0][0] == "error"


# ================================================================ imports

_PROBE = r"""
import sys
sys.path.insert(0, {src!r})
from pymultus.plugin.lean import chain, js
from pymultus.plugin.lean.model import Delegate
raw = {raw!r}
d = Delegate(raw, js.loads_object(raw), "net", is_list=True)
chain.check(d, [{bin!r}])
rt = chain.Runtime("cid-1", "/var/run/netns/x", "eth0", [("K8S_POD_NAME", "p")], {{}})
result, data = chain.add(d, rt, bin_path=[{bin!r}], cache_dir={cache!r}, timeout=5)
assert result["ips"][0]["address"] == "10.0.0.2/24", data
chain.delete(d, rt, bin_path=[{bin!r}], cache_dir={cache!r}, timeout=5)
bad = {{"subprocess", "typing", "re", "logging", "json", "msgspec", "enum", "signal",
        "dataclasses", "collections", "contextlib", "functools", "base64", "ipaddress"}}
loaded = sorted(m for m in sys.modules if m in bad or m.startswith("pymultus.cni")
                or m.startswith("pymultus.core") or m.startswith("msgspec"))
print(",".join(loaded))
"""


def test_lean_add_and_del_import_none_of_the_heavy_modules(tmp_path: Path) -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
        "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
    }
    (tmp_path / "result.json").write_text(json.dumps(result))
    script(
        tmp_path / "bin",
        "fixed",
        f'#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] && cat {tmp_path}/result.json\n'
        "exit 0\n",
    )
    raw = json.dumps({"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "fixed"}]})
    src = str(Path(chain.__file__).resolve().parents[3])
    code = _PROBE.format(
        src=src, raw=raw.encode(), bin=str(tmp_path / "bin"), cache=str(tmp_path / "cache")
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    assert not (tmp_path / "cache" / "results" / "net-cid-1-eth0").exists()


_VERB_PROBE = r"""
import sys
started = set(sys.modules)
sys.path.insert(0, {src!r})
from pymultus.plugin.lean import request
environ = {{"CNI_COMMAND": {verb!r}, "CNI_CONTAINERID": "cid-1", "CNI_IFNAME": "eth0",
            "CNI_NETNS": "/var/run/netns/x", "CNI_PATH": {bin!r},
            "CNI_ARGS": "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"}}
call, conf = request.read_call(environ, {conf!r})
if {verb!r} == "ADD":  # what plugin.lean.main imports for an ADD, then libcni's part of it
    from pymultus.plugin.lean import add, chain, kube, kubeconf, prefetch, resolve, scratch
    d = resolve.master(conf)
    scratch.save(conf.cni_dir, call.container_id, [d])
    rt = chain.runtime_for(call, d, "eth0", is_master=True, conf=conf)
    chain.add(d, rt, bin_path=request.search_path(call, conf), cache_dir=conf.cni_dir, timeout=5)
else:  # a whole lean DEL
    from pymultus.plugin.lean import delete
    delete.cmd_del(call, conf)
print(" ".join(sorted(set(sys.modules) - started)))
"""
ADD_ONLY = {"kube", "kubeconf", "http", "prefetch", "add", "resolve", "netns", "status", "output"}


def test_a_del_imports_no_add_module_and_an_add_not_the_sweep(tmp_path: Path) -> None:
    """The split's import contract: a lean DEL (served from the delegate cache) loads nothing
    of the API client, the network-status or the answer's printing, nor ``_socket``/``_ssl``
    (what the interpreter loaded before the call does not count); an ADD does not load DEL's
    leftover sweep."""
    result = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": 0}]}
    (tmp_path / "result.json").write_text(json.dumps(result))
    script(
        tmp_path / "bin",
        "fixed",
        f'#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] && cat {tmp_path}/result.json\n'
        "exit 0\n",
    )
    net = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "fixed"}]}
    multus = {"cniVersion": "1.0.0", "name": "multus", "type": "multus", "delegates": [net]}
    multus.update(kubeconfig="/nonexistent", cniDir=str(tmp_path / "cni"), binDir=str(tmp_path))
    src = str(Path(chain.__file__).resolve().parents[3])
    loaded = {}
    for verb in ("ADD", "DEL"):
        code = _VERB_PROBE.format(
            src=src, verb=verb, bin=str(tmp_path / "bin"), conf=json.dumps(multus).encode()
        )
        proc = subprocess.run(
            [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        loaded[verb] = set(proc.stdout.split())
    lean = "pymultus.plugin.lean."
    assert f"{lean}sweep" not in loaded["ADD"]
    assert {f"{lean}{m}" for m in ADD_ONLY} <= loaded["ADD"]
    assert f"{lean}sweep" in loaded["DEL"]
    assert loaded["DEL"] & {f"{lean}{m}" for m in ADD_ONLY} == set()
    assert loaded["DEL"] & {"_socket", "_ssl", "_thread", "socket", "ssl", "select"} == {"select"}
    assert not any((tmp_path / "cni").rglob("*-cid-1-*")), "the DEL left libcni's cache behind"
    assert not (tmp_path / "cni" / "cid-1").exists(), "the DEL left the delegate cache behind"
