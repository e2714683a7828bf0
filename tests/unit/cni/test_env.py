"""Plugin-side (skel) environment parsing and libcni's name checks."""

from __future__ import annotations

import pytest

from pymultus.cni.env import (
    CmdArgs,
    parse_plugin_env,
    validate_container_id,
    validate_ifname,
    validate_network_name,
)
from pymultus.cni.errors import (
    CniError,
    DecodeError,
    InvalidConfigError,
    InvalidEnvironmentError,
    UnknownContainerError,
)

CONF = b'{"cniVersion":"1.0.0","name":"net1","type":"bridge"}'
FULL = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "abc123",
    "CNI_NETNS": "/var/run/netns/pod",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "K8S_POD_NAME=web-0",
    "CNI_PATH": "/opt/cni/bin::/usr/lib/cni",
}


def env(command: str, **drop_or_set: str | None) -> dict[str, str]:
    out = dict(FULL, CNI_COMMAND=command)
    for key, val in drop_or_set.items():
        if val is None:
            out.pop(key, None)
        else:
            out[key] = val
    return out


def test_full_add() -> None:
    args = parse_plugin_env(env("ADD"), CONF)
    assert args == CmdArgs(
        command="ADD",
        container_id="abc123",
        netns="/var/run/netns/pod",
        ifname="eth0",
        args="K8S_POD_NAME=web-0",
        path=("/opt/cni/bin", "/usr/lib/cni"),
        stdin=CONF,
    )


# What skel v1.3 requires per verb, in its table's order.
REQUIRED = {
    "ADD": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
    "CHECK": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
    "DEL": ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
    "GC": ["CNI_PATH"],
    "STATUS": ["CNI_PATH"],
    "VERSION": [],
}


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_every_missing_variable_reported_at_once(command: str) -> None:
    bare = {"CNI_COMMAND": command}
    if not REQUIRED[command]:
        assert parse_plugin_env(bare, b"").command == command
        return
    with pytest.raises(InvalidEnvironmentError) as info:
        parse_plugin_env(bare, CONF)
    assert info.value.code == 4
    assert info.value.msg == f"required env variables [{','.join(REQUIRED[command])}] missing"


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_only_required_variables_are_needed(command: str) -> None:
    environ = {"CNI_COMMAND": command} | {name: FULL[name] for name in REQUIRED[command]}
    assert parse_plugin_env(environ, CONF).command == command


def test_empty_variable_counts_as_missing() -> None:
    with pytest.raises(InvalidEnvironmentError, match=r"\[CNI_NETNS\] missing"):
        parse_plugin_env(env("ADD", CNI_NETNS=""), CONF)


def test_missing_command() -> None:
    with pytest.raises(InvalidEnvironmentError) as info:
        parse_plugin_env({}, CONF)
    assert info.value.msg == "required env variables [CNI_COMMAND] missing"
    assert info.value.field == "CNI_COMMAND"


def test_unknown_command() -> None:
    with pytest.raises(InvalidEnvironmentError) as info:
        parse_plugin_env(env("FROB"), CONF)
    assert info.value.code == 4
    assert info.value.msg == "unknown CNI_COMMAND: FROB"


def test_version_ignores_stdin() -> None:
    args = parse_plugin_env({"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"1.1.0"}')
    assert args.stdin == b""


def test_netns_override_kept() -> None:
    assert parse_plugin_env(env("DEL", CNI_NETNS_OVERRIDE="1"), CONF).netns_override == "1"


@pytest.mark.parametrize(
    ("overrides", "error", "field"),
    [
        ({"CNI_CONTAINERID": "-bad"}, InvalidEnvironmentError, "CNI_CONTAINERID"),
        ({"CNI_IFNAME": "a/b"}, InvalidEnvironmentError, "CNI_IFNAME"),
        ({"CNI_IFNAME": "x" * 16}, InvalidEnvironmentError, "CNI_IFNAME"),
    ],
)
def test_attachment_verbs_validate_ids(
    overrides: dict[str, str], error: type[CniError], field: str
) -> None:
    with pytest.raises(error) as info:
        parse_plugin_env(env("DEL", **overrides), CONF)
    assert info.value.field == field


def test_gc_does_not_validate_container_id() -> None:
    assert parse_plugin_env(env("GC", CNI_CONTAINERID="-whatever"), CONF).command == "GC"


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        (b"not json", DecodeError),
        (b"[]", DecodeError),
        (b'{"name": 5}', DecodeError),
        (b'{"cniVersion":"1.0.0"}', InvalidConfigError),
        (b'{"name":"bad name"}', InvalidConfigError),
    ],
)
def test_stdin_needs_a_valid_network_name(stdin: bytes, error: type[CniError]) -> None:
    with pytest.raises(error):
        parse_plugin_env(env("STATUS"), stdin)


@pytest.mark.parametrize("good", ["a", "0", "abc-DEF_1.2", "x" * 200])
def test_valid_names(good: str) -> None:
    assert validate_container_id(good) == good
    assert validate_network_name(good) == good


@pytest.mark.parametrize("bad", ["-a", ".a", "_a", "a b", "a/b", "a:b", "a\n", "é"])
def test_invalid_names(bad: str) -> None:
    with pytest.raises(InvalidEnvironmentError) as cid:
        validate_container_id(bad)
    assert cid.value.field == "CNI_CONTAINERID"
    with pytest.raises(InvalidConfigError) as net:
        validate_network_name(bad, field="networks[0].name")
    assert net.value.field == "networks[0].name"
    assert net.value.details == bad


def test_empty_names() -> None:
    with pytest.raises(UnknownContainerError, match="missing containerID"):
        validate_container_id("")
    with pytest.raises(InvalidConfigError, match="missing network name"):
        validate_network_name("")


@pytest.mark.parametrize("good", ["eth0", "net1", "x" * 15, "a.b", "...", "veth-é"])
def test_valid_ifnames(good: str) -> None:
    assert validate_ifname(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "x" * 16, "é" * 8, "a/b", "a:b", "a b", "a\tb", "a\n", "a\u00a0b"]
)
def test_invalid_ifnames(bad: str) -> None:
    with pytest.raises(InvalidEnvironmentError) as info:
        validate_ifname(bad, field="interface")
    assert info.value.field == "interface"
    assert info.value.code == 4
