"""The Multus network config: every §3.1 key, Go's defaults, spellings and JSON rules."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from pymultus.cni.errors import DecodeError, InvalidConfigError
from pymultus.config.logging import LogLevel, LogOptions, parse_level
from pymultus.config.multus import (
    Bandwidth,
    MultusConf,
    PortMapping,
    parse_multus_conf,
)

GOLDEN = Path("/work/shared/reference/golden")
THIN_CONFIGS = sorted(
    p for p in GOLDEN.glob("0[1-6]*/config.json") if b'"type":"multus"' in p.read_bytes()
)


def conf(**keys: Any) -> MultusConf:
    base: dict[str, Any] = {"name": "multus-cni-network", "clusterNetwork": "cluster"}
    base.update(keys)
    return parse_multus_conf(json.dumps({k: v for k, v in base.items() if v is not ...}).encode())


def test_golden_thin_configs_found() -> None:
    assert len(THIN_CONFIGS) >= 6


@pytest.mark.parametrize("path", THIN_CONFIGS, ids=lambda p: p.parent.name)
def test_golden_thin_configs(path: Path) -> None:
    data = path.read_bytes()
    parsed = parse_multus_conf(data)
    assert parsed.raw == data
    assert parsed.name == "multus-cni-network"
    assert parsed.type == "multus"
    assert (parsed.cni_dir, parsed.conf_dir, parsed.bin_dir) == (
        "/var/lib/cni/multus",
        "/etc/cni/multus/net.d",
        "/usr/lib/cni",
    )
    if parsed.cluster_network:
        assert parsed.cluster_network == "/etc/cni/net.d/10-golden.conflist"
        assert parsed.kubeconfig == "/etc/cni/net.d/multus.d/multus.kubeconfig"
    else:
        assert len(parsed.delegates) == 2


def test_defaults() -> None:
    parsed = conf()
    assert parsed.conf_dir == "/etc/cni/multus/net.d"
    assert parsed.cni_dir == "/var/lib/cni/multus"
    assert parsed.bin_dir == "/opt/cni/bin"
    assert parsed.system_namespaces == ("kube-system",)
    assert parsed.multus_namespace == "kube-system"
    assert parsed.global_namespaces() == ("default",)
    assert parsed.log.to_stderr is True
    assert parsed.log.level is None
    assert parsed.log.options == LogOptions(max_size=100, max_age=5, max_backups=5, compress=True)
    assert parsed.runtime_config is None
    assert parsed.prev_result is None
    assert parsed.delegates == ()
    assert parsed.default_networks == ()
    assert not parsed.namespace_isolation
    assert not parsed.retry_delete_on_error
    assert parsed.readiness_indicator_file == ""
    assert parsed.auxiliary_cni_chain_name == ""


def test_every_key_is_read() -> None:
    parsed = conf(
        cniVersion="1.0.0",
        type="multus-shim",
        capabilities={"portMappings": True, "bandwidth": False},
        confDir="/c",
        cniDir="/d",
        binDir="/b",
        defaultNetworks=["a", "ns/b"],
        kubeconfig="/k",
        logFile="/var/log/multus.log",
        logLevel="Verbose",
        logToStderr=False,
        logOptions={"maxAge": 1, "maxSize": 2, "maxBackups": 3, "compress": False},
        readinessindicatorfile="/run/ready",
        namespaceIsolation=True,
        globalNamespaces="default, shared",
        auxiliaryCNIChainName="chain",
        systemNamespaces=["kube-system", "infra"],
        multusNamespace="multus",
        retryDeleteOnError=True,
    )
    assert parsed.cni_version == "1.0.0"
    assert parsed.type == "multus-shim"
    assert parsed.capabilities == {"portMappings": True, "bandwidth": False}
    assert (parsed.conf_dir, parsed.cni_dir, parsed.bin_dir) == ("/c", "/d", "/b")
    assert parsed.default_networks == ("a", "ns/b")
    assert parsed.kubeconfig == "/k"
    assert parsed.log.file == "/var/log/multus.log"
    assert parsed.log.level is LogLevel.VERBOSE
    assert parsed.log.to_stderr is False
    assert parsed.log.options == LogOptions(max_age=1, max_size=2, max_backups=3, compress=False)
    assert parsed.readiness_indicator_file == "/run/ready"
    assert parsed.namespace_isolation
    assert parsed.global_namespaces() == ("default", "shared")
    assert parsed.auxiliary_cni_chain_name == "chain"
    assert parsed.system_namespaces == ("kube-system", "infra")
    assert parsed.multus_namespace == "multus"
    assert parsed.retry_delete_on_error


# ---------------------------------------------------------------- Go's JSON rules


def test_keys_match_ignoring_case_like_go() -> None:
    parsed = conf(readinessIndicatorFile="/run/ready", LOGLEVEL="debug", ConfDir="/c")
    assert parsed.readiness_indicator_file == "/run/ready"
    assert parsed.log.level is LogLevel.DEBUG
    assert parsed.conf_dir == "/c"


def test_unknown_keys_are_ignored() -> None:
    parsed = conf(cniConf="/host/etc/cni/multus/net.d", defaultnetworkwaitseconds=3, x={"y": 1})
    assert parsed.conf_dir == "/etc/cni/multus/net.d"


def test_null_keeps_scalars_but_empties_lists() -> None:
    parsed = conf(logToStderr=None, systemNamespaces=None, confDir=None)
    assert parsed.log.to_stderr is True
    assert parsed.system_namespaces == ()
    assert parsed.conf_dir == "/etc/cni/multus/net.d"


@pytest.mark.parametrize("key", ["confDir", "cniDir", "binDir", "multusNamespace"])
def test_empty_directory_or_namespace_means_default(key: str) -> None:
    assert getattr(conf(**{key: ""}), _attr(key)) == getattr(conf(), _attr(key))


def _attr(key: str) -> str:
    return {"confDir": "conf_dir", "cniDir": "cni_dir", "binDir": "bin_dir"}.get(
        key, "multus_namespace"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ("default",)),
        ("ns-a", ("ns-a",)),
        (" default , ns-a,ns-b ", ("default", "ns-a", "ns-b")),
        ("a,,b", ("a", "", "b")),
    ],
)
def test_global_namespaces_replace_the_default(value: str, expected: tuple[str, ...]) -> None:
    assert conf(globalNamespaces=value).global_namespaces() == expected


# ---------------------------------------------------------------- errors


def test_undecodable_json_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as err:
        parse_multus_conf(b'{"name": "x", ')
    assert err.value.code == 6


@pytest.mark.parametrize("data", [b"[]", b'"multus"', b"null"])
def test_non_object_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_multus_conf(data)


@pytest.mark.parametrize("name", [..., "", "-multus", "multus net", "a/b", "multus\n"])
def test_missing_or_invalid_name(name: Any) -> None:
    with pytest.raises(InvalidConfigError) as err:
        conf(name=name)
    assert err.value.code == 7
    assert err.value.field == "name"


@pytest.mark.parametrize("delegates", [..., [], None])
def test_neither_delegates_nor_cluster_network(delegates: Any) -> None:
    with pytest.raises(InvalidConfigError) as err:
        conf(clusterNetwork=..., delegates=delegates)
    assert err.value.code == 7
    assert "delegates" in err.value.msg
    assert "clusterNetwork" in err.value.msg


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("logLevel", 5, "logLevel"),
        ("logFile", ["/x"], "logFile"),
        ("logToStderr", "false", "logToStderr"),
        ("logOptions", [], "logOptions"),
        ("logOptions", {"maxAge": 1.5}, "logOptions.maxAge"),
        ("logOptions", {"compress": 1}, "logOptions.compress"),
        ("cniVersion", 1.0, "cniVersion"),
        ("clusterNetwork", {"name": "x"}, "clusterNetwork"),
        ("namespaceIsolation", "true", "namespaceIsolation"),
        ("retryDeleteOnError", 1, "retryDeleteOnError"),
        ("systemNamespaces", "kube-system", "systemNamespaces"),
        ("defaultNetworks", ["a", 1], "defaultNetworks[1]"),
        ("capabilities", {"portMappings": "yes"}, "capabilities.portMappings"),
        ("delegates", {"type": "bridge"}, "delegates"),
        ("delegates", [{"type": "bridge"}, None], "delegates[1]"),
        ("prevResult", [], "prevResult"),
        ("ipam", "host-local", "ipam"),
        ("runtimeConfig", [], "runtimeConfig"),
        ("runtimeConfig", {"ips": "198.18.0.5/24"}, "runtimeConfig.ips"),
        ("runtimeConfig", {"mac": 1}, "runtimeConfig.mac"),
        ("runtimeConfig", {"portMappings": [None]}, "runtimeConfig.portMappings[0]"),
        (
            "runtimeConfig",
            {"portMappings": [{"hostPort": "80"}]},
            "runtimeConfig.portMappings[0].hostPort",
        ),
        (
            "runtimeConfig",
            {"bandwidth": {"ingressRate": 1e3}},
            "runtimeConfig.bandwidth.ingressRate",
        ),
    ],
)
def test_wrong_type_names_the_key(key: str, value: Any, field: str) -> None:
    with pytest.raises(InvalidConfigError) as err:
        conf(**{key: value})
    assert err.value.field == field
    assert err.value.code == 7


# ---------------------------------------------------------------- logging


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("debug", LogLevel.DEBUG),
        ("VERBOSE", LogLevel.VERBOSE),
        ("Error", LogLevel.ERROR),
        ("panic", LogLevel.PANIC),
    ],
)
def test_log_levels_case_insensitive(text: str, level: LogLevel) -> None:
    assert conf(logLevel=text).log.level is level
    assert conf(logLevel=text).log.level_note == ""
    assert parse_level(text) is level


def test_invalid_log_level_keeps_the_current_one_with_gos_note() -> None:
    log = conf(logLevel="warning").log
    assert log.level is None
    assert log.level_note == "multus logging: cannot set logging level to warning"


def test_log_levels_are_ordered_like_go() -> None:
    assert LogLevel.PANIC < LogLevel.ERROR < LogLevel.VERBOSE < LogLevel.DEBUG


# ---------------------------------------------------------------- delegates, prevResult


def test_static_delegates_keep_the_bytes_go_stores() -> None:
    case = GOLDEN / "05-thin-static-delegates"
    parsed = parse_multus_conf((case / "config.json").read_bytes())
    cached = json.loads((case / "delegate-cache.json").read_bytes())
    assert parsed.delegates == tuple(base64.b64decode(entry["Bytes"]) for entry in cached)


def test_static_delegates_are_remarshalled_like_a_go_map() -> None:
    data = (
        b'{"name":"m","delegates":[{"type":"tuning","name":"t","mtu":1400.0,"big":1e21,'
        b'"huge":12345678901234567890,"half":0.5,"cniVersion":"1.0.0","html":"<&>",'
        b'"nested":{"b":1,"a":[2.0]}}]}'
    )
    assert parse_multus_conf(data).delegates == (
        b'{"big":1e+21,"cniVersion":"1.0.0","half":0.5,"html":"\\u003c\\u0026\\u003e",'
        b'"huge":12345678901234567000,"mtu":1400,"name":"t","nested":{"a":[2],"b":1},'
        b'"type":"tuning"}',
    )


def test_delegates_are_kept_even_with_a_cluster_network() -> None:
    parsed = conf(delegates=[{"type": "bridge", "name": "b"}])
    assert parsed.cluster_network == "cluster"
    assert parsed.delegates == (b'{"name":"b","type":"bridge"}',)


def test_prev_result_is_kept_as_its_exact_bytes() -> None:
    data = (
        b'{"name":"m","clusterNetwork":"c","prevResult": {"cniVersion": "1.0.0",'
        b' "ips": [ {"address": "198.18.0.5/24"} ]}}'
    )
    assert parse_multus_conf(data).prev_result == (
        b'{"cniVersion": "1.0.0", "ips": [ {"address": "198.18.0.5/24"} ]}'
    )


# ---------------------------------------------------------------- runtimeConfig


def test_runtime_config_keys() -> None:
    rc = conf(
        runtimeConfig={
            "portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"HostPort": 8443, "ContainerPort": 443, "Protocol": "tcp", "HostIP": "192.0.2.1"},
            ],
            "bandwidth": {"ingressRate": 1000, "ingressBurst": 10, "egressRate": 2000},
            "ips": ["198.18.0.5/24"],
            "mac": "c2:11:22:33:44:55",
            "infinibandGUID": "24:8a:07:03:00:8d:ae:2e",
            "deviceID": "0000:03:00.1",
            "CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/x",
            "io.kubernetes.cri.pod-annotations": {"a": "b"},
        }
    ).runtime_config
    assert rc is not None
    assert rc.port_mappings == (
        PortMapping(host_port=8080, container_port=80, protocol="tcp"),
        PortMapping(host_port=8443, container_port=443, protocol="tcp", host_ip="192.0.2.1"),
    )
    assert rc.bandwidth == Bandwidth(ingress_rate=1000, ingress_burst=10, egress_rate=2000)
    assert rc.ips == ("198.18.0.5/24",)
    assert rc.mac == "c2:11:22:33:44:55"
    assert rc.infiniband_guid == "24:8a:07:03:00:8d:ae:2e"
    assert rc.device_id == "0000:03:00.1"
    assert rc.cni_device_info_file == "/var/run/k8s.cni.cncf.io/devinfo/cni/x"
    assert rc.raw["io.kubernetes.cri.pod-annotations"] == {"a": "b"}


def test_runtime_config_wire_shapes_are_gos() -> None:
    assert PortMapping(host_port=1, container_port=2).to_wire() == {
        "hostPort": 1,
        "containerPort": 2,
    }
    assert PortMapping(host_port=1, container_port=2, protocol="udp", host_ip="::1").to_wire() == {
        "hostPort": 1,
        "containerPort": 2,
        "protocol": "udp",
        "hostIP": "::1",
    }
    assert list(Bandwidth(egress_rate=5).to_wire().items()) == [
        ("ingressRate", 0),
        ("ingressBurst", 0),
        ("egressRate", 5),
        ("egressBurst", 0),
    ]


def test_empty_runtime_config_is_not_none() -> None:
    rc = conf(runtimeConfig={}).runtime_config
    assert rc is not None
    assert rc.port_mappings == ()
    assert rc.bandwidth is None
