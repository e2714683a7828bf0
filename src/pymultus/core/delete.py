"""CNI DEL: release everything ADD attached; idempotent; never loses track of an attachment.

Where the delegates come from, in order: the delegate cache ``<cniDir>/<containerID>``; if it
is missing or corrupt and the pod still exists, the pod's current networks; and in every case,
afterwards, whatever libcni's result cache still records for this container (each entry holds
the exact config, interface, CNI_ARGS and capability args of its ADD). Go Multus returns
success without calling any delegate when the cache is missing and the pod is gone, or when the
cache is corrupt, and leaks the IP allocations (issues #1087, #948).

Each attachment's device-info file goes too (row 31), whether its DEL succeeded or not. DEL
does not wait for the readiness indicator file: it only warns when it is absent (row 35).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from pymultus.cni import cache, netconf
from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.errors import CniError, DecodeError, rebuild
from pymultus.core import delegates, record, resolve, scratch
from pymultus.core.delegate import Delegate
from pymultus.core.deps import Deps
from pymultus.core.pods import pod_for_del
from pymultus.core.request import Request
from pymultus.core.runtime import device_info_file, ifname_for, runtime_conf
from pymultus.k8s.devinfo_files import CNI_SUBDIR, remove_cni_device_info

log = logging.getLogger(__name__)


def cmd_del(req: Request, deps: Deps) -> None:
    _warn_if_not_ready(req)
    cni = delegates.cni_for(req, deps)
    tried: set[tuple[str, str]] = set()
    errors = _del_delegates(cni, req, deps, _delegates_for_del(req, deps), tried)
    errors += _del_leftovers(cni, req, deps, tried)
    if errors and req.conf.retry_delete_on_error:
        raise _aggregate(errors)
    scratch.remove(req.conf.cni_dir, req.cmd.container_id)
    record.remove(req.conf.cni_dir, req.cmd.container_id)
    if errors:
        raise _aggregate(errors)


def _warn_if_not_ready(req: Request) -> None:
    path = req.conf.readiness_indicator_file
    if path and not os.path.exists(path):
        log.warning("%s: readiness indicator file %s is absent; deleting anyway", req.who, path)


def _delegates_for_del(req: Request, deps: Deps) -> list[Delegate]:
    try:
        cached = scratch.load(req.conf.cni_dir, req.cmd.container_id)
    except DecodeError:
        cached = None  # corrupt: libcni's result cache still knows every attachment
    if cached is not None:
        return cached
    pod = pod_for_del(req, deps)
    if pod is None:
        return []
    try:
        return [p.delegate for p in resolve.plan(req, deps, pod)]
    except CniError as exc:  # a NAD or the annotation is bad: the cluster network at least
        log.warning(
            "%s: DEL without a delegate cache cannot use the pod's networks: %s", req.who, exc
        )
    try:
        return [resolve.plan_master(req, deps).delegate]
    except CniError:
        return []


def _del_delegates(
    cni: CNIConfig,
    req: Request,
    deps: Deps,
    found: Sequence[Delegate],
    tried: set[tuple[str, str]],
) -> list[CniError]:
    """DEL in reverse order, going on past failures (row 2)."""
    errors: list[CniError] = []
    for index in reversed(range(len(found))):
        d = found[index]
        ifname = ifname_for(d, index, req)
        rt = runtime_conf(req, d, ifname, is_master=index == 0, devinfo_root=deps.devinfo_root)
        try:
            net = resolve.net_of(d)
            tried.add((delegates.network_name(net), rt.ifname))
            delegates.delete(cni, net, rt)
            log.info("DEL of network %s (%s) on %s succeeded", net.name, d.name, ifname)
        except CniError as exc:
            errors.append(exc)
        if d.device_id:
            remove_cni_device_info(device_info_file(rt))
    return errors


def _forget_device_info(path: str, deps: Deps) -> None:
    """Remove the device-info file a libcni cache entry names, if it is one of ours (the
    entry's capability args may also hold a path the runtime chose)."""
    if path and os.path.dirname(path) == os.path.join(deps.devinfo_root, CNI_SUBDIR):
        remove_cni_device_info(path)


def _del_leftovers(
    cni: CNIConfig, req: Request, deps: Deps, tried: set[tuple[str, str]]
) -> list[CniError]:
    """Attachments libcni still has cached for this container that no DEL above covered: DEL
    each with what its ADD used, so nothing that was attached is ever forgotten."""
    errors: list[CniError] = []
    for entry in cache.list_attachments(cni.cache_dir, container_id=req.cmd.container_id):
        if (entry.network_name, entry.ifname) in tried:
            continue  # its DEL above failed and kept the entry; that error is already counted
        rt = RuntimeConf(
            container_id=entry.container_id,
            netns=req.cmd.netns,
            ifname=entry.ifname,
            args=entry.cni_args,
            capability_args=entry.capability_args,
        )
        try:
            delegates.delete(cni, netconf.load_any(entry.config), rt)
        except CniError as exc:
            errors.append(exc)
        _forget_device_info(device_info_file(rt), deps)
    return errors


def _aggregate(errors: Sequence[CniError]) -> CniError:
    """One error for several failed DELs; the first one's code reaches the runtime."""
    if len(errors) == 1:
        return errors[0]
    first = errors[0]
    return rebuild(first, "errors: " + " / ".join(e.msg for e in errors))
