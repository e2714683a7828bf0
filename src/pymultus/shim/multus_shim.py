#!/usr/bin/python3 -IS
"""multus-shim: the thick-mode CNI plugin of pymultus, one file, standard library only.

The container runtime runs this file for every CNI call. It forwards the call to multus-daemon
over HTTP on the unix socket ``<daemonSocketDir>/multus.sock`` and prints the daemon's answer.
The requests are byte for byte what Go Multus's shim sends, so a Go daemon and Go tooling work
with this shim, and a Go shim works with our daemon.

Installing: this one file works on its own, copied into the CNI bin dir as ``multus-shim``. It
runs on any CPython >= 3.8 with ``-I -S``. The ``#!`` line spells it ``-IS`` because Linux passes
everything after the interpreter path as ONE argument, and Python rejects ``"-I -S"`` as an
unknown option. ``pymultus.shim.install`` installs it atomically, with an absolute interpreter
path, and in a faster form: a small launcher holding this program (without docstrings) that runs
it from a compiled cache beside it, because compiling this file took a third of every call.

Config keys read; names match as Go's encoding/json matches them (exact, else ignoring case).
Every other key reaches the daemon untouched inside the base64 ``config``:

- ``cniVersion``: the version the ADD result is printed in (the daemon answers in 1.x).
- ``daemonSocketDir`` (default ``/run/multus/``): directory of ``multus.sock``.
- ``daemonReadyTimeoutSeconds`` (default 60, Go's fixed wait): how long a call waits for a
  daemon that is not there or shutting down, polling ``/readyz`` every 100 ms as Go does; 0 means
  a single probe. It also bounds DEL's single ``/healthz`` probe. pymultus only.
- ``daemonRequestTimeoutSeconds`` (default 0 = no limit, as Go): how long to wait for the answer
  to ``/cni``. The runtime has its own deadline; a slow but healthy ADD (a pod waiting for
  devices) should not be cut short by a second, shorter one. pymultus only.
- ``logFile``, ``logLevel`` (``panic`` < ``error`` < ``verbose`` < ``debug``; default panic),
  ``logToStderr`` (default false). Lines are ``<RFC3339> [<level>] <msg>``. The shim appends to
  ``logFile`` and never rotates it.

Answers:

- ADD: 200 ``{"Result": {...}}`` is printed in the config's ``cniVersion`` as libcni prints a
  result (4-space indent; keys sorted for 1.x, Go's struct order for 0.x).
- CHECK, DEL, STATUS, GC: 200 prints nothing.
- 400 with CNI error JSON ``{"code","msg","details"}``: printed with the config's cniVersion,
  exit 1, the daemon's code kept. 400 with Go's text/plain body: code 999, the text as ``msg``.
- 503 (multus-daemon is shutting down and ran nothing): the shim waits for ``/readyz`` and sends
  the request again, once. A second 503 is the daemon's CNI error (code 11).
- Daemon not ready in time: code 11 naming the socket. STATUS reports code 50 ("plugin not
  available") instead, the code the CNI 1.1 spec asks of STATUS.

One connection per call. Go's shim probes first (``/readyz``, or ``/healthz`` for DEL) and then
sends ``POST /cni``: two connections, every call. This shim sends ``/cni`` at once (the same
bytes) and falls back to Go's sequence only when that cannot be delivered: connecting fails, so
nothing was sent, or the daemon answers 503 because it is shutting down (our daemon refuses new
calls then instead of starting work it may not finish). The wait is then what Go does: poll
``/readyz`` (DEL: probe ``/healthz`` once after a failed connect), and send ``/cni`` once more.

DEL. Go Multus's shim turns every DEL error into success, so a failed delegate DEL leaks IPs
and interfaces (multus-cni issue #1239). This shim returns DEL errors to the runtime, which
retries the DEL. One case still exits 0: no socket file exists at all, i.e. multus-daemon is not
installed on this node. The shim logs that and reports success, so pod teardown is not blocked
forever on a node without the daemon. A socket file that exists but refuses connections means
the daemon is down or restarting: code 11, and the runtime retries. A DEL that reaches a daemon
shutting down (503) waits for the next one, as ADD does. (At daemon start there is a short window
before the socket exists; a DEL in it is reported done without work. Go Multus has the same
window and a wider one.)

Start-up cost: the runtime runs the shim for every CNI call, so it imports only modules that are
already loaded (``posix``, ``sys``, ``time``), built in or cheap (``_json``, ``_socket``,
``binascii``). ``json`` and ``socket`` would pull in ``re``, ``enum`` and ``selectors``, about
10 ms; even ``os`` costs a millisecond, so ``posix`` stands in for it. Decoding uses ``_json``'s
C scanner, ``json.loads``'s own engine, and falls back to ``json`` where that is missing.
Encoding is done here because it must follow Go's escaping rules anyway. Once its answer is
written and flushed, the shim ends with ``posix._exit`` (``leave``): the interpreter's clean-up
would add 1.5 ms.
"""

from __future__ import annotations

import _socket
import binascii
import posix
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

VERSION = "0.1.0"
ABOUT = f"multus-shim (pymultus {VERSION}): meta-plugin that delegates to multus-daemon"
ALL_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
DEFAULT_SOCKET_DIR = "/run/multus/"
SOCKET_NAME = "multus.sock"
DEFAULT_READY_TIMEOUT = 60.0  # seconds; Go's shim waits this long for /readyz
POLL_INTERVAL = 0.1  # seconds between /readyz probes, as in Go
MIN_PROBE_TIMEOUT = 0.5  # seconds one probe may take even when the wait is (nearly) over
MAX_ANSWER = 64 << 20  # bytes; a larger answer is a broken daemon, not a result
SHUTTING_DOWN = 503  # multus-daemon's answer to /cni once it stops: nothing was run

ERR_INCOMPATIBLE_VERSION = 1
ERR_INVALID_ENVIRONMENT = 4
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_NOT_AVAILABLE = 50
ERR_INTERNAL = 999

# The verbs, with the names Go's log lines use.
VERBS = {
    "ADD": "CmdAdd",
    "CHECK": "CmdCheck",
    "DEL": "CmdDel",
    "STATUS": "CmdStatus",
    "GC": "CmdGC",
}


class CniFailure(Exception):
    """A CNI error to print: ``code``, ``msg``, optional ``details``."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_wire(self, cni_version: str) -> dict[str, Any]:
        """The spec's error object in libcni's key order, empty fields left out."""
        wire: dict[str, Any] = {"cniVersion": cni_version} if cni_version else {}
        wire["code"] = self.code
        wire["msg"] = self.msg
        if self.details:
            wire["details"] = self.details
        return wire


class DaemonUnreachable(Exception):
    """The socket could not be used: connect, send or receive failed or timed out."""


class NotConnected(DaemonUnreachable):
    """Connecting failed (no socket file, refused, ...): nothing of the request was sent."""


class ProtocolError(Exception):
    """The daemon answered something that is not a usable HTTP response."""


# --------------------------------------------------------------------------- JSON, Go's way

_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f"}
_ESCAPES.update({13: "\\r", 0x3C: "\\u003c", 0x3E: "\\u003e", 0x26: "\\u0026"})
_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
for _code in range(0x20):
    _ESCAPES.setdefault(_code, f"\\u{_code:04x}")


def quote(text: str) -> str:
    """``text`` as a JSON string the way Go writes it: ``<``, ``>``, ``&``, U+2028 and U+2029
    escaped, other non-ASCII raw, each byte that was not UTF-8 (a lone surrogate) as ``\\ufffd``.
    """
    escaped = text.translate(_ESCAPES)
    if not escaped.isascii():
        try:
            escaped.encode("utf-8")
        except UnicodeEncodeError:
            escaped = "".join("\\ufffd" if "\ud800" <= c <= "\udfff" else c for c in escaped)
    return '"' + escaped + '"'


def go_float(value: float) -> str:
    """A float as Go's encoding/json writes it: shortest digits, an exponent only outside
    [1e-6, 1e21), and ``e-7`` rather than ``e-07``."""
    if not abs(value) < float("inf"):  # also true for NaN
        raise ValueError(f"JSON has no {value!r}")
    text = repr(value)
    if value and not 1e-6 <= abs(value) < 1e21:
        mantissa, _, exponent = text.partition("e")
        digits = exponent[1:].lstrip("0")
        return f"{mantissa}e{exponent[0]}{digits if exponent[0] == '-' else digits.zfill(2)}"
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text
    mantissa, _, exponent = text.partition("e")  # Python's exponent form for 1e16 and 1e-5
    digits = mantissa.lstrip("-").replace(".", "")
    point = int(exponent) + 1  # where the decimal point goes in ``digits``
    if point <= 0:
        body = "0." + "0" * -point + digits
    elif point >= len(digits):
        body = digits + "0" * (point - len(digits))
    else:
        body = digits[:point] + "." + digits[point:]
    return ("-" if value < 0 else "") + body


def encode(value: Any, *, indent: bool = False, sort_keys: bool = False) -> bytes:
    """``json.Marshal`` (compact) or ``json.MarshalIndent(v, "", "    ")`` of plain data."""
    out: list[str] = []
    _emit(value, out, "\n" if indent else "", sort_keys)
    return "".join(out).encode("utf-8")


def _emit(value: Any, out: list[str], newline: str, sort_keys: bool) -> None:
    if isinstance(value, str):
        out.append(quote(value))
    elif value is None or value is True or value is False:
        out.append({None: "null", True: "true", False: "false"}[value])
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(go_float(value))
    elif isinstance(value, dict):
        keys = sorted(value) if sort_keys else list(value)
        _emit_items("{}", [(k, value[k]) for k in keys], out, newline, sort_keys)
    elif isinstance(value, (list, tuple)):
        _emit_items("[]", [(None, v) for v in value], out, newline, sort_keys)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _emit_items(
    brackets: str, items: list[Any], out: list[str], newline: str, sort_keys: bool
) -> None:
    if not items:
        out.append(brackets)
        return
    inner = newline + "    " if newline else ""
    out.append(brackets[0])
    for i, (key, item) in enumerate(items):
        out.append("," + inner if i else inner)
        if key is not None:
            out.append(quote(key) + (": " if newline else ":"))
        _emit(item, out, inner, sort_keys)
    out.append(newline + brackets[1])


class _ScanContext:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``: strict JSON, with NaN and
    Infinity refused as Go refuses them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, Any] = {}  # noqa: RUF012 - the pure-Python scanner's cache, unused here

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")


_scan: Callable[[str, int], tuple[Any, int]] | None = None
_WHITESPACE = " \t\n\r"


def loads(text: str) -> Any:
    """Strict JSON decoding, as ``json.loads`` does it, without importing ``json`` and ``re``.

    Raises ``ValueError`` for anything that is not exactly one JSON value.
    """
    global _scan
    if _scan is None:
        _scan = _make_scanner()
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        what = "unexpected end of JSON input" if start == len(text) else "invalid JSON"
        raise ValueError(f"{what} at offset {stop.value}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except SystemError:  # Python < 3.12: _json reports the error through json.decoder
        _explain_with_json_decoder(text, start)
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after the JSON value at offset {end}")
    return value


def _explain_with_json_decoder(text: str, start: int) -> NoReturn:
    """Raise ``ValueError`` saying why ``text`` is not JSON. Before 3.12, ``_json`` builds its
    detailed error from ``json.decoder`` only when that is loaded, and else fails with a
    ``SystemError``; bad input may pay for loading it."""
    import json.decoder  # noqa: PLC0415 - only for input that is not JSON

    assert _scan is not None
    try:
        _scan(text, start)
    except json.decoder.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at offset {exc.pos}: {exc.msg}") from None
    except (StopIteration, SystemError, RecursionError):
        pass
    raise ValueError("invalid JSON")


def _make_scanner() -> Callable[[str, int], tuple[Any, int]]:
    try:
        from _json import make_scanner  # noqa: PLC0415 - deferred until the first decode

        return make_scanner(_ScanContext())  # type: ignore[arg-type]
    except (ImportError, AttributeError, TypeError):  # not CPython, or a changed _json
        import json  # noqa: PLC0415 - the slow but sure fallback

        decoder = json.JSONDecoder(parse_constant=_ScanContext.parse_constant)
        scan: Callable[[str, int], tuple[Any, int]] = getattr(decoder, "scan_once")  # noqa: B009
        return scan


def go_field(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` as Go fills a struct field: the exact key, else the last key equal to it
    ignoring case; None when absent."""
    if name in obj:
        return obj[name]
    found = None
    folded = name.casefold()
    for key, value in obj.items():
        if key.casefold() == folded:
            found = value
    return found


# --------------------------------------------------------------------------- logging

LEVELS = {"panic": 0, "error": 1, "verbose": 2, "debug": 3}


class Log:
    """Go Multus's shim logging: off unless the config asks, and cheap when off."""

    def __init__(self) -> None:
        self.level = LEVELS["panic"]
        self.to_stderr = False
        self.path = ""

    def configure(self, conf: dict[str, Any]) -> None:
        self.to_stderr = _typed(conf, "logToStderr", bool, False)
        self.path = _typed(conf, "logFile", str, "")
        level = _typed(conf, "logLevel", str, "")
        if level.lower() in LEVELS:
            self.level = LEVELS[level.lower()]
        elif level:  # Go says this and keeps its level: a config that works there works here
            _stderr(f"multus logging: cannot set logging level to {level}\n")

    def enabled(self, level: str) -> bool:
        return (self.to_stderr or bool(self.path)) and LEVELS[level] <= self.level

    def __call__(self, level: str, msg: str) -> None:
        if not self.enabled(level):
            return
        line = f"{rfc3339(time.time())} [{level}] {msg}\n"
        if self.to_stderr:
            _stderr(line)
        if self.path:
            self._append(line)

    def _append(self, line: str) -> None:
        try:
            flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC
            fd = posix.open(self.path, flags, 0o600)
            try:
                posix.write(fd, line.encode("utf-8", "replace"))
            finally:
                posix.close(fd)
        except OSError as exc:
            _stderr(f"multus logging: cannot write {self.path}: {exc.strerror}\n")
            self.path = ""


def rfc3339(now: float) -> str:
    """Local time as Go's ``time.RFC3339`` prints it (``Z`` for UTC)."""
    local = time.localtime(now)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", local)
    offset = local.tm_gmtoff or 0
    if offset == 0:
        return text + "Z"
    sign, offset = ("+" if offset > 0 else "-"), abs(offset)
    return f"{text}{sign}{offset // 3600:02d}:{offset % 3600 // 60:02d}"


def _stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # no stderr: nowhere left to complain
        pass


# --------------------------------------------------------------------------- config

_KIND_NAMES = {str: "a string", bool: "true or false", float: "a number of seconds >= 0"}


def _typed(conf: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    """A scalar config key of Go's type; absent or null gives ``default``; else code 7."""
    value = go_field(conf, key)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if ok and kind is float:
        ok = 0 <= float(value) < float("inf")
    if ok:
        return value
    raise CniFailure(
        ERR_INVALID_CONFIG,
        f"invalid multus-shim config: {key} must be {_KIND_NAMES[kind]}, "
        f"got {_show(go_field(conf, key))}",
    )


def _show(value: Any) -> str:
    """A short JSON rendering of a bad value for an error message."""
    try:
        return encode(value).decode()[:60]
    except ValueError:  # a number too big for a float64
        return repr(value)


def parse_config(stdin: bytes) -> dict[str, Any]:
    """The network config on stdin as a JSON object; code 6 naming stdin otherwise."""
    try:
        conf = loads(stdin.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise CniFailure(ERR_DECODE, f"invalid network config on stdin: {exc}") from None
    if not isinstance(conf, dict):
        got = "an array" if isinstance(conf, list) else _show(conf)
        raise CniFailure(ERR_DECODE, f"invalid network config on stdin: want an object, got {got}")
    return conf


def normpath(path: str) -> str:
    """``os.path.normpath`` of a POSIX path (``..`` and ``.`` resolved, slashes collapsed),
    here so that the shim need not import ``os`` (about 1 ms per call)."""
    slashes = 0
    if path.startswith("/"):
        slashes = 2 if path.startswith("//") and not path.startswith("///") else 1
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != ".." or (not slashes and not parts) or (parts and parts[-1] == ".."):
            parts.append(part)
        elif parts:
            parts.pop()
    return "/" * slashes + "/".join(parts) or "."


def socket_path_in(directory: str) -> str:
    """``os.path.normpath(os.path.join(directory, "multus.sock"))``."""
    separator = "/" if directory and not directory.endswith("/") else ""
    return normpath(directory + separator + SOCKET_NAME)


class Settings:
    """The few keys the shim itself uses (see the module docstring), all checked at once so
    that a bad one fails before anything waits."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self.cni_version: str = _typed(conf, "cniVersion", str, "")
        socket_dir = _typed(conf, "daemonSocketDir", str, "") or DEFAULT_SOCKET_DIR
        self.socket_path = socket_path_in(socket_dir)
        self.ready_timeout: float = _typed(
            conf, "daemonReadyTimeoutSeconds", float, DEFAULT_READY_TIMEOUT
        )
        request_timeout: float = _typed(conf, "daemonRequestTimeoutSeconds", float, 0.0)
        self.request_timeout = request_timeout or None

    def result_version(self) -> str:
        """The version ADD prints in. Checked before the daemon runs anything."""
        version = self.cni_version or "0.1.0"  # libcni's reading of a missing cniVersion
        if version not in ALL_VERSIONS:
            raise CniFailure(
                ERR_INCOMPATIBLE_VERSION,
                f"unsupported CNI version {quote(self.cni_version)} in cniVersion; "
                f"supported: {', '.join(ALL_VERSIONS)}",
            )
        return version


# --------------------------------------------------------------------------- HTTP on a unix socket


def request_bytes(path: str, body: bytes) -> bytes:
    """A POST exactly as Go's net/http client in the Go shim writes it."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: dummy\r\nUser-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
        "Accept-Encoding: gzip\r\n\r\n"
    )
    return head.encode("ascii") + body


def cni_request_body(env: dict[str, str], stdin: bytes) -> bytes:
    """Go's ``api.Request``: the whole environment, keys in Go's (byte) order, and the stdin
    bytes in base64."""
    keys = sorted(env, key=lambda k: k.encode("utf-8", "surrogateescape"))
    pairs = ",".join(quote(k) + ":" + quote(env[k]) for k in keys)
    config = binascii.b2a_base64(stdin, newline=False).decode("ascii")
    return ('{"env":{' + pairs + '},"config":"' + config + '"}').encode("utf-8")


class _Exchange:
    """One request on its own connection. The server closes it (Go's daemon disables
    keep-alive); the answer is framed by Content-Length, chunks, or the close."""

    def __init__(self, socket_path: str, timeout: float | None) -> None:
        self.socket_path = socket_path
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.buf = b""
        self.eof = False

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        stage = "connect"
        try:
            self._arm()
            self.sock.connect(self.socket_path)
            stage = "send to"
            self._arm()
            self.sock.sendall(request_bytes(path, body))
            stage = "receive from"
            return self._response()
        except OSError as exc:
            why = "timed out" if isinstance(exc, _socket.timeout) else exc.strerror or str(exc)
            failure = NotConnected if stage == "connect" else DaemonUnreachable
            raise failure(f"{stage} {self.socket_path}: {why}") from None
        finally:
            self.sock.close()

    def _arm(self) -> None:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise _socket.timeout("timed out")
            self.sock.settimeout(left)

    def _more(self) -> None:
        if self.eof:
            raise DaemonUnreachable(f"receive from {self.socket_path}: closed in mid-answer")
        self._arm()
        chunk = self.sock.recv(65536)
        self.eof = not chunk
        self.buf += chunk
        if len(self.buf) > MAX_ANSWER:
            raise ProtocolError(f"answer larger than {MAX_ANSWER} bytes")

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._more()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def _response(self) -> tuple[int, bytes]:
        status_line = self._line().decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP response: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in iter(self._line, b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self._body(headers)
        if headers.get("content-encoding", "").lower() == "gzip":  # we send Accept-Encoding: gzip
            import zlib  # noqa: PLC0415 - only a gzipping server needs it

            try:
                body = zlib.decompress(body, 31)
            except zlib.error as exc:
                raise ProtocolError(f"bad gzip body: {exc}") from None
        return int(parts[1]), body

    def _body(self, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked()
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length!r}")
            return self._exactly(int(length))
        while not self.eof:
            self._more()
        return self.buf

    def _chunked(self) -> bytes:
        body = b""
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                while self._line():  # trailers, up to the blank line
                    pass
                return body
            body += self._exactly(size)
            self._exactly(2)  # the CRLF after each chunk


def http_post(socket_path: str, path: str, body: bytes, timeout: float | None) -> tuple[int, bytes]:
    """POST ``body`` to ``path``: (status, body). ``timeout`` bounds the whole exchange."""
    return _Exchange(socket_path, timeout).post(path, body)


def probe(socket_path: str, path: str, timeout: float) -> str | None:
    """None when ``path`` answers 200, else why not."""
    try:
        status, _ = http_post(socket_path, path, b"null", timeout)
    except (DaemonUnreachable, ProtocolError) as exc:
        return str(exc)
    return None if status == 200 else f"{path} answered HTTP {status}"


def wait_ready(socket_path: str, timeout: float, code: int) -> None:
    """Poll ``/readyz`` every 100 ms, the first time at once and the last at ``timeout``,
    until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        reason = probe(socket_path, "/readyz", max(deadline - time.monotonic(), MIN_PROBE_TIMEOUT))
        if reason is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise CniFailure(
                code,
                f"multus-daemon at {socket_path} is not ready after {go_float(timeout)}s: {reason}",
                f"is multus-daemon running on this node? It listens on {socket_path}",
            )
        time.sleep(min(POLL_INTERVAL, left))


# --------------------------------------------------------------------------- result conversion

_REQUIRED, _POINTER, _V11 = 1, 2, 4  # always written / left out only if null / 1.1.0 only
_IFACE = (
    ("name", str, _REQUIRED),
    ("mac", str, 0),
    ("mtu", int, _V11),
    ("sandbox", str, 0),
    ("socketPath", str, _V11),
    ("pciID", str, _V11),
)
_IP = (("interface", int, _POINTER), ("address", str, _REQUIRED), ("gateway", str, 0))
_ROUTE = (
    ("dst", str, _REQUIRED),
    ("gw", str, 0),
    ("mtu", int, _V11),
    ("advmss", int, _V11),
    ("priority", int, _V11),
    ("table", int, _POINTER | _V11),
    ("scope", int, _POINTER | _V11),
)
_DNS = (("nameservers", list, 0), ("domain", str, 0), ("search", list, 0), ("options", list, 0))
_ZERO: dict[type, Any] = {str: "", int: 0, list: []}
_WANT = {str: "a string", int: "an integer", list: "a list of strings"}


def _bad_result(path: str, want: str) -> CniFailure:
    return CniFailure(ERR_INTERNAL, f"invalid result from multus-daemon: {path} must be {want}")


def _pick(src: Any, schema: Any, path: str, v11: bool) -> dict[str, Any]:
    """The fields of ``schema`` from ``src`` in schema order, left out as Go's omitempty does."""
    if not isinstance(src, dict):
        if src is not None:
            raise _bad_result(path, "an object")
        src = {}
    out: dict[str, Any] = {}
    for key, kind, flags in schema:
        value = src.get(key)
        if (flags & _V11 and not v11) or (value is None and not flags & _REQUIRED):
            continue
        if value is None:
            value = _ZERO[kind]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _bad_result(f"{path}.{key}", _WANT[kind])
        if kind is list and not all(isinstance(x, str) for x in value):
            raise _bad_result(f"{path}.{key}", _WANT[kind])
        if value != _ZERO[kind] or flags & (_REQUIRED | _POINTER):
            out[key] = value
    return out


def _items(src: dict[str, Any], key: str, schema: Any, v11: bool) -> list[dict[str, Any]]:
    value = src.get(key)
    if value is not None and not isinstance(value, list):
        raise _bad_result(key, "a list")
    return [_pick(x, schema, f"{key}[{i}]", v11) for i, x in enumerate(value or ())]


def _from_020(result: dict[str, Any]) -> dict[str, Any]:
    """A 0.1.0/0.2.0 result (``ip4``, ``ip6``) in the 1.x shape, as libcni converts it."""
    ips: list[Any] = []
    routes: list[Any] = []
    for key in ("ip4", "ip6"):
        ipc = _pick(result.get(key), (("ip", str, 0), ("gateway", str, 0)), key, False)
        if ipc:
            ips.append({"address": ipc.get("ip"), "gateway": ipc.get("gateway")})
            routes.extend((result.get(key) or {}).get("routes") or [])
    return {"ips": ips, "routes": routes, "dns": result.get("dns")}


def _family(address: str) -> str:
    return "6" if ":" in address else "4"


def convert_result(result: dict[str, Any], to_version: str) -> dict[str, Any]:
    """The daemon's result as a ``to_version`` result, ready for ``encode``.

    The daemon answers in 1.0.0/1.1.0; 0.x results are understood too. Going to 1.0.0 drops
    interface ``mtu``/``socketPath``/``pciID`` and route ``mtu``/``advmss``/``priority``/
    ``table``/``scope``; 0.3.0-0.4.0 add ``version`` to each address and always write ``dns``;
    0.1.0/0.2.0 keep the first address of each family with the routes of that family (code 1
    when there is no address at all).
    """
    if result.get("cniVersion") in ("0.1.0", "0.2.0"):
        result = _from_020(result)
    v11 = to_version == "1.1.0"
    ips = _items(result, "ips", _IP, v11)
    routes = _items(result, "routes", _ROUTE, v11)
    dns = _pick(result.get("dns"), _DNS, "dns", v11)
    out: dict[str, Any] = {"cniVersion": to_version}
    if to_version in ("0.1.0", "0.2.0"):
        return _to_020(out, ips, routes, dns)
    if to_version.startswith("0."):
        ips = [{"version": _family(ipc["address"]), **ipc} for ipc in ips]
    for key, value in (("interfaces", _items(result, "interfaces", _IFACE, v11)), ("ips", ips)):
        if value:
            out[key] = value
    if routes:
        out["routes"] = routes
    if dns or to_version.startswith("0."):  # 1.x omits an empty dns, 0.x always writes it
        out["dns"] = dns
    return out


def _to_020(
    out: dict[str, Any], ips: list[dict[str, Any]], routes: list[Any], dns: dict[str, Any]
) -> dict[str, Any]:
    first: dict[str, dict[str, Any]] = {}
    for ipc in ips:
        family = _family(ipc["address"])
        if family not in first:
            first[family] = {"ip": ipc["address"]}
            if ipc.get("gateway"):
                first[family]["gateway"] = ipc["gateway"]
    if not first:
        raise CniFailure(
            ERR_INCOMPATIBLE_VERSION,
            f"cannot convert a result without IP addresses to CNI version {out['cniVersion']}",
        )
    for route in routes:
        owner = first.get(_family(route["dst"]))
        if owner is not None:
            owner.setdefault("routes", []).append(route)
    for family in ("4", "6"):
        if family in first:
            out["ip" + family] = first[family]
    out["dns"] = dns
    return out


def decode_result(answer: bytes, to_version: str) -> dict[str, Any]:
    """The daemon's ADD answer ``{"Result": {...}}`` as a ``to_version`` result."""
    try:
        body = loads(answer.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        raise CniFailure(ERR_INTERNAL, f"invalid answer from multus-daemon: {exc}") from None
    result = go_field(body, "Result") if isinstance(body, dict) else None
    if not isinstance(result, dict):
        raise _bad_result("Result", "an object")
    return convert_result(result, to_version)


def print_result(result: dict[str, Any]) -> bytes:
    """What libcni prints: 4-space indent; keys sorted for 1.x (its ``MarshalJSON`` goes
    through a map), Go's struct order for 0.x."""
    return encode(result, indent=True, sort_keys=not result["cniVersion"].startswith("0."))


# --------------------------------------------------------------------------- the verbs


def daemon_error(status: int, body: bytes, socket_path: str) -> CniFailure:
    """The error for a non-200 answer: the daemon's CNI error JSON (in a 400, or the 503 of a
    daemon shutting down), or its text as code 999."""
    text = body.decode("utf-8", "replace")
    try:
        wire = loads(text)
    except ValueError:
        wire = None
    if status in (400, SHUTTING_DOWN) and isinstance(wire, dict):
        code, msg, details = (go_field(wire, k) for k in ("code", "msg", "details"))
        if isinstance(code, int) and not isinstance(code, bool):
            return CniFailure(
                code,
                msg if isinstance(msg, str) else "",
                details if isinstance(details, str) else "",
            )
    if status == 400 and text.strip():
        return CniFailure(ERR_INTERNAL, text.rstrip("\r\n"))
    return CniFailure(
        ERR_INTERNAL,
        f"multus-daemon at {socket_path} answered HTTP {status}: {text.strip() or '(no body)'}",
    )


def post_cni(settings: Settings, body: bytes) -> tuple[int, bytes]:
    """One ``POST /cni``: (status, body). ``NotConnected`` passes through (the caller may wait
    and try again); any other failure is the call's CNI error."""
    sock = settings.socket_path
    try:
        return http_post(sock, "/cni", body, settings.request_timeout)
    except NotConnected:
        raise
    except DaemonUnreachable as exc:
        raise CniFailure(
            ERR_TRY_AGAIN_LATER, f"CNI request to multus-daemon failed: {exc}"
        ) from None
    except ProtocolError as exc:
        raise CniFailure(ERR_INTERNAL, f"bad answer from multus-daemon at {sock}: {exc}") from None


def call_daemon(command: str, settings: Settings, body: bytes, log: Log) -> bytes | None:
    """POST the call to ``/cni``; the body of the 200 answer, None for a DEL on a node without
    multus-daemon.

    One connection when the daemon is up. Only when it is not there (nothing was sent) or
    answers 503 (shutting down: the request was not run) does the shim do what Go's shim does
    before every call: wait for ``/readyz`` (DEL after a failed connect: probe ``/healthz``
    once), then send the request again, once.
    """
    busy = False  # the daemon answered 503, rather than not being there
    try:
        status, answer = post_cni(settings, body)
    except NotConnected as exc:
        reason = str(exc)
    else:
        if status == 200:
            return answer
        if status != SHUTTING_DOWN:
            raise daemon_error(status, answer, settings.socket_path)
        busy, reason = True, f"/cni answered HTTP {status}"
    if log.enabled("debug"):
        log("debug", f"{VERBS[command]} (shim): {reason}; waiting for multus-daemon")
    if command != "DEL" or busy:  # a DEL sent during a restart waits for the next daemon too
        code = ERR_NOT_AVAILABLE if command == "STATUS" else ERR_TRY_AGAIN_LATER
        wait_ready(settings.socket_path, settings.ready_timeout, code)
    elif not _daemon_there_for_del(settings, log):
        return None
    try:
        status, answer = post_cni(settings, body)
    except NotConnected as exc:
        raise CniFailure(
            ERR_TRY_AGAIN_LATER, f"CNI request to multus-daemon failed: {exc}"
        ) from None
    if status != 200:
        raise daemon_error(status, answer, settings.socket_path)
    return answer


def socket_missing(path: str) -> bool:
    """True when nothing at all is at ``path``, not even a dead socket file."""
    try:
        posix.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _daemon_there_for_del(settings: Settings, log: Log) -> bool:
    """False when multus-daemon is not installed at all (DEL then succeeds); code 11 when it is
    installed but does not answer ``/healthz`` (the runtime retries the DEL)."""
    sock = settings.socket_path
    if socket_missing(sock):
        log(
            "error",
            f"CmdDel (shim): {sock} does not exist: multus-daemon is not installed on this node, "
            "so there is nothing to delete; reporting success",
        )
        return False
    reason = probe(sock, "/healthz", max(settings.ready_timeout, MIN_PROBE_TIMEOUT))
    if reason is not None:
        raise CniFailure(ERR_TRY_AGAIN_LATER, f"multus-daemon at {sock} is not reachable: {reason}")
    return True


def handle(command: str, env: dict[str, str], stdin: bytes, settings: Settings, log: Log) -> bytes:
    """Run one verb through the daemon; the bytes to print."""
    verb = VERBS[command]
    to_version = settings.result_version() if command == "ADD" else ""
    if log.enabled("debug"):
        log("debug", f"{verb} (shim): sending the request to {settings.socket_path}")
    answer = call_daemon(command, settings, cni_request_body(env, stdin), log)
    if command != "ADD" or answer is None:
        return b""
    result = decode_result(answer, to_version)
    if log.enabled("verbose"):
        log("verbose", f"{verb} (shim): {encode(result, sort_keys=True).decode()}")
    return print_result(result)


def run(env: dict[str, str], stdin: bytes) -> tuple[int, bytes]:
    """One CNI call: (exit status, bytes for stdout). Never raises for bad input or a bad
    daemon: everything becomes CNI error JSON."""
    command = env.get("CNI_COMMAND", "")
    log = Log()
    cni_version = ""
    try:
        conf = parse_config(stdin)
        version = go_field(conf, "cniVersion")
        cni_version = version if isinstance(version, str) else ""
        log.configure(conf)
        if command not in VERBS:
            raise CniFailure(ERR_INVALID_ENVIRONMENT, f"unknown CNI_COMMAND: {command}")
        return 0, handle(command, env, stdin, Settings(conf), log)
    except CniFailure as failure:
        error = failure
    except Exception as exc:  # the boundary: a bug still answers in CNI's shape
        error = CniFailure(ERR_INTERNAL, f"multus-shim internal error: {type(exc).__name__}: {exc}")
    log("error", f"{VERBS.get(command, 'Cmd')} (shim): {error.msg}")
    return 1, encode(error.to_wire(cni_version), indent=True)


def read_environment() -> dict[str, str]:
    """The environment exactly as the runtime passed it.

    Read from ``/proc/self/environ``: CPython edits its own environment at start-up (PEP 538
    adds ``LC_CTYPE=C.UTF-8`` under the C locale), and the daemon must see what the runtime
    sent, as Go's shim forwards it. Bytes that are not UTF-8 survive as surrogates.
    """
    try:
        with open("/proc/self/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except OSError:
        entries = [key + b"=" + value for key, value in posix.environ.items()]
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition(b"=")
        if sep:
            env[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return env


def version_info() -> bytes:
    """The answer to CNI_COMMAND=VERSION."""
    return encode({"cniVersion": CURRENT_VERSION, "supportedVersions": list(ALL_VERSIONS)})


def _write(data: bytes) -> None:
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):  # the runtime stopped listening
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["-v"], ["-version"], ["--version"]):
        _write(f"multus-shim: pymultus {VERSION}\n".encode())
        return 0
    env = read_environment()
    command = env.get("CNI_COMMAND", "")
    if not command:  # skel's "about" output
        _stderr(f"{ABOUT}\nCNI protocol versions supported: {', '.join(ALL_VERSIONS)}\n")
        return 0
    if command == "VERSION":
        _write(version_info())
        return 0
    try:
        status, out = run(env, sys.stdin.buffer.read() if sys.stdin is not None else b"")
    except BaseException as exc:  # even Ctrl-C must end in CNI's shape, not a traceback
        failure = CniFailure(ERR_INTERNAL, f"multus-shim interrupted: {type(exc).__name__}")
        status, out = 1, encode(failure.to_wire(""), indent=True)
    _write(out)
    return status


def leave(status: int) -> NoReturn:
    """End the process at once with ``status``, everything flushed. The interpreter's own
    clean-up frees every object one by one before the OS frees them all anyway: 1.5 ms of
    every call, skipped."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would be one more import
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    posix._exit(status)


if __name__ == "__main__":
    leave(main())
