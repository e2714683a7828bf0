"""The daemon's request and response bodies, against the bytes Go's shim really sent."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.golden import golden_dir

from pymultus.protocol import wire

_ROOT = Path(__file__).resolve().parents[3]


def _golden_dir() -> Path:
    return golden_dir()


def _golden_requests() -> list[Any]:
    root = _golden_dir()
    found = sorted(root.glob("07-*/requests/*-cni.http"))
    return [pytest.param(p, id=str(p.relative_to(root))) for p in found]


def _body(http_file: Path) -> bytes:
    return http_file.read_bytes().partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("http_file", _golden_requests())
def test_go_shim_bodies_decode(http_file: Path) -> None:
    raw = json.loads(_body(http_file))
    request = wire.decode_cni_request(_body(http_file))
    assert request.env == raw["env"]
    assert request.env["CNI_COMMAND"] in ("ADD", "CHECK", "DEL", "STATUS", "GC")
    assert request.config == base64.b64decode(raw["config"])
    assert json.loads(request.config)["name"] == "multus-cni-network"


def test_golden_add_config_is_the_shim_stdin() -> None:
    root = _golden_dir()
    case = root / "07-thick-daemon-responses"
    request = wire.decode_cni_request(_body(case / "requests" / "02-add-cni.http"))
    assert request.config == (case / "config.json").read_bytes()


def test_round_trip_as_the_go_shim_writes_it() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "K8S_POD_NAME=a=b"}
    body = wire.encode_cni_request(env, b'{"name":"x"}')
    assert json.loads(body) == {"env": env, "config": base64.b64encode(b'{"name":"x"}').decode()}
    assert wire.decode_cni_request(body) == wire.CniRequest(env=env, config=b'{"name":"x"}')


def test_unknown_keys_are_ignored_like_go() -> None:
    body = b'{"env":{"CNI_COMMAND":"DEL"},"config":"e30=","somethingNew":[1,2]}'
    assert wire.decode_cni_request(body).env == {"CNI_COMMAND": "DEL"}


def test_delegate_request_with_interface_attributes() -> None:
    attrs = wire.InterfaceAttributes(
        ips=["192.0.2.7/24"], mac="02:00:00:00:00:07", cni_args={"k": "v"}
    )
    body = wire.encode_delegate_request({"CNI_COMMAND": "ADD"}, b"{}", attrs)
    assert json.loads(body)["interfaceAttributes"] == {
        "ips": ["192.0.2.7/24"],
        "mac": "02:00:00:00:00:07",
        "cni-args": {"k": "v"},
    }
    assert wire.decode_delegate_request(body).interfaceAttributes == attrs


def test_delegate_request_without_attributes_has_no_key() -> None:
    body = wire.encode_delegate_request({"CNI_COMMAND": "DEL"}, b"{}")
    assert "interfaceAttributes" not in json.loads(body)
    assert wire.decode_delegate_request(body).interfaceAttributes is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"   ", "body"),
        (b"{not json", "body"),
        (b"null", "body"),
        (b"[]", "body"),
        (b'{"env": "CNI_COMMAND=ADD"}', "env"),
        (b'{"env": {"CNI_COMMAND": 1}}', "env"),
        (b'{"env": {}, "config": 5}', "config"),
        (b'{"env": {}, "config": "not base64!"}', "config"),
        (b'{"env": {}, "interfaceAttributes": {"ips": "192.0.2.1"}}', "interfaceAttributes.ips"),
        (b'{"env": {}, "interfaceAttributes": {"mac": 7}}', "interfaceAttributes.mac"),
        (b'{"env": {}, "interfaceAttributes": {"cni-args": []}}', "interfaceAttributes.cni-args"),
    ],
)
def test_bad_bodies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.decode_delegate_request(body)
    assert caught.value.field == field
    assert caught.value.msg.startswith("invalid request body")


def test_add_response_keeps_the_result_bytes() -> None:
    result = b'{"cniVersion":"1.1.0","ips":[{"address":"192.0.2.2/24"}]}'
    body = wire.encode_add_response(result)
    assert body == b'{"Result":' + result + b"}"
    assert json.loads(body) == {"Result": json.loads(result)}
