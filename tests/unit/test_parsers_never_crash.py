"""Any bytes fed to any parser of outside input give a value or a ``CniError``: never a
traceback (issue: "bad input gets a clear CNI error, never a traceback")."""

from __future__ import annotations

import contextlib
import tempfile
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
from pymultus.cni.errors import CniError, decode_plugin_failure
from pymultus.config.daemon import parse_daemon_conf
from pymultus.config.multus import parse_multus_conf
from pymultus.config.validate import validate
from pymultus.core import scratch
from pymultus.k8s.checkpoint import parse_checkpoint
from pymultus.k8s.client import load_client
from pymultus.k8s.devinfo import parse_device_info
from pymultus.k8s.files import parse_documents
from pymultus.k8s.lite_conf import load_endpoint
from pymultus.k8s.podresources import decode_list_response
from pymultus.k8s.selection import parse_default_network_annotation, parse_networks_annotation
from pymultus.k8s.status import parse_network_status
from pymultus.plugin import passthru
from pymultus.protocol import wire
from pymultus.webhook.review import MalformedReview, decode_review

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
    "annotation (surrogates)": lambda b: parse_networks_annotation(
        b.decode("utf-8", "surrogateescape"), "ns"
    ),
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


# ---------------------------------------------------------------- hostile shapes, every parser
# Deep nesting (balanced or not), long strings and huge arrays: each parser answers with a
# value or a CniError, never a RecursionError or a traceback; what is beyond the limits of
# pymultus.cni.limits is refused with code 7 saying "nested too deep" or "too large".

DEEP = {
    f"{kind} {n} deep{' balanced' if closed else ''}": (
        (b"[" * n + b"]" * n)
        if closed and kind == "arrays"
        else (b'{"a":' * n + b"1" + b"}" * n)
        if closed
        else (b"[" * n if kind == "arrays" else b'{"a":' * n)
    )
    for kind in ("arrays", "objects")
    for n in (1_000, 100_000)
    for closed in (False, True)
}
HUGE = {
    "long string": b'"' + b"x" * (5 * 1024 * 1024) + b'"',
    "huge array": b"[" + b"0," * (3 * 1024 * 1024) + b"0]",
}


def _too_far(exc: CniError) -> bool:
    return exc.code in (6, 7) and ("nested too deep" in exc.msg or "too large" in exc.msg)


@pytest.mark.parametrize("shape", sorted(DEEP))
@pytest.mark.parametrize("name", sorted(PARSERS))
def test_deep_nesting_is_refused_by_every_parser(name: str, shape: str) -> None:
    try:
        PARSERS[name](DEEP[shape])
    except CniError as exc:
        assert _too_far(exc) or name in ("CNI_ARGS", "daemon request"), exc
    else:
        assert name in ("CNI_ARGS", "daemon request"), "a nested value was accepted"


@pytest.mark.parametrize("shape", sorted(HUGE))
@pytest.mark.parametrize("name", sorted(PARSERS))
def test_huge_input_gives_a_value_or_a_cni_error(name: str, shape: str) -> None:
    with contextlib.suppress(CniError):
        PARSERS[name](HUGE[shape])


def test_the_daemon_refuses_a_deep_body_naming_it() -> None:
    with pytest.raises(wire.WireError, match="body: nested too deep"):
        wire.decode_cni_request(b'{"env":' + b"[" * 100_000)


# ---------------------------------------------------------------- more parsers of outside input


def _kubeconfig(data: bytes) -> Any:
    with tempfile.NamedTemporaryFile(suffix=".yaml") as f:
        f.write(data)
        f.flush()
        return load_client(f.name)


def _thin_kubeconfig(data: bytes) -> Any:
    with tempfile.TemporaryDirectory() as cache_dir:
        path = f"{cache_dir}/kubeconfig"
        with open(path, "wb") as f:
            f.write(data)
        return load_endpoint(path, cache_dir=cache_dir)


def _passthru(data: bytes) -> Any:
    try:
        return passthru.load_config(data)
    except passthru.PluginError as exc:  # the stdlib-only plugin's own error, code 6
        assert exc.code == 6
        return None


def _delegate_request(data: bytes) -> Any:
    try:
        return wire.decode_delegate_request(data)
    except wire.WireError:
        return None


def _admission_review(data: bytes) -> Any:
    try:
        return decode_review(data)
    except MalformedReview:  # the webhook's own error, answered 400
        return None


MORE_PARSERS: dict[str, Callable[[bytes], Any]] = {
    "admission review": _admission_review,
    "default-network annotation": lambda b: parse_default_network_annotation(
        b.decode("utf-8", "replace"), "kube-system"
    ),
    "standalone YAML file": lambda b: parse_documents(b, "/etc/pymultus/nads/ns/a.yaml"),
    "standalone JSON file": lambda b: parse_documents(b, "/etc/pymultus/nads/ns/a.json"),
    "kubeconfig": _kubeconfig,
    "kubeconfig (thin client)": _thin_kubeconfig,
    "device-info file": parse_device_info,
    "device checkpoint": parse_checkpoint,
    "PodResources reply": decode_list_response,
    "plugin error output": lambda b: decode_plugin_failure("p", b, b"", 1),
    "validate (webhook)": lambda b: validate(b, check_selection=lambda s: None),
    "passthru config": _passthru,
    "delegate request": _delegate_request,
}


@pytest.mark.parametrize("name", sorted(MORE_PARSERS))
@settings(max_examples=60, deadline=None)
@given(data=INPUTS)
def test_more_parsers_give_a_value_or_a_cni_error(name: str, data: bytes) -> None:
    with contextlib.suppress(CniError):
        MORE_PARSERS[name](data)


@pytest.mark.parametrize("shape", sorted({**DEEP, **HUGE}))
@pytest.mark.parametrize("name", sorted(MORE_PARSERS))
def test_more_parsers_survive_hostile_shapes(name: str, shape: str) -> None:
    with contextlib.suppress(CniError):
        MORE_PARSERS[name]({**DEEP, **HUGE}[shape])


YAML_BOMBS = {
    "block nesting": b"a:\n" + b"".join(b"  " * i + b"- x:\n" for i in range(1, 2_000)),
    "flow nesting": b"a: " + b"[" * 100_000,
    "alias bomb": b'a: &a ["l","l","l","l","l","l","l","l","l"]\n'
    + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n".encode()
        for i in range(8)
    ),
}


@pytest.mark.parametrize("shape", sorted(YAML_BOMBS))
@pytest.mark.parametrize(
    "name",
    ["standalone YAML file", "kubeconfig", "kubeconfig (thin client)", "validate (webhook)"],
)
def test_yaml_bombs_are_refused(name: str, shape: str) -> None:
    try:
        outcome = MORE_PARSERS[name](YAML_BOMBS[shape])
    except CniError as exc:
        assert _too_far(exc), exc
    else:  # validate reports problems instead of raising
        assert any("too" in p.problem for p in outcome.problems), outcome


@pytest.mark.parametrize("value", ["a@\ud800", "\udc80", '[{"name":"a","interface":"\\ud800"}]'])
def test_a_lone_surrogate_is_a_cni_error_naming_the_annotation(value: str) -> None:
    with pytest.raises(CniError, match=r"k8s\.v1\.cni\.cncf\.io/networks: is not valid"):
        parse_networks_annotation(value, "ns")
