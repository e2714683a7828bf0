"""multus-shim, in process: request bytes against Go's (golden 07), result conversion against
golden stdout and against ``pymultus.cni.convert``, Go-compatible JSON both ways, the HTTP
client's framing against a fake daemon, error mapping, and the Python 3.8 / cheap-import rules
of the file itself.
"""

from __future__ import annotations

import ast
import base64
import gzip
import ipaddress
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.fake_daemon import FakeDaemon, Reply, dead_socket, short_socket_dir

from pymultus import __version__
from pymultus.cni import gojson
from pymultus.cni.convert import convert, encode_result, parse_result
from pymultus.cni.errors import CniError
from pymultus.cni.result import DNS, Interface, IPConfig, Result, Route
from pymultus.shim import multus_shim as shim

GOLDEN = Path("/work/shared/reference/golden")
SHIM_A = GOLDEN / "07-thick-shim-requests"  # Go shim vs a fake daemon
SHIM_B = GOLDEN / "07-thick-daemon-responses"  # Go shim vs the real Go daemon
GOLDEN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHIM_FILE = Path(shim.__file__)
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)"


def _golden_env(case: Path, name: str, command: str, pod: bool = True) -> dict[str, str]:
    """The shim's environment in a golden case: PATH plus the CNI_* variables."""
    env = {"PATH": GOLDEN_PATH}
    if pod:
        env |= json.loads((case / name).read_text())
    else:
        env["CNI_PATH"] = "/usr/lib/cni"
    env["CNI_COMMAND"] = command
    return env


def _body_of(http: Path) -> bytes:
    return http.read_bytes().partition(b"\r\n\r\n")[2]


# --- what goes on the wire -----------------------------------------------------------------

# (case, request file, env file or None for STATUS/GC, command, stdin file)
CNI_REQUESTS = [
    (SHIM_A, "02-add-cni", "env.json", "ADD", "config.json"),
    (SHIM_A, "04-check-cni", "env.json", "CHECK", "check-config.json"),
    (SHIM_A, "06-del-cni", "env.json", "DEL", "config.json"),
    (SHIM_A, "08-status-cni", None, "STATUS", "config-1.1.0.json"),
    (SHIM_A, "10-gc-cni", None, "GC", "gc-config.json"),
    (SHIM_A, "12-add031-cni", "env.json", "ADD", "config-0.3.1.json"),
    (SHIM_B, "02-add-cni", "env.json", "ADD", "config.json"),
    (SHIM_B, "04-check-cni", "env.json", "CHECK", "check-config.json"),
    (SHIM_B, "06-del-cni", "env.json", "DEL", "config.json"),
    (SHIM_B, "08-addfail-cni", "env-fail.json", "ADD", "config.json"),
    (SHIM_B, "10-delfail-cni", "env-fail.json", "DEL", "config.json"),
]


@pytest.mark.parametrize(
    ("case", "request_file", "env_file", "command", "stdin_file"),
    CNI_REQUESTS,
    ids=[f"{c.name[:8]}-{r}" for c, r, *_ in CNI_REQUESTS],
)
def test_cni_request_is_byte_for_byte_what_go_sends(
    case: Path, request_file: str, env_file: str | None, command: str, stdin_file: str
) -> None:
    env = _golden_env(case, env_file or "", command, pod=env_file is not None)
    stdin = (case / stdin_file).read_bytes()
    want = (case / "requests" / f"{request_file}.http").read_bytes()
    assert shim.request_bytes("/cni", shim.cni_request_body(env, stdin)) == want


@pytest.mark.parametrize("probe", sorted({p.name for p in (SHIM_A / "requests").glob("*z.http")}))
def test_probe_request_is_byte_for_byte_what_go_sends(probe: str) -> None:
    path = "/healthz" if "healthz" in probe else "/readyz"
    assert shim.request_bytes(path, b"null") == (SHIM_A / "requests" / probe).read_bytes()


def test_env_keys_sort_in_go_byte_order_and_values_escape_like_go() -> None:
    env = {"b": "<&>", "a": "\u00e9\u2028", "Z": "x\udcff", "\u00e9": "1", "_": '"\\\n'}
    body = json.loads(shim.cni_request_body(env, b"{}"))
    assert list(body["env"]) == ["Z", "_", "a", "b", "\u00e9"]
    raw = shim.cni_request_body(env, b"{}")
    assert b'"b":"\\u003c\\u0026\\u003e"' in raw
    assert b'"a":"\xc3\xa9\\u2028"' in raw
    assert b'"Z":"x\\ufffd"' in raw  # a byte that was not UTF-8, as Go replaces it
    assert base64.b64decode(body["config"]) == b"{}"


# --- printing results ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "answer", "version", "stdout"),
    [
        (SHIM_A, "02-add-cni", "1.0.0", "add.stdout"),
        (SHIM_A, "12-add031-cni", "0.3.1", "add-0.3.1.stdout"),
        (SHIM_B, "02-add-cni", "1.0.0", "add.stdout"),
    ],
)
def test_printed_result_matches_go(case: Path, answer: str, version: str, stdout: str) -> None:
    body = _body_of(case / "responses" / f"{answer}.http")
    printed = shim.print_result(shim.decode_result(body, version))
    assert printed == (case / stdout).read_bytes()


_V4 = ipaddress.IPv4Network("198.18.0.0/15")
_V6 = ipaddress.IPv6Network("2001:db8::/32")


def _addr(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[str]:
    return st.integers(0, net.num_addresses - 1).map(lambda n: str(net.network_address + n))


def _cidr(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[str]:
    return st.tuples(_addr(net), st.integers(net.prefixlen, net.max_prefixlen)).map(
        lambda t: f"{t[0]}/{t[1]}"
    )


ip = _addr(_V4) | _addr(_V6)
cidr = _cidr(_V4) | _cidr(_V6) | st.sampled_from(["0.0.0.0/0", "::/0"])
words = st.sampled_from(["", "eth0", "net1", "a<b>&c", "\u00e9\u2028"]) | st.text(max_size=5)
maybe_int = st.none() | st.integers(0, 2**31 - 1)
results_110 = st.builds(
    Result,
    cniVersion=st.just("1.1.0"),
    interfaces=st.lists(
        st.builds(
            Interface,
            name=words,
            mac=words,
            mtu=st.integers(0, 9000),
            sandbox=words,
            socketPath=words,
            pciID=words,
        ),
        max_size=3,
    ),
    ips=st.lists(st.builds(IPConfig, interface=maybe_int, address=cidr, gateway=st.just("") | ip)),
    routes=st.lists(
        st.builds(
            Route,
            dst=cidr,
            gw=st.none() | ip,
            mtu=st.integers(0, 9000),
            advmss=st.integers(0, 9000),
            priority=st.integers(0, 100),
            table=maybe_int,
            scope=st.none() | st.integers(0, 255),
        ),
        max_size=4,
    ),
    dns=st.none()
    | st.builds(
        DNS,
        nameservers=st.lists(ip, max_size=2),
        domain=words,
        search=st.lists(words, max_size=2),
        options=st.lists(words, max_size=2),
    ),
)


@PROPS
@given(results_110, st.sampled_from(["1.0.0", "1.1.0"]), st.sampled_from(ALL_VERSIONS))
def test_conversion_agrees_with_the_library(result: Result, source: str, version: str) -> None:
    """The shim's stdlib-only conversion of a 1.0.0 or 1.1.0 answer prints what
    ``pymultus.cni.convert`` prints."""
    answered = encode_result(convert(result, source))
    try:
        want: bytes | int = encode_result(convert(parse_result(answered), version), indent=True)
    except CniError as err:
        want = err.error_code
    try:
        got: bytes | int = shim.print_result(
            shim.decode_result(b'{"Result":' + answered + b"}", version)
        )
    except shim.CniFailure as failure:
        got = failure.code
    assert got == want


@pytest.mark.parametrize("source", ["0.2.0", "0.3.1", "0.4.0"])
@pytest.mark.parametrize("target", ALL_VERSIONS)
def test_a_0x_answer_is_understood(source: str, target: str) -> None:
    """The daemon answers 1.x, but a 0.x result (say from a daemon of another make) converts
    as libcni would."""
    golden = _body_of(SHIM_A / "responses" / "02-add-cni.http")
    current = parse_result(json.dumps(json.loads(golden)["Result"]).encode())
    old = encode_result(convert(current, source))
    want = encode_result(convert(parse_result(old), target), indent=True)
    assert shim.print_result(shim.decode_result(b'{"Result":' + old + b"}", target)) == want


def test_conversion_to_0_2_without_addresses_is_code_1() -> None:
    answer = b'{"Result":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"}]}}'
    with pytest.raises(shim.CniFailure) as caught:
        shim.decode_result(answer, "0.2.0")
    assert caught.value.code == 1


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        (b"not json", "invalid answer"),
        (b'{"result": 5}', "Result must be an object"),
        (b"[]", "Result must be an object"),
        (b'{"Result":{"interfaces":{}}}', "interfaces must be a list"),
        (b'{"Result":{"interfaces":[{"name":1}]}}', "interfaces[0].name must be a string"),
        (b'{"Result":{"ips":[{"address":"198.18.0.1/24","interface":true}]}}', "ips[0].interface"),
        (b'{"Result":{"dns":{"search":[1]}}}', "dns.search must be a list of strings"),
    ],
)
def test_a_bad_answer_is_code_999_naming_the_field(answer: bytes, field: str) -> None:
    with pytest.raises(shim.CniFailure) as caught:
        shim.decode_result(answer, "1.0.0")
    assert caught.value.code == 999
    assert field in caught.value.msg


def test_result_key_is_found_ignoring_case_like_go() -> None:
    answer = b'{"result":{"cniVersion":"1.0.0","ips":[{"address":"198.18.0.2/24"}]}}'
    printed = json.loads(shim.print_result(shim.decode_result(answer, "1.1.0")))
    assert printed == {"cniVersion": "1.1.0", "ips": [{"address": "198.18.0.2/24"}]}


# --- JSON ----------------------------------------------------------------------------------

plain_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | plain_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain_text, inner, max_size=4),
    max_leaves=15,
)


@PROPS
@given(json_values, st.booleans())
def test_encoding_matches_go_json(value: Any, indent: bool) -> None:
    want = gojson.marshal_indent(value) if indent else gojson.marshal(value)
    assert shim.encode(value, indent=indent) == want


@PROPS
@given(st.dictionaries(plain_text, json_values, max_size=5))
def test_sorted_encoding_matches_go_maps(value: dict[str, Any]) -> None:
    assert shim.encode(value, sort_keys=True) == gojson.sorted_compact(value)


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, "1"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        (1e-6, "0.000001"),
        (0.00001, "0.00001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (5e-324, "5e-324"),
        (1e16, "10000000000000000"),
        (1.2345678901234568e17, "123456789012345680"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (-1.5e300, "-1.5e+300"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_floats_are_written_as_go_writes_them(number: float, text: str) -> None:
    assert shim.go_float(number) == text


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_floats_json_cannot_hold_are_refused(number: float) -> None:
    with pytest.raises(ValueError, match="JSON has no"):
        shim.go_float(number)


@PROPS
@given(json_values, st.sampled_from([None, 1]), st.sampled_from([" ", "\n\t", ""]))
def test_decoding_matches_json_loads(value: Any, indent: int | None, pad: str) -> None:
    text = pad + json.dumps(value, indent=indent) + pad
    assert shim.loads(text) == json.loads(text)


@PROPS
@given(st.text(alphabet='{}[]":,0123456789.eE+-truefalsn \\', max_size=12))
def test_decoding_accepts_and_refuses_what_json_loads_does(text: str) -> None:
    try:
        want = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            shim.loads(text)
    else:
        assert shim.loads(text) == want


@pytest.mark.parametrize("text", ["", "  ", "NaN", "[Infinity]", "-Infinity", "{} {}", "\ufeff{}"])
def test_decoding_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        shim.loads(text)


def test_decoding_survives_deep_nesting() -> None:
    with pytest.raises(ValueError, match="deep"):
        shim.loads("[" * 100_000 + "]" * 100_000)


def test_the_fallback_decoder_is_equally_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``_json`` is missing the shim uses ``json``; it must refuse the same things."""
    monkeypatch.setitem(sys.modules, "_json", None)  # import of _json now fails
    monkeypatch.setattr(shim, "_scan", None)
    assert shim.loads(' {"a": [1, 2.5, null]} ') == {"a": [1, 2.5, None]}
    for bad in ("NaN", "[1] x", ""):
        with pytest.raises(ValueError):
            shim.loads(bad)
    monkeypatch.setattr(shim, "_scan", None)  # next use builds the C scanner again


# --- config and errors ---------------------------------------------------------------------


def _run(conf: dict[str, Any] | bytes, command: str = "ADD") -> tuple[int, Any]:
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    status, out = shim.run({"CNI_COMMAND": command, "PATH": "/bin"}, stdin)
    return status, json.loads(out) if out else None


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b"{", "invalid network config on stdin"),
        (b"[1]", "want an object, got an array"),
        (b'"x"', 'want an object, got "x"'),
        (b"1e400", "want an object, got inf"),
        (b"\xff\xfe", "invalid network config on stdin"),
    ],
)
def test_bad_stdin_is_code_6_naming_stdin(stdin: bytes, message: str) -> None:
    status, error = _run(stdin)
    assert status == 1
    assert error["code"] == 6
    assert "stdin" in error["msg"]
    assert message in error["msg"]
    assert "cniVersion" not in error


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("daemonSocketDir", 5),
        ("logToStderr", "yes"),
        ("logLevel", True),
        ("logFile", ["x"]),
        ("cniVersion", 1),
        ("daemonReadyTimeoutSeconds", "5"),
        ("daemonReadyTimeoutSeconds", -1),
        ("daemonRequestTimeoutSeconds", True),
    ],
)
def test_a_key_of_the_wrong_type_is_code_7_naming_it(key: str, value: Any) -> None:
    conf = {"cniVersion": "1.0.0", "name": "n", "daemonSocketDir": "/nonexistent-pms"}
    status, error = _run({**conf, key: value})
    assert status == 1
    assert (error["code"], key in error["msg"]) == (7, True), error


def test_an_infinite_timeout_is_code_7() -> None:
    status, error = _run(b'{"cniVersion":"1.0.0","daemonReadyTimeoutSeconds":1e400}')
    assert (status, error["code"]) == (1, 7)
    assert "daemonReadyTimeoutSeconds must be a number of seconds >= 0, got inf" in error["msg"]


def test_unknown_command_is_code_4() -> None:
    status, error = _run({"cniVersion": "1.0.0", "name": "n"}, command="FROB")
    assert (status, error) == (
        1,
        {"cniVersion": "1.0.0", "code": 4, "msg": "unknown CNI_COMMAND: FROB"},
    )


def test_an_unsupported_cni_version_stops_add_before_the_daemon_is_asked() -> None:
    with short_socket_dir() as d, FakeDaemon(f"{d}/multus.sock") as daemon:
        status, error = _run({"cniVersion": "9.9.9", "name": "n", "daemonSocketDir": d})
        assert (status, error["code"], daemon.requests) == (1, 1, [])
        assert "cniVersion" in error["msg"]


def test_config_keys_match_ignoring_case_like_go() -> None:
    with short_socket_dir() as d, FakeDaemon(f"{d}/multus.sock") as daemon:
        status, _ = _run({"CNIVERSION": "1.1.0", "DaemonSocketDir": d + "/"}, command="GC")
        assert status == 0
        assert daemon.paths() == ["/cni"]


def test_socket_path_defaults_to_run_multus() -> None:
    assert shim.Settings({}).socket_path == "/run/multus/multus.sock"
    assert shim.Settings({"daemonSocketDir": "/x//y/"}).socket_path == "/x/y/multus.sock"


@PROPS
@given(st.text(alphabet="/.ab", max_size=12))
def test_socket_path_is_joined_and_normalised_as_os_path_does(directory: str) -> None:
    """The shim does not import ``os``; its own ``normpath`` must give what ``os.path`` gives."""
    assert shim.normpath(directory) == os.path.normpath(directory)
    assert shim.socket_path_in(directory) == os.path.normpath(
        os.path.join(directory, "multus.sock")
    )


@pytest.mark.parametrize(
    ("status", "body", "code", "msg", "details"),
    [
        (400, b'{"code":7,"msg":"bad","details":"why"}', 7, "bad", "why"),
        (400, b'{"code":3,"msg":"gone"}', 3, "gone", ""),
        (
            400,
            (SHIM_B / "responses/08-addfail-cni.http").read_bytes().partition(b"\r\n\r\n")[2],
            999,
            'ContainerID:"0000000000000000000000000000000000000000000000000000000000000073"',
            "",
        ),
        (400, b'{"msg":"no code"}', 999, '{"msg":"no code"}', ""),
        (503, b'{"code":11,"msg":"multus-daemon is shutting down"}\n', 11, "multus-daemon is", ""),
        (503, b"busy\n", 999, "answered HTTP 503: busy", ""),
        (400, b"", 999, "answered HTTP 400: (no body)", ""),
        (500, b'{"code":7,"msg":"bad"}', 999, "answered HTTP 500", ""),
        (404, b"404 page not found\n", 999, "HTTP 404: 404 page not found", ""),
    ],
)
def test_daemon_errors_map_to_cni_errors(
    status: int, body: bytes, code: int, msg: str, details: str
) -> None:
    failure = shim.daemon_error(status, body, "/run/multus/multus.sock")
    assert (failure.code, failure.details) == (code, details)
    assert failure.msg.startswith(msg) or msg in failure.msg
    assert not failure.msg.endswith("\n")


def test_the_text_body_of_go_daemon_becomes_the_message() -> None:
    body = _body_of(SHIM_B / "responses" / "08-addfail-cni.http")
    failure = shim.daemon_error(400, body, "/run/multus/multus.sock")
    assert failure.msg == body.decode().rstrip("\n")


def test_error_json_has_the_config_version_first() -> None:
    failure = shim.CniFailure(11, "m", "d")
    printed = shim.encode(failure.to_wire("0.4.0"), indent=True)
    assert (
        printed
        == b'{\n    "cniVersion": "0.4.0",\n    "code": 11,\n    "msg": "m",\n    "details": "d"\n}'
    )


def test_an_unexpected_exception_is_code_999_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*_: object) -> bytes:
        raise KeyError("surprise")

    monkeypatch.setattr(shim, "handle", boom)
    status, error = _run({"cniVersion": "1.0.0", "name": "n"})
    assert (status, error["code"], error["cniVersion"]) == (1, 999, "1.0.0")
    assert "KeyError" in error["msg"]


def test_version_answer_matches_the_thin_plugin() -> None:
    from pymultus.plugin.main import version_info

    assert shim.version_info() == version_info()
    assert __version__ == shim.VERSION


# --- the HTTP client -----------------------------------------------------------------------


@pytest.fixture
def daemon() -> Iterator[FakeDaemon]:
    with short_socket_dir() as d, FakeDaemon(f"{d}/multus.sock") as fake:
        yield fake


def _chunked(body: bytes, size: int) -> bytes:
    parts = [
        b"%x;ext=1\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\nX-Trailer: t\r\n\r\n"


BIG = json.dumps(
    {"Result": {"cniVersion": "1.1.0", "interfaces": [{"name": f"net{i}"} for i in range(300)]}}
).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BIG), BIG),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(BIG, 1000),
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BIG,  # framed by the close
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(gzip.compress(BIG)), gzip.compress(BIG)),
        b"HTTP/1.0 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(BIG), BIG),
    ],
    ids=["content-length", "chunked", "until-close", "gzip", "http-1.0-lowercase"],
)
def test_answers_are_read_whatever_the_framing(daemon: FakeDaemon, raw: bytes) -> None:
    daemon.set("/cni", Reply(raw=raw))
    assert shim.http_post(daemon.socket_path, "/cni", b"{}", 5) == (200, BIG)
    assert daemon.requests[0].raw == shim.request_bytes("/cni", b"{}")


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (Reply(close=True), shim.DaemonUnreachable, "closed in mid-answer"),
        (
            Reply(raw=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),
            shim.DaemonUnreachable,
            "mid-answer",
        ),
        (Reply(raw=b"SSH-2.0-OpenSSH\r\n\r\n"), shim.ProtocolError, "not an HTTP response"),
        (
            Reply(raw=b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            shim.ProtocolError,
            "Content-Length",
        ),
        (
            Reply(raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            shim.ProtocolError,
            "chunk size",
        ),
        (
            Reply(raw=b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\nnope"),
            shim.ProtocolError,
            "gzip",
        ),
        (Reply(hang=True), shim.DaemonUnreachable, "timed out"),
    ],
    ids=["closed", "short", "not-http", "bad-length", "bad-chunk", "bad-gzip", "hangs"],
)
def test_broken_answers_are_reported(
    daemon: FakeDaemon, reply: Reply, error: type, text: str
) -> None:
    daemon.set("/cni", reply)
    with pytest.raises(error, match=text):
        shim.http_post(daemon.socket_path, "/cni", b"{}", 0.3)


def test_connect_failures_name_the_socket() -> None:
    with short_socket_dir() as d:
        with pytest.raises(shim.DaemonUnreachable, match=f"connect {d}/multus.sock: No such file"):
            shim.http_post(f"{d}/multus.sock", "/readyz", b"null", 1)
        dead_socket(f"{d}/multus.sock")
        with pytest.raises(shim.DaemonUnreachable, match="Connection refused"):
            shim.http_post(f"{d}/multus.sock", "/readyz", b"null", 1)


def test_readiness_polls_until_ready(daemon: FakeDaemon) -> None:
    daemon.set("/readyz", Reply(500), Reply(500), Reply(200))
    shim.wait_ready(daemon.socket_path, 5, 11)
    assert daemon.paths() == ["/readyz"] * 3


def test_readiness_gives_up_after_the_bound(daemon: FakeDaemon) -> None:
    daemon.set("/readyz", Reply(500))
    with pytest.raises(shim.CniFailure) as caught:
        shim.wait_ready(daemon.socket_path, 0.35, 11)
    assert caught.value.code == 11
    assert "/readyz answered HTTP 500" in caught.value.msg
    assert daemon.socket_path in caught.value.msg
    assert 3 <= len(daemon.requests) <= 6  # every 100 ms, the first at once


def test_zero_readiness_timeout_means_one_probe(daemon: FakeDaemon) -> None:
    daemon.set("/readyz", Reply(500))
    with pytest.raises(shim.CniFailure):
        shim.wait_ready(daemon.socket_path, 0, 50)
    assert daemon.paths() == ["/readyz"]


# --- one connection, and the fallback to Go's probe first ----------------------------------

VERBS = ["ADD", "CHECK", "DEL", "STATUS", "GC"]
ADD_ANSWER = _body_of(SHIM_A / "responses" / "02-add-cni.http")


def _call(daemon: FakeDaemon, command: str, **conf: Any) -> tuple[int, Any]:
    """One call in process against ``daemon``: (exit status, parsed stdout or None)."""
    sock_dir = os.path.dirname(daemon.socket_path)
    base = {"cniVersion": "1.1.0", "daemonSocketDir": sock_dir, "daemonReadyTimeoutSeconds": 2}
    status, out = shim.run(
        {"CNI_COMMAND": command, "PATH": "/bin"}, json.dumps(base | conf).encode()
    )
    return status, json.loads(out) if out else None


def _reply_for(command: str) -> Reply:
    return Reply(200, ADD_ANSWER) if command == "ADD" else Reply()


def _refuse_first_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first connection fails as a daemon not yet listening makes it fail; the rest reach
    the fake daemon."""
    real = shim.http_post
    calls: list[str] = []

    def first_refused(sock: str, path: str, body: bytes, timeout: float | None) -> Any:
        calls.append(path)
        if len(calls) == 1:
            raise shim.NotConnected(f"connect {sock}: Connection refused")
        return real(sock, path, body, timeout)

    monkeypatch.setattr(shim, "http_post", first_refused)


@pytest.mark.parametrize("command", VERBS)
def test_a_ready_daemon_gets_one_connection(daemon: FakeDaemon, command: str) -> None:
    daemon.set("/cni", _reply_for(command))
    assert _call(daemon, command)[0] == 0
    assert daemon.paths() == ["/cni"]


@pytest.mark.parametrize("command", VERBS)
def test_a_503_waits_for_readyz_and_sends_again(daemon: FakeDaemon, command: str) -> None:
    """DEL too: a daemon shutting down ran nothing, and the next one will (a restart)."""
    daemon.set("/cni", Reply(503, b'{"code":11,"msg":"shutting down"}'), _reply_for(command))
    daemon.set("/readyz", Reply(500), Reply(200))
    assert _call(daemon, command)[0] == 0
    assert daemon.paths() == ["/cni", "/readyz", "/readyz", "/cni"]
    assert daemon.requests[0].raw == daemon.requests[3].raw  # the very same request again


@pytest.mark.parametrize(
    ("command", "probe"), [(v, "/healthz" if v == "DEL" else "/readyz") for v in VERBS]
)
def test_a_failed_connect_probes_as_go_does_then_sends(
    daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch, command: str, probe: str
) -> None:
    _refuse_first_connect(monkeypatch)
    daemon.set("/cni", _reply_for(command))
    assert _call(daemon, command)[0] == 0
    assert daemon.paths() == [probe, "/cni"]


def test_a_second_503_is_the_daemons_error(daemon: FakeDaemon) -> None:
    daemon.set("/cni", Reply(503, b'{"code":11,"msg":"multus-daemon is shutting down"}\n'))
    status, error = _call(daemon, "ADD")
    assert (status, error["code"], error["msg"]) == (1, 11, "multus-daemon is shutting down")
    assert daemon.paths() == ["/cni", "/readyz", "/cni"]


def test_a_503_from_a_daemon_that_stays_unready_times_out(daemon: FakeDaemon) -> None:
    daemon.set("/cni", Reply(503))
    daemon.set("/readyz", Reply(500))
    status, error = _call(daemon, "STATUS", daemonReadyTimeoutSeconds=0)
    assert (status, error["code"]) == (1, 50)
    assert "/readyz answered HTTP 500" in error["msg"]
    assert daemon.paths() == ["/cni", "/readyz"]


@pytest.mark.parametrize(
    "reply",
    [Reply(500), Reply(404), Reply.json_error(7, "bad"), Reply(close=True)],
    ids=["500", "404", "400", "closed"],
)
def test_other_failures_are_not_retried(daemon: FakeDaemon, reply: Reply) -> None:
    """Only a request that certainly ran nowhere is sent twice."""
    daemon.set("/cni", reply)
    status, error = _call(daemon, "ADD")
    assert status == 1
    assert error["code"] in (7, 11, 999)
    assert daemon.paths() == ["/cni"]


def test_a_del_without_any_socket_succeeds_and_logs(capsys: pytest.CaptureFixture[str]) -> None:
    with short_socket_dir() as d:
        conf = {"cniVersion": "1.0.0", "daemonSocketDir": d, "logToStderr": True}
        status, out = shim.run(
            {"CNI_COMMAND": "DEL"}, json.dumps(conf | {"logLevel": "error"}).encode()
        )
    assert (status, out) == (0, b"")
    assert f"[error] CmdDel (shim): {d}/multus.sock does not exist" in capsys.readouterr().err


def test_the_fallback_is_logged_at_debug(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.set("/cni", Reply(503), Reply())
    assert _call(daemon, "CHECK", logToStderr=True, logLevel="debug")[0] == 0
    lines = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        f"[debug] CmdCheck (shim): sending the request to {daemon.socket_path}",
        "[debug] CmdCheck (shim): /cni answered HTTP 503; waiting for multus-daemon",
    ]


# --- logging -------------------------------------------------------------------------------


def test_log_lines_have_go_format_and_respect_the_level(tmp_path: Path) -> None:
    log = shim.Log()
    log.configure({"logFile": str(tmp_path / "shim.log"), "logLevel": "Verbose"})
    log("debug", "hidden")
    log("verbose", "shown")
    log("error", "also shown")
    lines = (tmp_path / "shim.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["[verbose] shown", "[error] also shown"]
    assert re.fullmatch(RFC3339, lines[0].split(" ")[0])
    assert os.stat(tmp_path / "shim.log").st_mode & 0o777 == 0o600


def test_logging_is_off_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    log = shim.Log()
    log.configure({})
    assert not log.enabled("panic")
    log("error", "nobody hears this")
    assert capsys.readouterr().err == ""


def test_an_unknown_log_level_is_reported_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    log = shim.Log()
    log.configure({"logLevel": "chatty", "logToStderr": True})
    assert capsys.readouterr().err == "multus logging: cannot set logging level to chatty\n"
    assert log.level == shim.LEVELS["panic"]


@pytest.mark.parametrize(
    ("tz", "suffix"), [("UTC", "Z"), ("Etc/GMT-2", "+02:00"), ("America/St_Johns", "-0")]
)
def test_timestamps_are_rfc3339_local_time(
    monkeypatch: pytest.MonkeyPatch, tz: str, suffix: str
) -> None:
    import time

    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        stamp = shim.rfc3339(1_800_000_000.0)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert len(stamp) in (20, 25)
    assert stamp[10] == "T"
    assert suffix in stamp[19:]


def test_an_unwritable_log_file_is_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    log = shim.Log()
    log.configure({"logFile": "/nonexistent-dir-pms/shim.log", "logLevel": "error"})
    log("error", "one")
    log("error", "two")
    assert capsys.readouterr().err.count("cannot write /nonexistent-dir-pms/shim.log") == 1


# --- the file itself -----------------------------------------------------------------------

ALLOWED_IMPORTS = {"__future__", "_socket", "binascii", "posix", "sys", "time"}
# deferred (only where needed: bad input, a gzipping server) or type-only
LAZY_IMPORTS = {"_json", "json", "json.decoder", "zlib", "collections.abc", "typing"}


def test_the_file_parses_as_python_3_8() -> None:
    ast.parse(SHIM_FILE.read_text(), feature_version=(3, 8))


def _annotation_nodes(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        roots: list[ast.AST | None] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            roots = [node.returns, *(a.annotation for a in every if a is not None)]
        elif isinstance(node, ast.AnnAssign):
            roots = [node.annotation]
        for root in roots:
            if root is not None:
                found.update(id(n) for n in ast.walk(root))
    return found


def test_no_3_9_runtime_constructs_outside_annotations() -> None:
    """``from __future__ import annotations`` keeps ``list[str]`` and ``X | None`` out of
    runtime in annotations only; elsewhere they would break Python 3.8."""
    tree = ast.parse(SHIM_FILE.read_text())
    in_annotation = _annotation_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in in_annotation:
            continue
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            assert node.value.id not in {"list", "dict", "tuple", "set", "type"}, ast.dump(node)
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"removeprefix", "removesuffix"}, ast.dump(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"aiter", "anext"}
    assert isinstance(tree.body[1], ast.ImportFrom)
    assert tree.body[1].module == "__future__"


def test_only_cheap_stdlib_modules_are_imported() -> None:
    tree = ast.parse(SHIM_FILE.read_text())
    top = {
        alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names
    } | {node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert top == ALLOWED_IMPORTS
    every = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert every - ALLOWED_IMPORTS <= LAZY_IMPORTS


def test_the_file_starts_with_a_single_word_interpreter_flag() -> None:
    first = SHIM_FILE.read_text().splitlines()[0]
    assert first == "#!/usr/bin/python3 -IS"
