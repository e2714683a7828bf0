"""What is attached on this node, read from the caches alone (no API server needed).

The delegate cache ``<cniDir>/<containerID>`` says which networks a sandbox has; libcni's
result cache ``<cniDir>/results/<net>-<cid>-<ifname>`` holds each attachment's pod identity
(CNI_ARGS), netns and result. ``pymultus status`` and ``pymultus cache gc`` read these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymultus.cni import cache
from pymultus.cni.convert import to_current
from pymultus.cni.env import CmdArgs
from pymultus.cni.errors import CniError, DecodeError
from pymultus.config.multus import MultusConf
from pymultus.core import scratch
from pymultus.core.delete import cmd_del
from pymultus.core.deps import Deps
from pymultus.core.request import K8sArgs, Request
from pymultus.k8s.files import remove_record
from pymultus.k8s.refs import PodRef


@dataclass(frozen=True)
class AttachmentInfo:
    container_id: str
    pod: str  # "ns/name", "" when CNI_ARGS had none
    ifname: str
    network: str
    ips: tuple[str, ...] = ()
    mac: str = ""
    netns: str = ""


@dataclass(frozen=True)
class Sandbox:
    container_id: str
    networks: tuple[str, ...]  # delegate names in order ("" when the cache is unreadable)
    attachments: tuple[AttachmentInfo, ...] = field(default_factory=tuple)

    @property
    def pod(self) -> str:
        return next((a.pod for a in self.attachments if a.pod), "")

    @property
    def netns(self) -> str:
        return next((a.netns for a in self.attachments if a.netns), "")

    def is_stale(self) -> bool:
        """Its namespace is gone (a runtime that lost track of the sandbox never sent DEL)."""
        return bool(self.netns) and not os.path.exists(self.netns)


def _pod_of(args: Sequence[tuple[str, str]]) -> str:
    found = dict(args)
    ns, name = found.get("K8S_POD_NAMESPACE", ""), found.get("K8S_POD_NAME", "")
    return f"{ns}/{name}" if name else ""


def _info(entry: cache.CacheEntry) -> AttachmentInfo:
    ips: tuple[str, ...] = ()
    mac = ""
    try:
        result = entry.typed_result()
    except CniError:
        result = None
    if result is not None:
        current = to_current(result)
        ips = tuple(ip.address for ip in current.ips)
        mac = next((i.mac for i in current.interfaces if i.name == entry.ifname), "")
    return AttachmentInfo(
        container_id=entry.container_id,
        pod=_pod_of(entry.cni_args),
        ifname=entry.ifname,
        network=entry.network_name,
        ips=ips,
        mac=mac,
        netns=entry.netns,
    )


def sandboxes(cni_dir: str) -> list[Sandbox]:
    """Every sandbox with a delegate cache file or a libcni result in ``cni_dir``. One with
    results only (its delegate cache was lost) has no ``networks``; DEL falls back to the
    results for it."""
    by_cid: dict[str, list[AttachmentInfo]] = {}
    for entry in cache.list_attachments(cni_dir):
        by_cid.setdefault(entry.container_id, []).append(_info(entry))
    cached = set(_container_ids(cni_dir))
    return [
        Sandbox(cid, _networks(cni_dir, cid) if cid in cached else (), tuple(by_cid.get(cid, ())))
        for cid in sorted(cached | by_cid.keys())
    ]


def _networks(cni_dir: str, cid: str) -> tuple[str, ...]:
    """The delegate names of the sandbox's cache, in order (``("",)`` when unreadable)."""
    try:
        return tuple(d.name for d in scratch.load(cni_dir, cid) or [])
    except (DecodeError, CniError):
        return ("",)


def _container_ids(cni_dir: str) -> list[str]:
    try:
        names = os.listdir(cni_dir)
    except FileNotFoundError:
        return []
    return sorted(
        n for n in names if not n.startswith(".") and os.path.isfile(os.path.join(cni_dir, n))
    )


def collect_stale(
    cni_dir: str, bin_dirs: Sequence[str], *, dry_run: bool, status_dir: str = ""
) -> list[tuple[Sandbox, CniError | None]]:
    """DEL every sandbox whose network namespace is gone (releasing its IP allocations, as
    the runtime's DEL would have), then drop its caches and, in standalone mode
    (``status_dir``), the network-status file it wrote. Returns each stale sandbox with the
    error its DEL gave, if any."""
    conf = MultusConf(raw=b"{}", name="pymultus-cache-gc", cni_dir=cni_dir, bin_dir=bin_dirs[0])
    done: list[tuple[Sandbox, CniError | None]] = []
    for box in sandboxes(cni_dir):
        if not box.is_stale():
            continue
        error: CniError | None = None
        if not dry_run:
            cmd = CmdArgs("DEL", box.container_id, "", "eth0", "", tuple(bin_dirs), b"")
            try:
                cmd_del(Request(cmd, conf, (), K8sArgs()), Deps())
                _forget_status(status_dir, box)
            except CniError as exc:
                error = exc
        done.append((box, error))
    return done


def _forget_status(status_dir: str, box: Sandbox) -> None:
    namespace, _, name = box.pod.partition("/")
    if status_dir and name:
        remove_record(status_dir, PodRef(namespace, name), container_id=box.container_id)
