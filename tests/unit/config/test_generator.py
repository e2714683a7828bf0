"""The thick shim config generator (row 62, §3.3): Go's bytes, capabilities, versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pymultus.cni.errors import DecodeError, IncompatibleVersionError, InvalidConfigError
from pymultus.config.daemon import DaemonConf, parse_daemon_conf
from pymultus.config.generator import (
    DEFAULT_NETWORK_NAME,
    enabled_capabilities,
    forced_primary,
    generate_shim_config,
)

GOLDEN_07B = Path("/work/shared/reference/golden/07-thick-daemon-responses")
PRIMARY_PATH = "/etc/cni/net.d/10-primary.conflist"


def daemon(**keys: Any) -> DaemonConf:
    return parse_daemon_conf(json.dumps({"cniVersion": "1.0.0", **keys}).encode())


def primary(**keys: Any) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "primary-net", **keys}).encode()


def generate(conf: DaemonConf, data: bytes, path: str = PRIMARY_PATH) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(generate_shim_config(data, conf, primary_path=path))
    return out


def test_golden_bytes() -> None:
    """Go Multus v4.3 wrote exactly these bytes for the golden daemon config."""
    conf = parse_daemon_conf((GOLDEN_07B / "daemon-config.json").read_bytes())
    out = generate_shim_config(
        (GOLDEN_07B / "cluster-network.conflist").read_bytes(),
        conf,
        primary_path="/etc/cni/net.d/10-golden.conflist",
    )
    assert out == (GOLDEN_07B / "generated-00-multus.conf").read_bytes()


def test_every_key_in_go_struct_order() -> None:
    conf = daemon(
        daemonSocketDir="/run/multus",
        auxiliaryCNIChainName="chain",
        cniDir="/var/lib/cni/multus",
        type="multus-shim",
        globalNamespaces="default,ns-a",
        namespaceIsolation=True,
        logOptions={"compress": False, "maxBackups": 2, "maxSize": 10, "maxAge": 3},
        logToStderr=True,
        logLevel="Debug",
        logFile="/var/log/multus.log",
        capabilities={"ips": True},
        binDir="/opt/cni/bin",
        # daemon-only keys never reach the shim config:
        socketDir="/run/multus",
        confDir="/etc/cni/multus/net.d",
        multusAutoconfigDir="/etc/cni/net.d",
        cniConfigDir="/etc/cni/net.d",
        multusMasterCNI="10-primary.conflist",
        forceCNIVersion=False,
        readinessindicatorfile="/run/ready",
        kubeconfig="/etc/kubeconfig",
    )
    out = generate_shim_config(primary(), conf, primary_path=PRIMARY_PATH)
    assert out == (
        b'{"binDir":"/opt/cni/bin","capabilities":{"ips":true},"cniVersion":"1.0.0",'
        b'"logFile":"/var/log/multus.log","logLevel":"Debug","logToStderr":true,'
        b'"logOptions":{"maxAge":3,"maxSize":10,"maxBackups":2,"compress":false},'
        b'"name":"multus-cni-network","clusterNetwork":"/etc/cni/net.d/10-primary.conflist",'
        b'"namespaceIsolation":true,"globalNamespaces":"default,ns-a","type":"multus-shim",'
        b'"cniDir":"/var/lib/cni/multus","auxiliaryCNIChainName":"chain",'
        b'"daemonSocketDir":"/run/multus"}'
    )


def test_minimal_keeps_only_the_mandatory_keys() -> None:
    out = generate_shim_config(primary(), daemon(), primary_path=PRIMARY_PATH)
    assert out == (
        b'{"cniVersion":"1.0.0","name":"multus-cni-network",'
        b'"clusterNetwork":"/etc/cni/net.d/10-primary.conflist","type":"multus-shim"}'
    )


def test_log_options_only_given_keys_and_empty_object_kept() -> None:
    assert generate(daemon(logOptions={"maxAge": 1}), primary())["logOptions"] == {"maxAge": 1}
    assert generate(daemon(logOptions={}), primary())["logOptions"] == {}
    assert "logOptions" not in generate(daemon(logOptions=None), primary())


def test_go_html_escaping_of_strings() -> None:
    out = generate_shim_config(primary(), daemon(cniDir="/a<b>&c"), primary_path=PRIMARY_PATH)
    assert b'"cniDir":"/a\\u003cb\\u003e\\u0026c"' in out


@pytest.mark.parametrize(
    ("primary_keys", "own", "expected"),
    [
        pytest.param(
            {"type": "bridge", "capabilities": {"portMappings": True, "mac": False}},
            {},
            {"portMappings": True},
            id="single-config",
        ),
        pytest.param(
            {
                "plugins": [
                    {"type": "bridge"},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                    {"type": "bandwidth", "capabilities": {"bandwidth": True}},
                    {"type": "tuning", "capabilities": {"mac": False}},
                ]
            },
            {},
            {"bandwidth": True, "portMappings": True},
            id="conflist-union",
        ),
        pytest.param(
            {
                "capabilities": {"ignored": True},
                "plugins": [{"type": "portmap", "capabilities": {"portMappings": True}}],
            },
            {},
            {"portMappings": True},
            id="conflist-ignores-top-level",
        ),
        pytest.param(
            {"plugins": [{"type": "portmap", "capabilities": {"portMappings": True}}]},
            {"ips": True, "mac": False, "portMappings": False},
            {"ips": True, "mac": False, "portMappings": True},
            id="daemon-map-kept-primary-enables",
        ),
        pytest.param({"type": "bridge"}, {}, None, id="none"),
    ],
)
def test_capabilities(
    primary_keys: dict[str, Any], own: dict[str, bool], expected: dict[str, bool] | None
) -> None:
    out = generate(daemon(capabilities=own), primary(**primary_keys))
    assert out.get("capabilities") == expected


def test_capabilities_written_with_sorted_keys() -> None:
    data = primary(capabilities={"portMappings": True, "bandwidth": True, "ips": True})
    out = generate_shim_config(data, daemon(), primary_path=PRIMARY_PATH)
    assert b'"capabilities":{"bandwidth":true,"ips":true,"portMappings":true}' in out


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (primary(capabilities={"portMappings": "yes"}), "capabilities.portMappings"),
        (primary(plugins=[{"capabilities": {"x": 1}}]), "plugins[0].capabilities.x"),
        (primary(plugins={"type": "bridge"}), "plugins"),
    ],
)
def test_unusable_capabilities_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(InvalidConfigError) as err:
        generate_shim_config(data, daemon(), primary_path=PRIMARY_PATH)
    assert err.value.field == field
    assert err.value.path == PRIMARY_PATH
    assert PRIMARY_PATH in str(err.value)


def test_enabled_capabilities_skips_non_object_plugins() -> None:
    conf = {"plugins": ["bridge", {"capabilities": {"a": True}}]}
    assert enabled_capabilities(conf, PRIMARY_PATH) == ["a"]


def test_override_network_name() -> None:
    assert generate(daemon(), primary())["name"] == DEFAULT_NETWORK_NAME
    assert generate(daemon(overrideNetworkName=True), primary())["name"] == "primary-net"


@pytest.mark.parametrize("name", [None, "", 7])
def test_override_network_name_needs_a_name(name: Any) -> None:
    obj = json.loads(primary())
    if name is None:
        del obj["name"]
    else:
        obj["name"] = name
    with pytest.raises(InvalidConfigError) as err:
        generate(daemon(overrideNetworkName=True), json.dumps(obj).encode())
    assert err.value.field == "name"


# --- version compatibility (Go's CheckVersionCompatibility) --------------------------------


@pytest.mark.parametrize(
    ("multus", "delegate"),
    [
        ("0.4.0", "0.4.0"),
        ("1.0.0", "0.4.0"),
        ("1.1.0", "1.0.0"),
        ("0.3.1", "0.3.1"),  # Multus older than 0.4.0: anything goes
        ("0.3.1", "0.1.0"),
        ("0.3.1", ""),  # ... even a version that is not one
        ("1.0.0-rc1", "1.0.0"),
    ],
)
def test_versions_accepted(multus: str, delegate: str) -> None:
    out = generate(daemon(cniVersion=multus), primary(cniVersion=delegate))
    assert out["cniVersion"] == multus


@pytest.mark.parametrize(
    ("multus", "delegate", "text"),
    [
        ("0.4.0", "0.3.1", "delegate cni version is 0.3.1 while top level cni version is 0.4.0"),
        ("1.0.0", "0.2.0", "delegate cni version is 0.2.0 while top level cni version is 1.0.0"),
        ("1.0.0", "0.4.0-rc1", "delegate cni version is 0.4.0-rc1"),
        ("1.0.0", "", "invalid cniVersion ''"),
        ("1.0.0", "1.0", "invalid cniVersion '1.0'"),
        ("1.0.0", None, "couldn't get cni version of delegate"),
        ("", "1.0.0", "couldn't get top level cni version"),
        ("1.0", "1.0.0", "couldn't get top level cni version"),
    ],
)
def test_versions_refused_as_go_does(multus: str, delegate: str | None, text: str) -> None:
    obj = json.loads(primary())
    if delegate is None:
        del obj["cniVersion"]
    else:
        obj["cniVersion"] = delegate
    with pytest.raises(IncompatibleVersionError) as err:
        generate(daemon(cniVersion=multus), json.dumps(obj).encode())
    assert text in str(err.value)
    assert err.value.field == "cniVersion"
    assert err.value.code == 1


def test_force_cni_version_checks_the_forced_version() -> None:
    old = primary(cniVersion="0.3.1")
    with pytest.raises(IncompatibleVersionError):
        generate(daemon(cniVersion="1.0.0"), old)
    out = generate(daemon(cniVersion="1.0.0", forceCNIVersion=True), old)
    assert out["cniVersion"] == "1.0.0"


def test_forced_primary_is_go_map_marshal() -> None:
    data = b'{"name":"n","cniVersion":"0.3.1","plugins":[{"type":"b","mtu":1500.0}]}'
    assert forced_primary(data, "1.0.0", PRIMARY_PATH) == (
        b'{"cniVersion":"1.0.0","name":"n","plugins":[{"mtu":1500,"type":"b"}]}'
    )


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'"x"'])
def test_primary_that_is_not_an_object(data: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        generate_shim_config(data, daemon(), primary_path=PRIMARY_PATH)
    assert PRIMARY_PATH in str(err.value)
