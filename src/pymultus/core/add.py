"""CNI ADD: attach the cluster network and every requested network, or nothing at all.

Steps: wait for the readiness file → find the pod → resolve and validate every delegate and
check every interface name is free → save the delegate cache → run the delegates in order →
default-route policy → write network-status → emit the AddedInterface events.

Any failure after the first delegate ran (a later delegate, the route step, the status write,
even a bug) rolls back everything attached so far, in reverse; the failing delegate is rolled
back by libcni's runner itself. When every rollback DEL succeeded the delegate cache is removed
too, so a failed ADD leaves the pod as it found it. Go Multus rolls back only for delegate
failures (including the failing one), keeps the cache, and fails a route or status problem
without any rollback (behaviour §5.1, §6; docs/compatibility.md).

Errors read like Go's: ``[ns/pod/uid:net]: error adding container to network "net": …`` for a
delegate, ``Multus: [ns/pod/uid]: …`` for everything else.

An attachment with a device (row 31): before its ADD the device plugin's device-info file is
copied to the attachment's CNI device-info file, after it that file goes into the
network-status as ``device-info``, and a rollback removes it. All of that is best effort.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import msgspec

from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.convert import AnyResult, to_current
from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError, prefixed
from pymultus.cni.result import Interface, IPConfig, Result
from pymultus.core import delegates, record, resolve, routes, scratch
from pymultus.core.deps import Deps
from pymultus.core.pods import pod_for_add
from pymultus.core.request import Request
from pymultus.core.resolve import Planned
from pymultus.core.runtime import device_info_file, ifname_for, runtime_conf
from pymultus.k8s.devinfo import DeviceInfo
from pymultus.k8s.devinfo_files import copy_dp_to_cni, read_device_info, remove_cni_device_info
from pymultus.k8s.objects import Pod
from pymultus.k8s.status import render_network_status, statuses_for_result

log = logging.getLogger(__name__)


class Running(msgspec.Struct, frozen=True):
    """An attachment that ADD made, with the device info its status entries carry."""

    planned: Planned
    rt: RuntimeConf
    device_info: DeviceInfo | None = None


def cmd_add(req: Request, deps: Deps) -> AnyResult:
    """Returns the cluster network's result in its own version (the boundary converts)."""
    wait_for_readiness(req, deps)
    try:
        pod = pod_for_add(req, deps)
        if pod is None and deps.has_kubernetes and req.k8s.pod_ref is not None:
            return empty_result(req)
        planned = resolve.plan(req, deps, pod)
        ifnames = _ifnames(planned, req, deps)
    except CniError as exc:
        raise prefixed(exc, f"Multus: {req.who}: ") from exc
    scratch.save(req.conf.cni_dir, req.cmd.container_id, [p.delegate for p in planned])
    cni = delegates.cni_for(req, deps)
    attached: list[Running] = []
    try:
        results = _attach_all(req, deps, cni, planned=planned, ifnames=ifnames, attached=attached)
        _after_attach(req, deps, pod, attached, results)
        if deps.keep_records:  # hot-plug's record; a failure to keep it fails the ADD too
            record.save(req.conf.cni_dir, recorded(req, pod, attached, results))
    except Exception:
        _rollback(req, cni, attached)
        raise
    for r, result in zip(attached, results, strict=True):
        emit_added(deps, pod, r.rt.ifname, r.planned.delegate.name, result)
    return results[0]


def recorded(
    req: Request, pod: Pod | None, attached: Sequence[Running], results: Sequence[AnyResult]
) -> record.SandboxRecord:
    """The attachment record of a successful ADD (hot-plug reconciles against it)."""
    k = req.k8s
    return record.SandboxRecord(
        container_id=req.cmd.container_id,
        netns=req.cmd.netns,
        pod_namespace=k.pod_namespace,
        pod_name=k.pod_name,
        pod_uid=pod.uid if pod is not None and pod.uid else k.pod_uid,
        cni_args=req.cmd.args,
        cni_path=list(req.cmd.path),
        multus_conf=req.cmd.stdin,
        attachments=[
            msgspec.structs.replace(
                record_entry(r.planned, r.rt, result, master=i == 0),
                device_info=msgspec.to_builtins(r.device_info) if r.device_info else None,
            )
            for i, (r, result) in enumerate(zip(attached, results, strict=True))
        ],
    )


def record_entry(
    p: Planned, rt: RuntimeConf, result: AnyResult | None, *, master: bool = False
) -> record.Attachment:
    """One attachment as the record keeps it."""
    d = p.delegate
    origin = record.OTHER
    nad_ns, nad_name = "", ""
    if master:
        origin = record.CLUSTER
    elif p.selection is not None:
        origin = record.ANNOTATION
        nad_ns, nad_name = p.selection.namespace, p.selection.name
    return record.Attachment(
        network=d.name,
        ifname=rt.ifname,
        origin=origin,
        config=d.raw,
        is_list=d.is_list,
        nad_namespace=nad_ns,
        nad_name=nad_name,
        auto_named=p.selection is not None and not p.selection.interface,
        runtime_args=list(rt.args),
        capability_args=dict(rt.capability_args),
        result=None if result is None else record.result_dict(result),
    )


def _after_attach(
    req: Request,
    deps: Deps,
    pod: Pod | None,
    attached: Sequence[Running],
    results: Sequence[AnyResult],
) -> None:
    """Default-route policy, then network-status (Go fails here without rolling back)."""
    try:
        _default_routes(req, attached)
        _write_status(deps, pod, attached, results)
    except CniError as exc:
        raise prefixed(exc, f"Multus: {req.who}: ") from exc


def wait_for_readiness(req: Request, deps: Deps) -> None:
    """Block until ``readinessindicatorfile`` exists (row 35)."""
    path = req.conf.readiness_indicator_file
    if not path:
        return
    deadline = time.monotonic() + deps.readiness_timeout
    while not _exists(path):
        if time.monotonic() >= deadline:
            raise TryAgainLaterError(
                f"the default network is not ready: readiness indicator file {path} is absent",
                field="readinessindicatorfile",
                path=path,
            )
        time.sleep(deps.readiness_interval)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def empty_result(req: Request) -> Result:
    """Row 41: the pod is gone; report success without running anything."""
    return Result(
        cniVersion=req.conf.cni_version or "1.0.0",
        interfaces=[Interface(name=req.cmd.ifname, sandbox=req.cmd.netns)],
        ips=[IPConfig(interface=0, address="0.0.0.0/0", gateway="0.0.0.0")],
    )


def _ifnames(planned: Sequence[Planned], req: Request, deps: Deps) -> list[str]:
    """Interface names of every attachment, unique and not yet used in the pod (row 44).

    All are checked before the delegate cache is written, so a repeated ADD for a pod that is
    already attached fails without touching what the first ADD recorded.
    """
    names = [ifname_for(p.delegate, i, req) for i, p in enumerate(planned)]
    seen: dict[str, str] = {}
    for name, p in zip(names, planned, strict=True):
        if name in seen:
            raise InvalidConfigError(
                f"interface name {name} is requested by both {seen[name]} and {p.delegate.name}",
                field="interface",
                network=p.delegate.name,
            )
        seen[name] = p.delegate.name
        check_ifname_free(req, deps, name, p.delegate.name)
    return names


def check_ifname_free(req: Request, deps: Deps, ifname: str, network: str) -> None:
    """Fail when ``ifname`` already exists in the pod (Go's ``validateIfName``)."""
    if req.cmd.netns and deps.link_exists(req.cmd.netns, ifname):
        raise InvalidConfigError(
            f"validateIfName: interface name {ifname} already exists in {req.cmd.netns}",
            field="interface",
            network=network,
        )


def _attach_all(
    req: Request,
    deps: Deps,
    cni: CNIConfig,
    *,
    planned: Sequence[Planned],
    ifnames: Sequence[str],
    attached: list[Running],
) -> list[AnyResult]:
    """ADD each delegate in order; ``attached`` lists those that succeeded (a delegate that
    fails is rolled back by libcni's runner itself, plugin by plugin)."""
    results = []
    for i, (p, ifname) in enumerate(zip(planned, ifnames, strict=True)):
        rt = runtime_conf(
            req,
            p.delegate,
            ifname,
            is_master=i == 0,
            selection=p.selection,
            append_runtime_args=deps.append_runtime_args,
            devinfo_root=deps.devinfo_root,
        )
        results.append(_attach_one(req, deps, cni, p, rt))
        devinfo = device_info_file(rt)
        attached.append(Running(p, rt, read_device_info(devinfo) if devinfo else None))
    return results


def _attach_one(req: Request, deps: Deps, cni: CNIConfig, p: Planned, rt: RuntimeConf) -> AnyResult:
    """One delegate's ADD; a failed one leaves no device-info file behind."""
    d = p.delegate
    devinfo = device_info_file(rt) if d.device_id else ""
    if devinfo and d.resource_name:
        copy_dp_to_cni(devinfo, d.resource_name, d.device_id, root=deps.devinfo_root)
    try:
        check_ifname_free(req, deps, rt.ifname, d.name)
        result = delegates.add(cni, p.net, rt)
    except CniError as exc:
        if devinfo:
            remove_cni_device_info(devinfo)
        # Go's cmdPluginErr; network names hold only [a-zA-Z0-9_.-], so %q is plain quotes
        name = delegates.network_name(p.net)
        prefix = f'{req.who[:-1]}:{name}]: error adding container to network "{name}": '
        raise prefixed(exc, prefix) from exc
    log.info(
        "ADD of network %s (%s) on %s succeeded", delegates.network_name(p.net), d.name, rt.ifname
    )
    return result


def emit_added(deps: Deps, pod: Pod | None, ifname: str, name: str, result: AnyResult) -> None:
    """The ``AddedInterface`` event of one attachment (none without interfaces or IPs)."""
    if deps.events is None or pod is None:
        return
    current = to_current(result)
    if not (current.interfaces or current.ips):
        return
    ips = " ".join(ip.address for ip in current.ips)
    deps.events.emit(pod, "Normal", "AddedInterface", f"Add {ifname} [{ips}] from {name}")


def _default_routes(req: Request, running: Sequence[Running]) -> None:
    attached = [
        routes.Attached(r.planned.delegate, delegates.network_name(r.planned.net), r.rt.ifname)
        for r in running
    ]
    if routes.needs_routes(attached):
        routes.apply(req.cmd.netns, req.cmd.container_id, req.conf.cni_dir, attached)


def _write_status(
    deps: Deps, pod: Pod | None, attached: Sequence[Running], results: Sequence[AnyResult]
) -> None:
    if deps.status is None or pod is None:
        return
    entries = []
    for i, (r, result) in enumerate(zip(attached, results, strict=True)):
        name = r.planned.delegate.name
        entries += statuses_for_result(to_current(result), name, i == 0, r.device_info)
    if entries:
        deps.status.write_network_status(pod, render_network_status(entries))


def _rollback(req: Request, cni: CNIConfig, attached: Sequence[Running]) -> None:
    """DEL every attachment made, in reverse, best effort. When all of them are gone the
    delegate cache goes too; otherwise it stays for the runtime's DEL to finish the job."""
    clean = True
    for r in reversed(attached):
        try:
            delegates.delete(cni, r.planned.net, r.rt)
        except CniError as exc:
            log.error("rollback: DEL of %s failed: %s", r.planned.delegate.name, exc)
            clean = False
        if r.planned.delegate.device_id:
            remove_cni_device_info(device_info_file(r.rt))
    if clean:
        scratch.remove(req.conf.cni_dir, req.cmd.container_id)
