"""Any bytes fed to any parser of outside input give a value or a ``CniError``: never a
traceback (issue: "bad input gets a clear CNI error, never a traceback")."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pymultus.cni import cache, netconf
from pymultus.cni.args import parse_cni_args
from pymultus.cni.convert import parse_result
from pymultus.cni.env import parse_plugin_env
from pymultus.cni.errors import CniError
from pymultus.config.daemon import parse_daemon_conf
from pymultus.config.multus import parse_multus_conf
from pymultus.core import scratch
from pymultus.k8s.selection import parse_networks_annotation
from pymultus.k8s.status import parse_network_status
from pymultus.protocol import wire

# JSON-ish bytes find deeper paths than random bytes: objects with the keys parsers look for.
_KEYS = st.sampled_from(
    [
        "name",
        "type",
        "cniVersion",
        "plugins",
        "delegates",
        "clusterNetwork",
        "ipam",
        "env",
        "config",
        "capabilities",
        "runtimeConfig",
        "Conf",
        "ConfList",
        "Bytes",
        "Name",
        "ips",
        "result",
        "kind",
        "containerId",
        "ifName",
        "interfaces",
        "routes",
        "dns",
        "mac",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_KEYS, kids, max_size=6),
    max_leaves=20,
)
INPUTS = st.one_of(st.binary(max_size=200), _JSON.map(msgspec.json.encode))

PARSERS: dict[str, Callable[[bytes], Any]] = {
    "result": parse_result,
    "conf": netconf.conf_from_bytes,
    "conflist": netconf.conflist_from_bytes,
    "load_any": netconf.load_any,
    "multus conf": parse_multus_conf,
    "daemon conf": parse_daemon_conf,
    "libcni cache": cache.decode,
    "delegate cache": scratch.decode_delegates,
    "annotation": lambda b: parse_networks_annotation(b.decode("utf-8", "replace"), "ns"),
    "network-status": lambda b: parse_network_status(b.decode("utf-8", "replace")),
    "CNI_ARGS": lambda b: parse_cni_args(b.decode("utf-8", "replace")),
    "plugin env": lambda b: parse_plugin_env(
        {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "c",
            "CNI_NETNS": "/x",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/p",
        },
        b,
    ),
}


def _wire(data: bytes) -> Any:
    try:
        return wire.decode_cni_request(data)
    except wire.WireError:  # the protocol layer's own error; the daemon maps it to code 6
        return None


PARSERS["daemon request"] = _wire


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(data=INPUTS)
@example(data=b'{"config":"\xc2\x80"}')  # non-ASCII base64 once escaped the libcni cache reader
@example(data=b'{"kind":"cniCacheV1","config":"\x80"}')
def test_parser_gives_a_value_or_a_cni_error(name: str, data: bytes) -> None:
    with contextlib.suppress(CniError):
        PARSERS[name](data)
