"""cnitool's behaviour as a library: run one CNI network on a network namespace.

``pymultus cni add|check|del|status|gc NETNAME NETNS`` reads the same environment as
containernetworking's ``cnitool``: ``NETCONFPATH`` (default ``/etc/cni/net.d``), ``CNI_PATH``,
``CNI_ARGS``, ``CAP_ARGS`` (JSON capability arguments) and ``CNI_IFNAME`` (default ``eth0``).
The container id is cnitool's: ``cnitool-`` + the first 10 bytes of SHA-512 of the absolute
netns path, in hex, so a DEL from either tool finds the attachment the other one made.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from pymultus.cni import limits, netconf
from pymultus.cni.args import parse_cni_args
from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.convert import AnyResult
from pymultus.cni.errors import InvalidConfigError, InvalidEnvironmentError

DEFAULT_NETCONFPATH = "/etc/cni/net.d"
VERBS = ("add", "check", "del", "status", "gc")


@dataclass(frozen=True)
class ToolEnv:
    """What cnitool reads from its environment."""

    netconfpath: str
    cni_path: tuple[str, ...]
    args: tuple[tuple[str, str], ...]
    capability_args: Mapping[str, Any]
    ifname: str
    cache_dir: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ToolEnv:
        return cls(
            netconfpath=environ.get("NETCONFPATH") or DEFAULT_NETCONFPATH,
            cni_path=tuple(p for p in environ.get("CNI_PATH", "").split(os.pathsep) if p),
            args=tuple(parse_cni_args(environ.get("CNI_ARGS", ""))),
            capability_args=_capability_args(environ.get("CAP_ARGS", "")),
            ifname=environ.get("CNI_IFNAME", "eth0"),
            cache_dir=environ.get("CNI_CACHE_DIR") or "/var/lib/cni",
        )


def _capability_args(value: str) -> Mapping[str, Any]:
    if not value:
        return {}
    limits.check_json(value, field="CAP_ARGS", max_bytes=limits.MAX_ARGS_BYTES)
    try:
        parsed = msgspec.json.decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidEnvironmentError(
            f"CAP_ARGS is not valid JSON: {exc}", field="CAP_ARGS"
        ) from exc
    if not isinstance(parsed, dict):
        raise InvalidEnvironmentError("CAP_ARGS must be a JSON object", field="CAP_ARGS")
    return parsed


def container_id_for(netns: str) -> str:
    """cnitool's container id for a netns path."""
    digest = hashlib.sha512(os.path.abspath(netns).encode()).hexdigest()
    return f"cnitool-{digest[:20]}"


def load_network(netconfpath: str, name: str) -> netconf.NetConfList:
    """libcni ``LoadConfList``: a ``.conflist`` named ``name`` first, then a ``.conf``/``.json``."""
    lists = netconf.files_in_dir(netconfpath, (".conflist",))
    singles = netconf.files_in_dir(netconfpath, (".conf", ".json"))
    for path in [*lists, *singles]:
        net = netconf.conflist_from_file(path)
        if net.name == name:
            return net
    raise InvalidConfigError(
        f'no net configuration with name "{name}" in {netconfpath}',
        field="NETNAME",
        path=netconfpath,
    )


def run(verb: str, name: str, netns: str, env: ToolEnv) -> AnyResult | None:
    """Run one cnitool verb; returns the ADD result, None for the other verbs."""
    net = load_network(env.netconfpath, name)
    cni = CNIConfig(env.cni_path, cache_dir=env.cache_dir)
    abs_netns = os.path.abspath(netns)
    rt = RuntimeConf(
        container_id=container_id_for(abs_netns),
        netns=abs_netns,
        ifname=env.ifname,
        args=env.args,
        capability_args=env.capability_args,
    )
    if verb == "add":
        return cni.add_network_list(net, rt)
    if verb == "check":
        cni.check_network_list(net, rt)
    elif verb == "del":
        cni.del_network_list(net, rt)
    elif verb == "status":
        cni.status_network_list(net)
    elif verb == "gc":
        cni.gc_network_list(net, [])
    else:
        raise InvalidConfigError(f"unknown verb {verb!r}; one of {', '.join(VERBS)}", field="verb")
    return None
