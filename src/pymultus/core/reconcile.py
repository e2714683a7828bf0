"""One hot-plug pass over one sandbox (issue #12); the daemon decides when to run it.

Order: a ``pending`` attachment left by a daemon that died mid-ADD is DELed with its recorded
config → the desired set is validated as a whole (a bad one changes nothing) → removed
attachments are DELed with their **recorded** config (the NAD may be gone or edited) → new
ones are ADDed in annotation order, each recorded ``pending`` first and ``attached`` after, a
failing one rolled back by libcni alone → one network-status write rendered from the record
(entries written by someone else kept at the end) → events as multus-dynamic-networks-controller
words them.

Attachments still in backoff (``ready`` says no) are left for a later pass; a failure of one
attachment never stops the others. The record is saved after every step, so a pass cut short
at any point is finished by the next one without a second ADD or a leak.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from pymultus.cni import netconf
from pymultus.cni.chain import CNIConfig, RuntimeConf
from pymultus.cni.env import CmdArgs
from pymultus.cni.errors import CniError
from pymultus.cni.result import Result
from pymultus.core import delegates, record, resolve, scratch
from pymultus.core.add import check_ifname_free, record_entry
from pymultus.core.attach import Identity, Wanted, desired, plan
from pymultus.core.delegate import Delegate
from pymultus.core.deps import Deps
from pymultus.core.record import PENDING, Attachment, SandboxRecord
from pymultus.core.request import Request
from pymultus.core.runtime import runtime_conf
from pymultus.k8s.objects import Pod
from pymultus.k8s.status import (
    NetworkStatus,
    parse_network_status,
    render_network_status,
    statuses_for_result,
)

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a pass did; ``failed`` maps each failed attachment to its error."""

    added: list[Attachment] = field(default_factory=list)
    removed: list[Attachment] = field(default_factory=list)
    failed: dict[Identity, str] = field(default_factory=dict)
    waiting: list[Identity] = field(default_factory=list)  # in backoff, not tried
    status_error: str = ""
    status_written: bool = False
    stopped: bool = False  # the pod went away during the pass

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def request_for(rec: SandboxRecord, command: str = "ADD") -> Request:
    """The CNI call the sandbox's ADD was, for one more command."""
    cmd = CmdArgs(
        command,
        rec.container_id,
        rec.netns,
        "eth0",
        rec.cni_args,
        tuple(rec.cni_path),
        rec.multus_conf,
    )
    return Request.build(cmd)


def reconcile(
    rec: SandboxRecord,
    pod: Pod,
    deps: Deps,
    *,
    ready: Callable[[Identity], bool],
    alive: Callable[[], bool],
    write_status: bool = False,
    current_status: Callable[[], str] = lambda: "",
) -> Outcome:
    """One pass; raises ``InvalidConfigError`` (nothing done) for a bad desired set."""
    req = request_for(rec)
    cni = delegates.cni_for(req, deps)
    out = Outcome()
    _forget_pending(req, cni, rec)
    the_plan = plan(desired(pod), rec, lambda n: deps.link_exists(rec.netns, n))
    for a in the_plan.remove:
        if not ready(a.identity):
            out.waiting.append(a.identity)
        elif _remove(req, deps, cni, rec, pod=pod, a=a, out=out):
            _event(deps, pod, "Normal", "RemovedInterface", _words("removed interface", a, "from"))
    for wanted in the_plan.add:
        if not alive():
            out.stopped = True
            break
        if not ready(wanted.identity):
            out.waiting.append(wanted.identity)
            continue
        _add(req, deps, cni, rec, pod=pod, w=wanted, out=out)
    if out.changed or write_status:
        _status(deps, pod, rec, out, current_status)
    return out


def _forget_pending(req: Request, cni: CNIConfig, rec: SandboxRecord) -> None:
    """DEL what a dead daemon may have half-added (libcni DEL of nothing is fine). One whose
    DEL fails stays recorded, its name taken, and is tried again by the next pass."""
    for a in [a for a in rec.attachments if a.state == PENDING]:
        try:
            _delete(cni, rec, a)
        except CniError as exc:
            log.warning("DEL of half-added %s on %s failed: %s", a.network, a.ifname, exc)
            continue
        rec.attachments.remove(a)
        _save(req, rec)


def _delete(cni: CNIConfig, rec: SandboxRecord, a: Attachment) -> None:
    rt = RuntimeConf(
        container_id=rec.container_id,
        netns=rec.netns,
        ifname=a.ifname,
        args=tuple((k, v) for k, v in a.runtime_args),
        capability_args=a.capability_args,
    )
    delegates.delete(cni, netconf.load_any(a.config), rt)


def _remove(
    req: Request,
    deps: Deps,
    cni: CNIConfig,
    rec: SandboxRecord,
    *,
    pod: Pod,
    a: Attachment,
    out: Outcome,
) -> bool:
    try:
        _delete(cni, rec, a)
    except CniError as exc:
        out.failed[a.identity] = exc.msg
        why = f"{_words('failed removing interface', a, 'from')}: {exc.msg}"
        _event(deps, pod, "Warning", "FailedRemovingInterface", why)
        return False
    rec.attachments.remove(a)
    _save(req, rec)
    out.removed.append(a)
    log.info("hot-unplugged %s from %s", a.network, a.ifname)
    return True


def _add(
    req: Request,
    deps: Deps,
    cni: CNIConfig,
    rec: SandboxRecord,
    *,
    pod: Pod,
    w: Wanted,
    out: Outcome,
) -> None:
    entry: Attachment | None = None
    try:
        planned = resolve.plan_selection(w.selection, req, deps, pod)
        rt = runtime_conf(
            req,
            planned.delegate,
            w.ifname,
            is_master=False,
            selection=w.selection,
            append_runtime_args=deps.append_runtime_args,
            devinfo_root=deps.devinfo_root,
        )
        check_ifname_free(req, deps, w.ifname, planned.delegate.name)
        entry = msgspec.structs.replace(
            record_entry(planned, rt, None), state=PENDING, auto_named=w.auto_named
        )
        rec.attachments.append(entry)
        _save(req, rec)
        result = delegates.add(cni, planned.net, rt)
    except CniError as exc:
        if entry is not None:
            rec.attachments.remove(entry)
            _save(req, rec)
        out.failed[w.identity] = exc.msg
        why = f"{_words('failed adding interface', w, 'to')}: {exc.msg}"
        _event(deps, pod, "Warning", "FailedAddingInterface", why)
        return
    added = msgspec.structs.replace(entry, state=record.ATTACHED, result=record.result_dict(result))
    rec.attachments[rec.attachments.index(entry)] = added
    _save(req, rec)
    out.added.append(added)
    log.info("hot-plugged %s into %s", added.network, added.ifname)
    _event(deps, pod, "Normal", "AddedInterface", _words("added interface", w, "to"))


def _save(req: Request, rec: SandboxRecord) -> None:
    """The record, and Go's delegate cache in step with it (so a DEL by either finds all)."""
    cni_dir = req.conf.cni_dir
    record.save(cni_dir, rec)
    try:
        cached = scratch.load(cni_dir, rec.container_id) or []
    except CniError:
        cached = []  # rebuilt from the record
    scratch.save(cni_dir, rec.container_id, delegates_of(rec, cached))


def delegates_of(rec: SandboxRecord, cached: Sequence[Delegate]) -> list[Delegate]:
    """The delegate cache of the record: the cached delegate of each attachment as ADD wrote
    it (its requests, device, gateway flags), a new one for a hot-plugged attachment; every
    secondary's interface name pinned (``ifnameRequest``), so removing one never renumbers
    the others."""
    master = rec.attachments[0].ifname if rec.attachments else "eth0"
    by_key = {
        (d.name, d.ifname_request or (master if i == 0 else f"net{i}")): d
        for i, d in enumerate(cached)
    }
    out = []
    for i, a in enumerate(rec.attachments):
        d = by_key.get((a.network, a.ifname)) or Delegate(
            raw=a.config, name=a.network, is_list=a.is_list
        )
        out.append(d if i == 0 else msgspec.structs.replace(d, ifname_request=a.ifname))
    return out


def render_status(rec: SandboxRecord, current: str = "", gone: Sequence[Attachment] = ()) -> str:
    """network-status from the record: the record's order (the default network first,
    attachments in the order they were made), then the entries of ``current`` (the status
    as it is) that name no network of the record nor one just removed (``gone``): entries
    someone else wrote are kept."""
    entries = []
    for i, a in enumerate(rec.attachments):
        if a.result is None or a.state == PENDING:
            continue
        result = msgspec.convert(a.result, Result)
        entries += statuses_for_result(result, a.network, i == 0, a.device_info)
    ours = {a.network for a in (*rec.attachments, *gone)}
    return render_network_status(entries + [e for e in _parsed(current) if e.name not in ours])


def _parsed(value: str) -> list[NetworkStatus]:
    if not value:
        return []
    try:
        return parse_network_status(value)
    except CniError:
        return []  # not ours to repair: rewritten from the record


def _status(
    deps: Deps, pod: Pod, rec: SandboxRecord, out: Outcome, current: Callable[[], str]
) -> None:
    if deps.status is None:
        return
    try:
        deps.status.write_network_status(pod, render_status(rec, current(), out.removed))
    except CniError as exc:
        out.status_error = exc.msg
    else:
        out.status_written = True


def _event(deps: Deps, pod: Pod, type_: str, reason: str, what: str) -> None:
    """The external controller's wording: ``pod [ns/name]: added interface net1 to network:
    nad``."""
    if deps.events is not None:
        deps.events.emit(pod, type_, reason, f"pod [{pod.namespace}/{pod.name}]: {what}")


def _words(verb: str, what: Attachment | Wanted, preposition: str) -> str:
    if isinstance(what, Wanted):
        ifname, network = what.ifname, what.selection.name
    else:
        ifname, network = what.ifname, what.nad_name
    return f"{verb} {ifname} {preposition} network: {network}"
