"""The lean path's values: plain classes with slots (no dataclasses, no msgspec)."""

from __future__ import annotations

from pymultus.plugin.lean.errors import Unhandled

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Delegate:
    """``core.delegate.Delegate`` for the lean path: the exact config bytes, their decoded
    form, and what the pod asked for. ``name`` is the status name (``ns/nad`` for a NAD, the
    CNI name for a file); ``net_name`` the CNI ``name`` inside the config (what libcni caches
    by); ``default_route`` None is "no request".

    ``run_raw`` is what libcni runs, when that is not ``raw``: a clusterNetwork file is cached
    re-marshalled (``raw``, keys sorted, ``list_only``) but run as the file's bytes (a
    ``.conflist``) or as libcni's one-plugin list around a ``.conf``."""

    __slots__ = (
        "conf",
        "default_route",
        "ifname_request",
        "ip_requests",
        "is_list",
        "list_only",
        "mac_request",
        "name",
        "net_name",
        "raw",
        "run_raw",
    )

    def __init__(
        self,
        raw: bytes,
        conf: dict[str, Any],
        name: str,
        *,
        is_list: bool,
        list_only: bool = False,
        ifname_request: str = "",
        mac_request: str = "",
        ip_requests: tuple[str, ...] = (),
        default_route: tuple[str, ...] | None = None,
        run_raw: bytes | None = None,
    ) -> None:
        self.raw = raw
        self.run_raw = raw if run_raw is None else run_raw
        self.conf = conf
        self.name = name
        self.net_name: str = conf.get("name", "")
        self.is_list = is_list
        self.list_only = list_only
        self.ifname_request = ifname_request
        self.mac_request = mac_request
        self.ip_requests = ip_requests
        self.default_route = default_route


#: ``cni.limits.MAX_ARGS_BYTES``
MAX_ARGS_BYTES = 128 << 10


def cni_args(value: str) -> list[tuple[str, str]]:
    """``cni.args.parse_cni_args``: ``(key, value)`` pairs, stripped, empty segments skipped;
    ``Unhandled`` where it reports an error."""
    if len(value) > MAX_ARGS_BYTES:
        raise Unhandled("CNI_ARGS over the size limit")
    pairs: list[tuple[str, str]] = []
    for segment in value.split(";"):
        if not segment.strip():
            continue
        key, sep, val = segment.partition("=")
        if not sep or not key.strip():
            raise Unhandled("a CNI_ARGS pair the full path reports on")
        pairs.append((key.strip(), val.strip()))
    return pairs


class Call:
    """The CNI call: the runtime's variables and the pod it names (CNI_ARGS)."""

    __slots__ = (
        "args",
        "command",
        "container_id",
        "ifname",
        "netns",
        "pairs",
        "path",
        "pod_name",
        "pod_namespace",
        "pod_uid",
    )

    def __init__(self, environ: dict[str, str]) -> None:
        self.command = environ.get("CNI_COMMAND", "")
        self.container_id = environ.get("CNI_CONTAINERID", "")
        self.netns = environ.get("CNI_NETNS", "")
        self.ifname = environ.get("CNI_IFNAME", "")
        self.args = environ.get("CNI_ARGS", "")
        self.path = environ.get("CNI_PATH", "")
        #: ``Request.runtime_args``: CNI_ARGS as the full path reads them.
        self.pairs = cni_args(self.args)
        found = dict(self.pairs)
        self.pod_namespace = found.get("K8S_POD_NAMESPACE", "")
        self.pod_name = found.get("K8S_POD_NAME", "")
        self.pod_uid = found.get("K8S_POD_UID", "")
