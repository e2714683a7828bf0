"""ADD, the lean way: ``core.add.cmd_add`` for the pods ``lean.resolve`` plans.

Steps: readiness file present → the pod (UID as the runtime says) → every delegate planned and
checked, every interface name free → delegate cache → delegates in order → network-status →
the cluster network's result, printed in the config's version; the AddedInterface events are
kept for the child that sends them after the answer. Everything up to the delegate cache may
hand over to the full path (``Unhandled``); after it, a failure rolls back what was attached,
in reverse, and removes the cache when every rollback succeeded, as the full path does.
"""

from __future__ import annotations

from pymultus.plugin.lean import chain, netns, output, resolve, scratch, status
from pymultus.plugin.lean import oslite as os  # posix alone: see oslite
from pymultus.plugin.lean.errors import LeanError, Unhandled
from pymultus.plugin.lean.request import PLUGIN_TIMEOUT, search_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pymultus.plugin.lean.kube import Api
    from pymultus.plugin.lean.model import Call, Delegate
    from pymultus.plugin.lean.prefetch import Prefetch
    from pymultus.plugin.lean.request import Conf

STATUS = "k8s.v1.cni.cncf.io/network-status"


def who(call: Call) -> str:
    """``Request.who``: ``[ns/pod/uid]``."""
    return f"[{call.pod_namespace}/{call.pod_name}/{call.pod_uid}]"


def cmd_add(call: Call, conf: Conf, api: Api, pod_read: Prefetch) -> bytes:
    """The printed result; the AddedInterface events are kept in ``api`` for afterwards.
    ``pod_read`` is the pod's GET, started before (it overlaps the cluster network's load)."""
    if conf.readiness and not os.path.exists(conf.readiness):
        raise Unhandled("waiting for the readiness indicator file")
    bin_path = search_path(call, conf)
    master = resolve.master(conf)
    _check(master, bin_path)
    pod = _pod(call, pod_read.result())
    delegates = [master, *resolve.statics(conf), *resolve.secondaries(conf, pod, api.get_nad)]
    for d in delegates[1:]:
        _check(d, bin_path)
    ifnames = _ifnames(call, delegates)
    runtimes = [
        chain.runtime_for(call, d, ifname, is_master=i == 0, conf=conf)
        for i, (d, ifname) in enumerate(zip(delegates, ifnames, strict=True))
    ]
    status.status_uid(pod)  # the status write's precondition, read before anything runs
    scratch.check_container_id(call.container_id)
    cache = scratch.encode_delegates(delegates)  # each delegate's check, encoded once
    scratch.write(conf.cni_dir, call.container_id, cache)
    attached: list[tuple[Delegate, chain.Runtime]] = []
    results: list[dict[str, Any]] = []
    try:
        for d, rt in zip(delegates, runtimes, strict=True):
            results.append(_attach_one(call, d, rt, bin_path, conf.cni_dir))
            attached.append((d, rt))
        _write_status(call, api, pod, attached, results)
    except BaseException:
        _rollback(call, conf, attached)
        raise
    ns, name, uid = _identity(pod)
    for (d, rt), result in zip(attached, results, strict=True):
        message = status.added_message(result, rt.ifname, d.name)
        if message:
            api.keep_event(ns, name, uid, type_="Normal", reason="AddedInterface", message=message)
    return output.print_result(results[0], conf.cni_version)


def _check(d: Delegate, bin_path: list[str]) -> None:
    """Everything libcni will need of ``d``, or ``Unhandled`` (the delegate cache checks its
    entries as it encodes them, before anything is written)."""
    chain.check(d, bin_path)


def _identity(pod: dict[str, Any]) -> tuple[str, str, str]:
    """The pod's namespace, name and UID, as the status write and the events name it."""
    meta = pod.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")


def _pod(call: Call, pod: dict[str, Any] | None) -> dict[str, Any]:
    if pod is None:
        raise Unhandled("the pod is gone (the full path answers with an empty result)")
    meta = pod.get("metadata") or {}
    uid = meta.get("uid", "")
    if call.pod_uid and uid not in ("", call.pod_uid):
        raise Unhandled("a pod UID that differs (static pod or an error: the full path's)")
    return pod


def _ifnames(call: Call, delegates: list[Delegate]) -> list[str]:
    """``core.runtime.ifname_for``; unique and not yet in the pod, or ``Unhandled``."""
    names = [
        d.ifname_request or (call.ifname if i == 0 else f"net{i}") for i, d in enumerate(delegates)
    ]
    if len(set(names)) != len(names):
        raise Unhandled("one interface name twice (the full path reports it)")
    if any(netns.links_exist(call.netns, names)):
        raise Unhandled("an interface that already exists (the full path reports it)")
    return names


def _attach_one(
    call: Call, d: Delegate, rt: chain.Runtime, bin_path: list[str], cache_dir: str
) -> dict[str, Any]:
    """One delegate's ADD; its errors carry Go's ``cmdPluginErr`` prefix."""
    name = d.net_name
    prefix = f'{who(call)[:-1]}:{name}]: error adding container to network "{name}": '
    try:
        if netns.links_exist(call.netns, [rt.ifname])[0]:
            raise LeanError(
                7, f"validateIfName: interface name {rt.ifname} already exists in {call.netns}"
            )
        result, _ = chain.add(d, rt, bin_path=bin_path, cache_dir=cache_dir, timeout=PLUGIN_TIMEOUT)
        return result
    except LeanError as exc:
        raise exc.prefixed(prefix) from exc
    except Unhandled as exc:  # too late to hand over: a bug of the lean path's checks
        raise LeanError(999, f"internal error: Unhandled: {exc}") from exc


def _write_status(
    call: Call,
    api: Api,
    pod: dict[str, Any],
    attached: list[tuple[Delegate, chain.Runtime]],
    results: list[dict[str, Any]],
) -> None:
    entries: list[dict[str, Any]] = []
    for i, ((d, _), result) in enumerate(zip(attached, results, strict=True)):
        entries += status.status_entries(result, d.name, i == 0)
    if not entries:
        return
    ns, name, uid = _identity(pod)
    value = status.render_network_status(entries)
    try:
        api.set_annotation_status(ns, name, STATUS, value, expected_uid=uid)
    except LeanError as exc:
        raise exc.prefixed(f"Multus: {who(call)}: ") from exc


def _rollback(call: Call, conf: Conf, attached: list[tuple[Delegate, chain.Runtime]]) -> None:
    """DEL every attachment made, in reverse; the cache goes when all of them went."""
    clean = True
    for d, rt in reversed(attached):
        try:
            chain.delete(
                d,
                rt,
                bin_path=search_path(call, conf),
                cache_dir=conf.cni_dir,
                timeout=PLUGIN_TIMEOUT,
            )
        except (LeanError, Unhandled):
            clean = False
    if clean:
        scratch.remove(conf.cni_dir, call.container_id)
