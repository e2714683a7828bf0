"""The thick daemon config (§3.3) and the overlay of it on every request (row 57)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pymultus.cni.errors import DecodeError, InvalidConfigError
from pymultus.config.daemon import (
    PerNodeCertificate,
    overlay,
    parse_daemon_conf,
    parse_go_duration,
)
from pymultus.config.logging import LogLevel
from pymultus.config.multus import parse_multus_conf

GOLDEN_07B = Path("/work/shared/reference/golden/07-thick-daemon-responses")


def daemon(**keys: Any) -> Any:
    return parse_daemon_conf(json.dumps(keys).encode())


def test_golden_daemon_config() -> None:
    data = (GOLDEN_07B / "daemon-config.json").read_bytes()
    parsed = parse_daemon_conf(data)
    assert parsed.raw == data
    assert parsed.auto
    assert parsed.socket_dir == "/run/multus"
    assert parsed.daemon_socket_dir == "/run/multus"
    assert parsed.multus_autoconfig_dir == "/etc/cni/net.d"
    assert parsed.cni_config_dir == "/etc/cni/net.d"
    assert parsed.cni_version == "1.0.0"
    assert (parsed.bin_dir, parsed.cni_dir) == ("/usr/lib/cni", "/var/lib/cni/multus")
    assert parsed.log.level is LogLevel.VERBOSE
    assert parsed.log.to_stderr is True
    assert parsed.raw_map["confDir"] == "/etc/cni/multus/net.d"


def test_defaults() -> None:
    parsed = daemon()
    assert parsed.socket_dir == "/run/multus/"
    assert parsed.chroot_dir == ""
    assert parsed.multus_config_file == "auto"
    assert parsed.auto
    assert parsed.cni_config_dir == "/etc/cni/net.d"
    assert parsed.log.to_stderr is False
    assert parsed.log.level is None
    assert parsed.metrics_port is None
    assert not parsed.enable_pprof
    assert parsed.connection_limit is None
    assert parsed.per_node_certificate is None
    assert not parsed.force_cni_version
    assert not parsed.override_network_name
    assert parsed.readiness_indicator_file == ""
    assert parsed.type == "multus-shim"
    assert parsed.capabilities == {}


def test_every_daemon_key_is_read() -> None:
    parsed = daemon(
        chrootDir="/hostroot",
        metricsPort=9091,
        enablePprof=True,
        connectionLimit=5,
        multusConfigFile="/tmp/70-multus.conf",
        multusMasterCNI="10-flannel.conflist",
        forceCNIVersion=True,
        overrideNetworkName=True,
        readinessindicatorfile="/run/flannel/subnet.env",
        capabilities={"portMappings": True},
        namespaceIsolation=True,
        globalNamespaces="default,shared",
        auxiliaryCNIChainName="chain",
        clusterNetwork="/etc/cni/net.d/10-flannel.conflist",
    )
    assert parsed.chroot_dir == "/hostroot"
    assert parsed.metrics_port == 9091
    assert parsed.enable_pprof
    assert parsed.connection_limit == 5
    assert parsed.multus_config_file == "/tmp/70-multus.conf"
    assert not parsed.auto
    assert parsed.multus_master_cni == "10-flannel.conflist"
    assert parsed.force_cni_version
    assert parsed.override_network_name
    assert parsed.readiness_indicator_file == "/run/flannel/subnet.env"
    assert parsed.capabilities == {"portMappings": True}
    assert parsed.namespace_isolation
    assert parsed.global_namespaces == "default,shared"
    assert parsed.auxiliary_cni_chain_name == "chain"
    assert parsed.cluster_network == "/etc/cni/net.d/10-flannel.conflist"


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("connectionLimit", 0, "connectionLimit"),
        ("connectionLimit", -1, "connectionLimit"),
        ("connectionLimit", "5", "connectionLimit"),
        ("connectionLimit", 2.5, "connectionLimit"),
        ("metricsPort", 0, "metricsPort"),
        ("delegateTimeoutSeconds", 0, "delegateTimeoutSeconds"),
        ("delegateTimeoutSeconds", 3601, "delegateTimeoutSeconds"),
        ("metricsPort", 65536, "metricsPort"),
        ("metricsPort", True, "metricsPort"),
        ("socketDir", 1, "socketDir"),
        ("enablePprof", "yes", "enablePprof"),
        ("logLevel", 3, "logLevel"),
        ("perNodeCertificate", "on", "perNodeCertificate"),
        ("perNodeCertificate", {"enabled": "true"}, "perNodeCertificate.enabled"),
        ("perNodeCertificate", {"certDuration": "10"}, "perNodeCertificate.certDuration"),
        ("perNodeCertificate", {"certDuration": "-1h"}, "perNodeCertificate.certDuration"),
        ("perNodeCertificate", {"certDuration": 600}, "perNodeCertificate.certDuration"),
    ],
)
def test_bad_values_name_the_key(key: str, value: Any, field: str) -> None:
    with pytest.raises(InvalidConfigError) as err:
        daemon(**{key: value})
    assert err.value.field == field
    assert err.value.code == 7


def test_delegate_timeout_defaults_to_60_seconds() -> None:
    assert daemon().delegate_timeout_s == 60
    assert daemon(delegateTimeoutSeconds=5).delegate_timeout_s == 5


def test_null_optional_numbers_are_unset() -> None:
    parsed = daemon(connectionLimit=None, metricsPort=None)
    assert parsed.connection_limit is None
    assert parsed.metrics_port is None


def test_not_an_object_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        parse_daemon_conf(b"{")
    with pytest.raises(DecodeError):
        parse_daemon_conf(b"[]")


def test_per_node_certificate() -> None:
    parsed = daemon(
        perNodeCertificate={
            "enabled": True,
            "bootstrapKubeconfig": "/var/lib/kubelet/kubeconfig",
            "certDir": "/tmp/certs",
            "certDuration": "1h",
        }
    )
    assert parsed.per_node_certificate == PerNodeCertificate(
        enabled=True,
        bootstrap_kubeconfig="/var/lib/kubelet/kubeconfig",
        cert_dir="/tmp/certs",
        cert_duration_s=3600.0,
    )
    assert daemon(perNodeCertificate={"enabled": True}).per_node_certificate == (
        PerNodeCertificate(enabled=True, cert_duration_s=600.0)
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("+90s", 90.0),
        ("300ms", 0.3),
        ("2us", 2e-6),
        ("2µs", 2e-6),
        ("1h0m0s", 3600.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text, field="d") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "10", "m", "1d", "1h 30m", "-5m", "0s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(InvalidConfigError):
        parse_go_duration(text, field="d")


# ---------------------------------------------------------------- overlay


def test_overlay_daemon_keys_win_and_output_is_a_go_map() -> None:
    request = b'{"name":"multus-cni-network","type":"multus-shim","logLevel":"panic","mtu":1.0}'
    merged = overlay(request, {"logLevel": "debug", "confDir": "/c"}, auto=False)
    assert merged == (
        b'{"confDir":"/c","logLevel":"debug","mtu":1,"name":"multus-cni-network",'
        b'"type":"multus-shim"}'
    )


@pytest.mark.parametrize("request_has_key", [False, True])
def test_overlay_strips_the_readiness_file_in_auto_mode(request_has_key: bool) -> None:
    request = {"name": "m", "clusterNetwork": "c"}
    if request_has_key:
        request["readinessIndicatorFile"] = "/run/other"
    data = json.dumps(request).encode()
    server = {"readinessindicatorfile": "/run/ready", "cniVersion": "1.0.0"}
    auto = json.loads(overlay(data, server, auto=True))
    assert "readinessindicatorfile" not in auto
    assert "readinessIndicatorFile" not in auto
    assert auto["cniVersion"] == "1.0.0"
    manual = json.loads(overlay(data, server, auto=False))
    assert manual["readinessindicatorfile"] == "/run/ready"


def test_overlay_of_the_golden_thick_request() -> None:
    conf = parse_daemon_conf((GOLDEN_07B / "daemon-config.json").read_bytes())
    merged = overlay((GOLDEN_07B / "config.json").read_bytes(), conf.raw_map, auto=conf.auto)
    parsed = parse_multus_conf(merged)
    assert parsed.type == "multus-shim"
    assert parsed.cluster_network == "/etc/cni/net.d/10-golden.conflist"
    assert parsed.conf_dir == "/etc/cni/multus/net.d"
    assert parsed.log.level is LogLevel.VERBOSE
    keys = list(json.loads(merged))
    assert keys == sorted(keys)


def test_overlay_rejects_a_request_that_is_not_an_object() -> None:
    with pytest.raises(DecodeError):
        overlay(b"[1]", {"a": 1}, auto=False)
