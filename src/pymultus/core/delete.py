"""CNI DEL: release everything ADD attached; idempotent; never loses track of an attachment.

Where the delegates come from, in order: the delegate cache ``<cniDir>/<containerID>``; if it
is missing or corrupt and the pod still exists, the pod's current networks; and in every case,
afterwards, whatever libcni's result cache still records for this container (each entry holds
the exact config, interface, CNI_ARGS and capability args of its ADD). Go Multus returns
success without calling any delegate when the cache is missing and the pod is gone, or when the
cache is corrupt, and leaks the IP allocations (issues #1087, #948).
"""

from __future__ import annotations

from collections.abc import Sequence

from pymultus.cni import cache, netconf
from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.errors import CniError, DecodeError, rebuild
from pymultus.core import delegates, resolve, scratch
from pymultus.core.delegate import Delegate
from pymultus.core.deps import Deps
from pymultus.core.pods import pod_for_del
from pymultus.core.request import Request
from pymultus.core.runtime import ifname_for, runtime_conf


def cmd_del(req: Request, deps: Deps) -> None:
    cni = delegates.cni_for(req, deps)
    tried: set[tuple[str, str]] = set()
    errors = _del_delegates(cni, req, _delegates_for_del(req, deps), tried)
    errors += _del_leftovers(cni, req, tried)
    if errors and req.conf.retry_delete_on_error:
        raise _aggregate(errors)
    scratch.remove(req.conf.cni_dir, req.cmd.container_id)
    if errors:
        raise _aggregate(errors)


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
    except CniError:
        pass  # a NAD or the annotation went bad since ADD: the cluster network at least
    try:
        return [resolve.plan_master(req, deps).delegate]
    except CniError:
        return []


def _del_delegates(
    cni: CNIConfig, req: Request, found: Sequence[Delegate], tried: set[tuple[str, str]]
) -> list[CniError]:
    """DEL in reverse order, going on past failures (row 2)."""
    errors: list[CniError] = []
    for index in reversed(range(len(found))):
        d = found[index]
        rt = runtime_conf(req, d, ifname_for(d, index, req), is_master=index == 0)
        try:
            net = resolve.net_of(d)
            tried.add((delegates.network_name(net), rt.ifname))
            delegates.delete(cni, net, rt)
        except CniError as exc:
            errors.append(exc)
    return errors


def _del_leftovers(cni: CNIConfig, req: Request, tried: set[tuple[str, str]]) -> list[CniError]:
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
    return errors


def _aggregate(errors: Sequence[CniError]) -> CniError:
    """One error for several failed DELs; the first one's code reaches the runtime."""
    if len(errors) == 1:
        return errors[0]
    first = errors[0]
    return rebuild(first, "errors: " + " / ".join(e.msg for e in errors))
