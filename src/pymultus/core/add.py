"""CNI ADD: attach the cluster network and every requested network, or nothing at all.

Steps: wait for the readiness file → find the pod → resolve and validate every delegate →
save the delegate cache → run the delegates in order → default-route policy → write
network-status. A failure after the first delegate ran rolls back everything attached so far,
the failing delegate included, and removes the cache (behaviour §5.1; Go Multus rolls back
only for delegate failures and keeps the cache).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.convert import AnyResult, to_current
from pymultus.cni.errors import CniError, InvalidConfigError, TryAgainLaterError, prefixed
from pymultus.cni.result import Interface, IPConfig, Result
from pymultus.core import delegates, resolve, routes, scratch
from pymultus.core.deps import Deps
from pymultus.core.pods import pod_for_add
from pymultus.core.request import Request
from pymultus.core.resolve import Planned
from pymultus.core.runtime import ifname_for, runtime_conf
from pymultus.k8s.objects import Pod
from pymultus.k8s.status import render_network_status, statuses_for_result


@dataclass(frozen=True)
class Running:
    planned: Planned
    rt: RuntimeConf


def cmd_add(req: Request, deps: Deps) -> AnyResult:
    """Returns the cluster network's result in its own version (the boundary converts)."""
    wait_for_readiness(req, deps)
    pod = pod_for_add(req, deps)
    if pod is None and deps.has_kubernetes and req.k8s.pod_ref is not None:
        return empty_result(req)
    planned = resolve.plan(req, deps, pod)
    ifnames = _ifnames(planned, req, deps)
    scratch.save(req.conf.cni_dir, req.cmd.container_id, [p.delegate for p in planned])
    cni = delegates.cni_for(req, deps)
    running: list[Running] = []
    try:
        results = _attach_all(
            req, deps, cni, planned=planned, ifnames=ifnames, running=running, pod=pod
        )
        _default_routes(req, running)
        _write_status(deps, pod, planned, results)
    except CniError as exc:
        if _rollback(cni, running):
            scratch.remove(req.conf.cni_dir, req.cmd.container_id)
        raise _in_context(exc, req, running) from exc
    return results[0]


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
    import os  # noqa: PLC0415 - keep the module import list short for the thin plugin

    return os.path.exists(path)


def empty_result(req: Request) -> Result:
    """Row 41: the pod is gone; report success without running anything."""
    return Result(
        cniVersion=req.conf.cni_version or "1.0.0",
        interfaces=[Interface(name=req.cmd.ifname, sandbox=req.cmd.netns)],
        ips=[IPConfig(interface=0, address="0.0.0.0/0", gateway="0.0.0.0")],
    )


def _ifnames(planned: Sequence[Planned], req: Request, deps: Deps) -> list[str]:
    """Interface names of every attachment, unique and not yet used in the pod (row 44)."""
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
    return names


def _check_free(req: Request, deps: Deps, ifname: str, network: str) -> None:
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
    running: list[Running],
    pod: Pod | None,
) -> list[AnyResult]:
    results = []
    for i, (p, ifname) in enumerate(zip(planned, ifnames, strict=True)):
        _check_free(req, deps, ifname, p.delegate.name)
        rt = runtime_conf(
            req,
            p.delegate,
            ifname,
            is_master=i == 0,
            selection=p.selection,
            append_runtime_args=deps.append_runtime_args,
        )
        running.append(Running(p, rt))
        result = delegates.add(cni, p.net, rt)
        results.append(result)
        _emit_added(deps, pod, ifname, p.delegate.name, result)
    return results


def _emit_added(deps: Deps, pod: Pod | None, ifname: str, name: str, result: AnyResult) -> None:
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
    deps: Deps, pod: Pod | None, planned: Sequence[Planned], results: Sequence[AnyResult]
) -> None:
    if deps.status is None or pod is None:
        return
    entries = []
    for i, (p, result) in enumerate(zip(planned, results, strict=True)):
        entries += statuses_for_result(to_current(result), p.delegate.name, i == 0)
    if entries:
        deps.status.write_network_status(pod, render_network_status(entries))


def _rollback(cni: CNIConfig, running: Sequence[Running]) -> bool:
    """DEL every attachment started, the failing one included, in reverse; True when every
    DEL succeeded (then nothing is left and the cache can go)."""
    clean = True
    for r in reversed(running):
        try:
            delegates.delete(cni, r.planned.net, r.rt)
        except CniError:
            clean = False
    return clean


def _in_context(exc: CniError, req: Request, running: Sequence[Running]) -> CniError:
    if not running:
        return prefixed(exc, f"{req.who}: ")
    name = running[-1].planned.delegate.name
    return prefixed(exc, f"{req.who[:-1]}:{name}]: error adding container to network {name!r}: ")
