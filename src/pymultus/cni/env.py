"""The plugin side of the CNI execution protocol (what ``skel`` is to Go plugins), plus the
name checks libcni applies on the runtime side.

Which ``CNI_*`` variable each verb needs lives in ONE table, ``REQUIRED``, taken from skel
(containernetworking/cni v1.3 ``pkg/skel/skel.go``). Every missing variable is reported in one
error, in the table's order, with skel's message, so a runtime author fixes them in one go.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from pymultus.cni import limits
from pymultus.cni.errors import (
    DecodeError,
    InvalidConfigError,
    InvalidEnvironmentError,
    UnknownContainerError,
)

VERBS: tuple[str, ...] = ("ADD", "CHECK", "DEL", "GC", "STATUS", "VERSION")

_ALWAYS = frozenset(VERBS)
_ATTACHMENT = frozenset({"ADD", "CHECK", "DEL"})

# (variable, verbs that require it). CNI_COMMAND is required whatever the command is.
REQUIRED: tuple[tuple[str, frozenset[str]], ...] = (
    ("CNI_COMMAND", _ALWAYS),
    ("CNI_CONTAINERID", _ATTACHMENT),
    ("CNI_NETNS", frozenset({"ADD", "CHECK"})),
    ("CNI_IFNAME", _ATTACHMENT),
    ("CNI_ARGS", frozenset()),
    ("CNI_PATH", frozenset({"ADD", "CHECK", "DEL", "GC", "STATUS"})),
    ("CNI_NETNS_OVERRIDE", frozenset()),
)

# libcni utils: cniValidNameChars. fullmatch, because Python's "$" also matches before "\n".
_VALID_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
MAX_IFNAME_BYTES = 15  # IFNAMSIZ (16) minus the NUL


@dataclass(frozen=True)
class CmdArgs:
    """Everything a runtime handed one plugin run: the env variables and the stdin bytes.

    ``path`` is ``CNI_PATH`` split on ``:`` (empty entries dropped). ``stdin`` is empty for
    VERSION, whose stdin skel never reads. ``netns_override`` is ``CNI_NETNS_OVERRIDE`` as given
    (skel skips its "plugin runs in the target netns" check when it is ``1``/``true``).
    """

    command: str
    container_id: str
    netns: str
    ifname: str
    args: str
    path: tuple[str, ...]
    stdin: bytes
    netns_override: str = ""


def missing_variables(environ: Mapping[str, str], command: str) -> list[str]:
    """The variables ``command`` needs that are absent or empty, in the table's order."""
    return [
        name
        for name, verbs in REQUIRED
        if not environ.get(name) and (command in verbs or name == "CNI_COMMAND")
    ]


def parse_plugin_env(environ: Mapping[str, str], stdin: bytes) -> CmdArgs:
    """Read the plugin's environment as skel does.

    Raises ``InvalidEnvironmentError`` (code 4) naming every missing variable at once, or an
    unknown ``CNI_COMMAND``; then checks the container id and interface name of the verbs that
    need them with libcni's rules, and (all verbs but VERSION) that stdin is a JSON object with
    a valid network ``name`` (code 6 when it is not JSON, 7 for a missing or bad name).
    """
    command = environ.get("CNI_COMMAND", "")
    missing = missing_variables(environ, command)
    if missing:
        raise InvalidEnvironmentError(
            f"required env variables [{','.join(missing)}] missing", field=missing[0]
        )
    if command not in VERBS:
        raise InvalidEnvironmentError(f"unknown CNI_COMMAND: {command}", field="CNI_COMMAND")
    args = CmdArgs(
        command=command,
        container_id=environ.get("CNI_CONTAINERID", ""),
        netns=environ.get("CNI_NETNS", ""),
        ifname=environ.get("CNI_IFNAME", ""),
        args=environ.get("CNI_ARGS", ""),
        path=split_path(environ.get("CNI_PATH", "")),
        stdin=b"" if command == "VERSION" else stdin,
        netns_override=environ.get("CNI_NETNS_OVERRIDE", ""),
    )
    if command in _ATTACHMENT:
        validate_container_id(args.container_id)
        validate_ifname(args.ifname)
    if command != "VERSION":
        validate_network_name(config_name(stdin))
    return args


class _NamedConfig(msgspec.Struct):
    name: str = ""


_named_decoder = msgspec.json.Decoder(_NamedConfig)


def config_name(stdin: bytes) -> str:
    """The ``name`` of the network config on stdin; skel refuses to run without a valid one."""
    limits.check_json(stdin, field="stdin")
    try:
        return _named_decoder.decode(stdin).name
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise DecodeError(f"error unmarshall network config: {exc}", field="stdin") from exc


def split_path(value: str) -> tuple[str, ...]:
    """``CNI_PATH`` as a tuple of directories, empty entries dropped."""
    return tuple(p for p in value.split(os.pathsep) if p)


def validate_container_id(value: str, *, field: str = "CNI_CONTAINERID") -> str:
    """libcni ``ValidateContainerID``: empty is code 3 (unknown container), bad chars code 4."""
    if not value:
        raise UnknownContainerError("missing containerID", field=field)
    if not _VALID_NAME.fullmatch(value):
        raise InvalidEnvironmentError(
            "invalid characters in containerID", details=value, field=field
        )
    return value


def validate_network_name(value: str, *, field: str = "name") -> str:
    """libcni ``ValidateNetworkName``: a network name must match ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``
    (it becomes part of cache file names)."""
    if not value:
        raise InvalidConfigError("missing network name", field=field)
    if not _VALID_NAME.fullmatch(value):
        raise InvalidConfigError(
            "invalid characters found in network name", details=value, field=field
        )
    return value


def validate_ifname(value: str, *, field: str = "CNI_IFNAME") -> str:
    """libcni ``ValidateInterfaceName``: the kernel's rules for a link name (net/core/dev.c)."""
    if not value:
        raise InvalidEnvironmentError("interface name is empty", field=field)
    try:
        encoded = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from JSON ("\ud800"): no kernel name
        raise InvalidEnvironmentError(
            "interface name is not valid UTF-8", details=repr(value), field=field
        ) from None
    if len(encoded) > MAX_IFNAME_BYTES:
        raise InvalidEnvironmentError(
            "interface name is too long",
            details=f"interface name should be less than {MAX_IFNAME_BYTES + 1} characters",
            field=field,
        )
    if value in (".", ".."):
        raise InvalidEnvironmentError("interface name is . or ..", field=field)
    if any(ch in "/:" or ch.isspace() for ch in value):
        raise InvalidEnvironmentError(
            "interface name contains / or : or whitespace characters", details=value, field=field
        )
    return value
