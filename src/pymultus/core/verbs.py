"""CNI CHECK, STATUS and GC (behaviour §2 rows 3, 5, 6 and §5.5)."""

from __future__ import annotations

import os
from dataclasses import replace

import msgspec

from pymultus.cni import cache, netconf
from pymultus.cni.chain import Attachment
from pymultus.cni.env import validate_container_id
from pymultus.cni.errors import CniError, IncompatibleVersionError, prefixed
from pymultus.cni.netconf import NetConfList
from pymultus.cni.version import at_least
from pymultus.core import delegates, resolve, scratch
from pymultus.core.add import wait_for_readiness
from pymultus.core.delegate import go_netconf
from pymultus.core.delete import cmd_del
from pymultus.core.deps import Deps
from pymultus.core.request import K8sArgs, Request
from pymultus.core.runtime import ifname_for, runtime_conf


def cmd_check(req: Request, deps: Deps) -> None:
    """CHECK every attachment the ADD recorded in the delegate cache (Go checks only the
    static ``delegates`` of the config and ignores clusterNetwork and annotation networks);
    without a cache, the static delegates, as Go does. A delegate whose own cniVersion
    predates CHECK (0.4.0) is skipped: it cannot be checked, and that is no fault of the pod."""
    require_version(req, "0.4.0")
    cached = scratch.load(req.conf.cni_dir, req.cmd.container_id)
    found = (
        cached
        if cached is not None
        else [resolve.static_delegate(raw, i) for i, raw in enumerate(req.conf.delegates)]
    )
    cni = delegates.cni_for(req, deps)
    for index, d in enumerate(found):
        ifname = ifname_for(d, index, req)
        rt = runtime_conf(req, d, ifname, is_master=index == 0, devinfo_root=deps.devinfo_root)
        net = resolve.net_of(d)
        if not at_least(net.cni_version, "0.4.0"):
            continue
        try:
            delegates.check(cni, net, rt)
        except CniError as exc:
            name = delegates.network_name(net)
            raise prefixed(exc, f'Multus: {req.who}: error checking network "{name}": ') from exc


def require_version(req: Request, floor: str) -> None:
    """skel's floor for a verb (CHECK 0.4.0, STATUS and GC 1.1.0): code 1 below it."""
    if not at_least(req.conf.cni_version, floor):
        raise IncompatibleVersionError(
            f"config version does not allow {req.cmd.command}",
            details=f"config version {req.conf.cni_version or '0.1.0'} < {floor}",
            field="cniVersion",
        )


def _cluster_network(req: Request, deps: Deps) -> NetConfList:
    master = resolve.plan_master(req, deps)
    net = master.net
    return net if isinstance(net, NetConfList) else netconf.conflist_from_conf(net)


def cmd_status(req: Request, deps: Deps) -> None:
    """STATUS of the cluster network only; its error code reaches the runtime unchanged."""
    require_version(req, "1.1.0")
    wait_for_readiness(req, deps)
    delegates.cni_for(req, deps).status_network_list(_cluster_network(req, deps))


def cmd_gc(req: Request, deps: Deps) -> None:
    """GC: DEL every delegate-cache entry whose container the runtime no longer lists (Go
    never cleans them), then libcni GC of the cluster network with the runtime's
    valid-attachments list (Go substitutes its own cache, so nothing stale is ever found).

    A GC request without ``cni.dev/valid-attachments`` (not what the 1.1 spec allows) is
    treated as Go treats every GC: the attachments in our own caches are the valid ones, so
    nothing is deleted and the plugins learn what is in use.
    """
    require_version(req, "1.1.0")
    wait_for_readiness(req, deps)
    listed = _listed_attachments(req)
    if listed is None:
        valid = _cached_attachments(req.conf.cni_dir)
        errors: list[CniError] = []
    else:
        valid = listed
        errors = _gc_delegate_caches(req, deps, {a.container_id for a in valid})
    try:
        delegates.cni_for(req, deps).gc_network_list(_cluster_network(req, deps), valid)
    except CniError as exc:
        errors.append(exc)
    if errors:
        raise errors[0]


def _listed_attachments(req: Request) -> list[Attachment] | None:
    """The runtime's valid attachments; None when the request does not carry the key."""
    obj = netconf.decode_object(req.cmd.stdin)
    found, value = netconf.go_field(obj, "cni.dev/valid-attachments")
    if not found or value is None:
        return None
    return [Attachment(cid, ifname) for cid, ifname in go_netconf(obj).valid_attachments]


def _cached_attachments(cni_dir: str) -> list[Attachment]:
    """Go's ``gatherValidAttachmentsFromCache``: every attachment libcni has cached."""
    return [Attachment(e.container_id, e.ifname) for e in cache.list_attachments(cni_dir)]


def _gc_delegate_caches(req: Request, deps: Deps, live: set[str]) -> list[CniError]:
    errors: list[CniError] = []
    for cid in _cached_container_ids(req.conf.cni_dir):
        if cid in live:
            continue
        ifname = _master_ifname(req.conf.cni_dir, cid)
        cmd = replace(req.cmd, command="DEL", container_id=cid, netns="", ifname=ifname)
        stale = Request(cmd=cmd, conf=req.conf, runtime_args=(), k8s=K8sArgs())
        try:
            cmd_del(stale, _cache_only(deps))
        except CniError as exc:
            errors.append(exc)
    return errors


def _cache_only(deps: Deps) -> Deps:
    """``deps`` without pods, NADs, status or events: a stale sandbox is deleted from the
    caches alone."""
    return msgspec.structs.replace(deps, pods=None, nads=None, status=None, events=None)


def _master_ifname(cni_dir: str, container_id: str) -> str:
    """The CNI_IFNAME the ADD had: the interface libcni cached for the first delegate's
    network (``eth0`` when that cannot be told)."""
    try:
        found = scratch.load(cni_dir, container_id) or []
        network = delegates.network_name(resolve.net_of(found[0])) if found else ""
        entries = cache.list_attachments(cni_dir, network, container_id=container_id)
    except CniError:
        return "eth0"
    return entries[0].ifname if network and entries else "eth0"


def _cached_container_ids(cni_dir: str) -> list[str]:
    """Names of the delegate cache files (skipping temp files and anything that is not a
    container id, so a stray file never makes GC fail)."""
    try:
        names = os.listdir(cni_dir)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _is_container_id(n) and os.path.isfile(f"{cni_dir}/{n}"))


def _is_container_id(name: str) -> bool:
    try:
        validate_container_id(name)
    except CniError:
        return False
    return True
