"""libcni semantics against Debian's real CNI plugins, in a fresh host/pod netns pair per test.

Every ADD/DEL/CHECK runs with the test's "host" namespace as the current one (so bridges, host
veths and portmap's firewall rules land there, never on the machine), against the "pod"
namespace as CNI_NETNS. The recording plugin stands in where a real plugin cannot be steered:
errors, STATUS and GC, and seeing exactly what a plugin got on stdin.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.netns import NetnsPair, addresses, exec_in, links, routes, unique_name
from tests.support.plugins import install_recorder, read_records

from pymultus.cni import cache, netconf
from pymultus.cni.chain import Attachment, CNIConfig, RuntimeConf
from pymultus.cni.convert import AnyResult, convert, encode_result, result_version
from pymultus.cni.errors import (
    CniError,
    DelegateError,
    IncompatibleVersionError,
    UnknownContainerError,
)
from pymultus.cni.invoke import plugin_versions
from pymultus.cni.version import ALL_VERSIONS, at_least

CNI_BIN = "/usr/lib/cni"
ARGS = (("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "ns"), ("K8S_POD_NAME", "web-0"))


@functools.cache
def _supported(plugin: str) -> frozenset[str]:
    try:
        return frozenset(plugin_versions(plugin, [CNI_BIN], timeout=10))
    except CniError:
        return frozenset()  # the conftest fails every test with what is missing


def versions_for(*plugins: str, minimum: str = "0.1.0") -> list[str]:
    """Every spec version all ``plugins`` support (asked with VERSION), from ``minimum``."""
    found = [
        v for v in ALL_VERSIONS if at_least(v, minimum) and all(v in _supported(p) for p in plugins)
    ]
    return found or ["<plugins missing>"]


CHAIN_VERSIONS = versions_for("bridge", "host-local", "tuning", "portmap", minimum="0.3.0")


@dataclass
class Harness:
    """One test's namespaces, directories and CNIConfig; verbs run in the host netns."""

    pair: NetnsPair
    tmp: Path
    cni: CNIConfig

    @property
    def data_dir(self) -> str:
        return str(self.tmp / "ipam")

    @property
    def cache_dir(self) -> str:
        return self.cni.cache_dir

    def rt(self, ifname: str = "eth0", **kw: Any) -> RuntimeConf:
        fields: dict[str, Any] = {"container_id": "cid-" + unique_name(""), "args": ARGS}
        fields.update(kw)
        return RuntimeConf(netns=self.pair.pod_path, ifname=ifname, **fields)

    def add(self, net: netconf.NetConfList, rt: RuntimeConf) -> AnyResult:
        with self.pair.in_host():
            return self.cni.add_network_list(net, rt)

    def delete(self, net: netconf.NetConfList, rt: RuntimeConf) -> None:
        with self.pair.in_host():
            self.cni.del_network_list(net, rt)

    def check(self, net: netconf.NetConfList, rt: RuntimeConf) -> None:
        with self.pair.in_host():
            self.cni.check_network_list(net, rt)

    def host_local(self, subnet: str, **extra: Any) -> dict[str, Any]:
        return {"type": "host-local", "subnet": subnet, "dataDir": self.data_dir, **extra}

    def allocations(self, network: str) -> list[str]:
        """Addresses host-local holds for ``network`` (its files named after the address)."""
        directory = Path(self.data_dir) / network
        if not directory.exists():
            return []
        return sorted(p.name for p in directory.iterdir() if p.name[0].isdigit())

    def cached(self, network: str, rt: RuntimeConf) -> cache.CacheEntry | None:
        return cache.read(self.cache_dir, network, rt.container_id, rt.ifname)


@pytest.fixture
def h(netns_pair: NetnsPair, tmp_path: Path) -> Harness:
    cni = CNIConfig([CNI_BIN, str(tmp_path / "bin")], cache_dir=str(tmp_path / "cache"))
    return Harness(netns_pair, tmp_path, cni)


def as_list(conf: dict[str, Any]) -> netconf.NetConfList:
    return netconf.load_any(json.dumps(conf).encode())


def chain(version: str, name: str, *plugins: dict[str, Any], **top: Any) -> netconf.NetConfList:
    return as_list({"cniVersion": version, "name": name, **top, "plugins": list(plugins)})


def host_nat_rules(pair: NetnsPair) -> str:
    proc = exec_in(pair.host, "iptables", "-t", "nat", "-S")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def machine_ruleset() -> str:
    """The machine's own nftables ruleset, read-only (listing creates nothing)."""
    proc = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=False)
    return proc.stdout


# ---------------------------------------------------------------- real plugins


@pytest.mark.parametrize("form", ["conflist", "conf"])
@pytest.mark.parametrize("version", versions_for("bridge", "host-local"))
def test_bridge_host_local_add_check_del(h: Harness, version: str, form: str) -> None:
    bridge = {
        "type": "bridge",
        "bridge": "cnibr0",
        "isGateway": True,
        "ipMasq": False,
        "ipam": h.host_local("198.18.10.0/24"),
    }
    top = {"cniVersion": version, "name": "brnet"}
    net = as_list({**top, **bridge}) if form == "conf" else as_list({**top, "plugins": [bridge]})
    rt = h.rt()

    result = h.add(net, rt)

    assert result_version(result) == version
    assert addresses(h.pair.pod, "eth0") == ["198.18.10.2/24"]
    assert addresses(h.pair.host, "cnibr0") == ["198.18.10.1/24"]
    assert h.allocations("brnet") == ["198.18.10.2"]
    entry = h.cached("brnet", rt)
    assert entry is not None
    assert (entry.container_id, entry.ifname, entry.netns) == (rt.container_id, "eth0", rt.netns)
    assert entry.cni_args == ARGS
    assert entry.config == net.raw
    assert encode_result(h.cni.get_cached_result(net, rt) or result) == encode_result(result)

    if at_least(version, "0.4.0"):
        h.check(net, rt)
    else:
        with pytest.raises(IncompatibleVersionError):
            h.check(net, rt)

    h.delete(net, rt)

    assert "eth0" not in links(h.pair.pod)
    assert h.allocations("brnet") == []
    assert h.cached("brnet", rt) is None
    h.delete(net, rt)  # a second DEL finds nothing to do and succeeds


def test_single_conf_caches_its_own_bytes_like_go_multus(h: Harness) -> None:
    raw = json.dumps(
        {"cniVersion": "1.0.0", "name": "br-a", "type": "bridge", "bridge": "cnibr1",
         "ipam": h.host_local("198.18.14.0/24")}
    ).encode()  # fmt: skip
    conf = netconf.conf_from_bytes(raw)
    rt = h.rt("net1")
    with h.pair.in_host():
        h.cni.add_network(conf, rt)
    entry = h.cached("br-a", rt)
    assert entry is not None
    assert entry.config == raw  # AddNetwork caches the config as given, not a synthesised list
    with h.pair.in_host():
        h.cni.check_network(conf, rt)
        h.cni.del_network(conf, rt)
    assert h.cached("br-a", rt) is None
    assert h.allocations("br-a") == []


@pytest.mark.parametrize("version", versions_for("macvlan", "host-local"))
def test_macvlan_on_a_host_veth(h: Harness, version: str) -> None:
    master = unique_name("mvm")
    h.pair.add_veth(master, unique_name("mvp"))
    net = chain(
        version,
        "mvnet",
        {"type": "macvlan", "master": master, "mode": "bridge",
         "ipam": h.host_local("198.18.11.0/24")},
    )  # fmt: skip
    rt = h.rt("net1")

    h.add(net, rt)

    link = links(h.pair.pod)["net1"]
    assert link["linkinfo"]["info_kind"] == "macvlan"
    assert addresses(h.pair.pod, "net1") == ["198.18.11.2/24"]
    assert h.cached("mvnet", rt) is not None

    h.delete(net, rt)

    assert "net1" not in links(h.pair.pod)
    assert master in links(h.pair.host)
    assert h.allocations("mvnet") == []
    assert h.cached("mvnet", rt) is None


@pytest.mark.parametrize("version", versions_for("ptp", "host-local"))
def test_ptp_with_a_default_route(h: Harness, version: str) -> None:
    ipam = h.host_local("198.18.12.0/24", routes=[{"dst": "0.0.0.0/0"}])
    net = chain(version, "ptpnet", {"type": "ptp", "ipMasq": False, "ipam": ipam})
    rt = h.rt()

    h.add(net, rt)

    assert addresses(h.pair.pod, "eth0") == ["198.18.12.2/24"]
    default = routes(h.pair.pod, "default")
    assert [(r["gateway"], r["dev"]) for r in default] == [("198.18.12.1", "eth0")]
    host_veths = [n for n, link in links(h.pair.host).items() if n.startswith("veth")]
    assert len(host_veths) == 1
    assert addresses(h.pair.host, host_veths[0]) == ["198.18.12.1/32"]

    h.delete(net, rt)

    assert "eth0" not in links(h.pair.pod)
    assert not [n for n in links(h.pair.host) if n.startswith("veth")]
    assert h.allocations("ptpnet") == []


@pytest.mark.parametrize("version", versions_for("bridge", "static"))
def test_static_ipam_addresses_and_routes(h: Harness, version: str) -> None:
    ipam = {
        "type": "static",
        "addresses": [{"address": "198.18.13.7/24", "gateway": "198.18.13.1"}],
        "routes": [{"dst": "192.0.2.0/24", "gw": "198.18.13.1"}],
    }
    net = chain(version, "stnet", {"type": "bridge", "bridge": "cnibr2", "ipam": ipam})
    rt = h.rt("net1")

    h.add(net, rt)

    assert addresses(h.pair.pod, "net1") == ["198.18.13.7/24"]
    via = routes(h.pair.pod, "192.0.2.0/24")
    assert [(r["gateway"], r["dev"]) for r in via] == [("198.18.13.1", "net1")]

    h.delete(net, rt)

    assert "net1" not in links(h.pair.pod)
    assert h.cached("stnet", rt) is None


def test_static_ips_arrive_through_a_declared_capability(h: Harness) -> None:
    conf = {
        "type": "bridge",
        "bridge": "cnibr3",
        "capabilities": {"ips": True, "portMappings": False},
        "ipam": {"type": "static"},
    }
    net = chain("1.0.0", "capnet", conf)
    caps = {"ips": ["198.18.15.9/24"], "portMappings": [{"hostPort": 1, "containerPort": 2}]}
    rt = h.rt("net1", capability_args=caps)

    h.add(net, rt)

    assert addresses(h.pair.pod, "net1") == ["198.18.15.9/24"]
    entry = h.cached("capnet", rt)
    assert entry is not None
    assert entry.capability_args == caps  # the runtime's args are cached whole, as libcni does
    h.delete(net, rt)
    assert "net1" not in links(h.pair.pod)


@pytest.mark.parametrize("key_style", ["spec", "go-fields"])
@pytest.mark.parametrize("version", CHAIN_VERSIONS)
def test_chain_with_tuning_and_portmap(h: Harness, version: str, key_style: str) -> None:
    """Chained results, an MTU set by tuning, and port mappings that land only in the host
    netns. containerd sends Go field names (``HostPort``); they must reach portmap as given."""
    mapping = {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
    if key_style == "go-fields":
        mapping = {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}
    net = chain(
        version,
        "chainnet",
        {"type": "bridge", "bridge": "cnibr4", "isGateway": True, "ipMasq": False,
         "ipam": h.host_local("198.18.16.0/24")},
        {"type": "tuning", "mtu": 1400},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    )  # fmt: skip
    rt = h.rt(capability_args={"portMappings": [mapping]})

    result = h.add(net, rt)

    assert result_version(result) == version
    assert links(h.pair.pod)["eth0"]["mtu"] == 1400
    assert "--to-destination 198.18.16.2:80" in host_nat_rules(h.pair)
    marker = f'id: \\"{rt.container_id}\\"'
    assert marker in host_nat_rules(h.pair)
    assert rt.container_id not in machine_ruleset()  # the machine's own rules are untouched

    h.delete(net, rt)

    assert marker not in host_nat_rules(h.pair)
    assert "eth0" not in links(h.pair.pod)
    assert h.allocations("chainnet") == []
    assert h.cached("chainnet", rt) is None


@pytest.mark.parametrize("version", versions_for("loopback"))
def test_loopback(bare_netns_pair: NetnsPair, tmp_path: Path, version: str) -> None:
    h = Harness(bare_netns_pair, tmp_path, CNIConfig([CNI_BIN], cache_dir=str(tmp_path / "c")))
    net = as_list({"cniVersion": version, "name": "lo", "type": "loopback"})
    rt = h.rt("lo")
    assert "UP" not in links(h.pair.pod)["lo"]["flags"]

    h.add(net, rt)
    assert "UP" in links(h.pair.pod)["lo"]["flags"]
    assert h.cached("lo", rt) is not None

    h.delete(net, rt)
    assert "UP" not in links(h.pair.pod)["lo"]["flags"]
    assert h.cached("lo", rt) is None


# ---------------------------------------------------------------- failures and rollback


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


def recorder(h: Harness, name: str, records: Path, **behaviour: Any) -> dict[str, Any]:
    """Install the recorder as ``name``; its behaviour lives in a sidecar file, so a test can
    change it between calls with ``set_behaviour``."""
    set_behaviour(h, name, records, **behaviour)
    return {"type": name}


def set_behaviour(h: Harness, name: str, records: Path, **behaviour: Any) -> None:
    install_recorder(
        h.tmp / "bin", name, sidecar={"recordFile": str(records), "behaviour": behaviour}
    )


def bridge_conf(h: Harness, subnet: str = "198.18.17.0/24") -> dict[str, Any]:
    return {"type": "bridge", "bridge": "cnibr5", "ipam": h.host_local(subnet)}


@pytest.mark.parametrize("version", CHAIN_VERSIONS)
def test_second_plugin_failing_undoes_the_first(h: Harness, records: Path, version: str) -> None:
    fail = recorder(h, "rec-fail", records, ADD={"action": "error", "code": 42, "msg": "boom"})
    net = chain(version, "failnet", bridge_conf(h), fail)
    rt = h.rt()

    with pytest.raises(DelegateError) as info:
        h.add(net, rt)

    assert info.value.error_code == 42
    assert info.value.msg == 'plugin type="rec-fail" failed (add): boom'
    assert "eth0" not in links(h.pair.pod)
    assert h.allocations("failnet") == []
    assert h.cached("failnet", rt) is None
    calls = read_records(records)
    assert [c["command"] for c in calls] == ["ADD", "DEL"]  # the failed plugin is undone too
    prev = json.loads(calls[1]["stdin"])["prevResult"]
    assert prev["cniVersion"] == version  # the bridge's result, as the chain had it


def test_del_is_best_effort_and_keeps_the_cache_for_a_retry(h: Harness, records: Path) -> None:
    rec = recorder(h, "rec-del", records, DEL={"action": "error", "code": 5, "msg": "busy"})
    net = chain("1.0.0", "delnet", bridge_conf(h), rec)
    rt = h.rt()
    h.add(net, rt)

    with pytest.raises(DelegateError) as info:
        h.delete(net, rt)

    assert info.value.error_code == 5
    assert info.value.msg == 'plugin type="rec-del" failed (delete): busy'
    assert "eth0" not in links(h.pair.pod)  # the bridge's DEL still ran after the failure
    assert h.allocations("delnet") == []
    assert h.cached("delnet", rt) is not None

    set_behaviour(h, "rec-del", records)
    h.delete(net, rt)
    assert h.cached("delnet", rt) is None
    dels = [c for c in read_records(records) if c["command"] == "DEL"]
    assert all("prevResult" in json.loads(c["stdin"]) for c in dels)


def test_plugin_stdin_env_and_chaining(h: Harness, records: Path) -> None:
    rec = recorder(h, "rec-see", records)
    rec["capabilities"] = {"mac": True, "bandwidth": False, "portMappings": True}
    net = chain("0.4.0", "seenet", bridge_conf(h), rec)
    caps = {"mac": "02:00:00:00:00:09", "bandwidth": {"ingressRate": 1}, "ips": ["198.18.17.5/24"]}
    rt = h.rt(capability_args=caps)

    result = h.add(net, rt)

    (call,) = read_records(records)
    stdin = json.loads(call["stdin"])
    assert (stdin["name"], stdin["cniVersion"], stdin["type"]) == ("seenet", "0.4.0", "rec-see")
    assert stdin["runtimeConfig"] == {"mac": "02:00:00:00:00:09"}
    assert stdin["prevResult"]["ips"][0]["address"] == "198.18.17.2/24"
    assert list(stdin) == sorted(stdin)  # libcni's re-marshalling
    env = call["env"]
    assert env["CNI_COMMAND"] == "ADD"
    assert (env["CNI_CONTAINERID"], env["CNI_IFNAME"]) == (rt.container_id, "eth0")
    assert env["CNI_NETNS"] == h.pair.pod_path
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web-0"
    assert env["CNI_PATH"] == os.pathsep.join(h.cni.path)
    assert encode_result(result) == encode_result(convert(result, "0.4.0"))
    h.delete(net, rt)


@pytest.mark.parametrize(
    ("field", "rt_kw"),
    [
        ("CNI_CONTAINERID", {"container_id": "bad id"}),
        ("CNI_IFNAME", {"ifname": "much-too-long-ifname"}),
        ("CNI_IFNAME", {"ifname": "a/b"}),
    ],
)
def test_add_validates_names_before_running_anything(
    h: Harness, records: Path, field: str, rt_kw: dict[str, str]
) -> None:
    net = chain("1.0.0", "valnet", recorder(h, "rec-val", records))
    with pytest.raises(CniError) as info:
        h.add(
            net,
            RuntimeConf(netns=h.pair.pod_path, **{"container_id": "c", "ifname": "eth0", **rt_kw}),
        )
    assert info.value.field == field
    assert read_records(records) == []


def test_check_needs_a_cache_and_honours_disable_check(h: Harness, records: Path) -> None:
    net = chain("1.0.0", "chknet", recorder(h, "rec-chk", records))
    with pytest.raises(UnknownContainerError):
        h.check(net, h.rt())
    disabled = chain("1.0.0", "chknet", {"type": "rec-chk"}, disableCheck=True)
    h.check(disabled, h.rt())
    assert read_records(records) == []


# ---------------------------------------------------------------- STATUS and GC


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_status_runs_in_order_from_1_1_0(h: Harness, records: Path, version: str) -> None:
    net = chain(version, "stat", recorder(h, "rec-s1", records), recorder(h, "rec-s2", records))
    h.cni.status_network_list(net)
    calls = read_records(records)
    if version == "1.0.0":
        assert calls == []
        return
    assert [(c["command"], json.loads(c["stdin"])["type"]) for c in calls] == [
        ("STATUS", "rec-s1"),
        ("STATUS", "rec-s2"),
    ]
    assert json.loads(calls[0]["stdin"])["name"] == "stat"
    assert calls[0]["env"]["CNI_CONTAINERID"] == ""


def test_status_error_keeps_the_plugins_code(h: Harness, records: Path) -> None:
    first = recorder(h, "rec-s3", records, STATUS={"action": "error", "code": 50, "msg": "down"})
    net = chain("1.1.0", "stat", first, recorder(h, "rec-s4", records))
    with pytest.raises(DelegateError) as info:
        h.cni.status_network_list(net)
    assert (info.value.error_code, info.value.msg) == (50, "down")
    assert len(read_records(records)) == 1  # stops at the first error


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_gc_deletes_stale_attachments_then_gcs_plugins(
    h: Harness, records: Path, version: str
) -> None:
    net = chain(version, "gcnet", recorder(h, "rec-gc", records))
    keep, stale = h.rt(container_id="cid-keep"), h.rt(container_id="cid-stale", args=(("A", "b"),))
    h.add(net, keep)
    h.add(net, stale)
    other = chain(version, "othernet", {"type": "rec-gc"})
    h.add(other, stale)  # another network's attachment is not GC's business

    h.cni.gc_network_list(net, [Attachment("cid-keep", "eth0")])

    calls = read_records(records)[3:]
    assert calls[0]["command"] == "DEL"
    assert calls[0]["env"]["CNI_CONTAINERID"] == "cid-stale"
    assert calls[0]["env"]["CNI_ARGS"] == "A=b"  # from the cache
    assert h.cached("gcnet", stale) is None
    assert h.cached("gcnet", keep) is not None
    assert h.cached("othernet", stale) is not None
    if version == "1.0.0":
        assert len(calls) == 1
        return
    assert calls[1]["command"] == "GC"
    stdin = json.loads(calls[1]["stdin"])
    valid = [{"containerID": "cid-keep", "ifname": "eth0"}]
    assert stdin["cni.dev/valid-attachments"] == valid
    assert stdin["cni.dev/attachments"] == valid


def test_gc_disabled_does_nothing(h: Harness, records: Path) -> None:
    net = chain("1.1.0", "gcoff", recorder(h, "rec-gc2", records), disableGC=True)
    rt = h.rt()
    h.add(net, rt)
    h.cni.gc_network_list(net, [])
    assert [c["command"] for c in read_records(records)] == ["ADD"]
    assert h.cached("gcoff", rt) is not None


def test_unreadable_cache_is_dropped_on_del(h: Harness, records: Path) -> None:
    net = chain("1.0.0", "badcache", recorder(h, "rec-bc", records))
    rt = h.rt()
    h.add(net, rt)
    path = cache.cache_path(h.cache_dir, "badcache", rt.container_id, rt.ifname)
    Path(path).write_bytes(b"{broken")
    h.delete(net, rt)
    (add, delete) = read_records(records)
    assert "prevResult" not in json.loads(delete["stdin"])
    assert not os.path.exists(path)
    assert add["command"] == "ADD"
