"""Adoption: an attachment record for a sandbox attached without one (issue #12).

A pod attached before ``hotPlug`` was turned on, or by Go Multus before the switch, has no
record. What it has: Go's delegate cache ``<cniDir>/<containerID>`` (the delegates in order,
with their interface requests) and libcni's result cache ``<cniDir>/results/`` (per
attachment the exact config, CNI_ARGS, capability args, result and, with a recent libcni,
the netns; in an older cache the netns is the ``sandbox`` of an interface of the result).
The sandbox of a pod is the one whose cached CNI_ARGS name the pod and its UID; it is
adopted when its netns still exists and its delegate cache can be read. Origins: the first
delegate is the cluster network, NADs named in ``defaultNetworks`` keep their origin, other
NADs (``ns/name``) came from the annotation, anything else is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pymultus.cni import cache
from pymultus.cni.cache import CacheEntry
from pymultus.cni.convert import to_current
from pymultus.cni.errors import CniError
from pymultus.cni.result import parse_result
from pymultus.config.multus import MultusConf, parse_multus_conf
from pymultus.core import record, scratch
from pymultus.core.delegate import Delegate
from pymultus.core.record import Attachment, SandboxRecord
from pymultus.k8s.objects import Pod


def adopt(
    cni_dir: str, pod: Pod, multus_conf: bytes, cni_path: Sequence[str]
) -> SandboxRecord | None:
    """The record of the pod's live sandbox, built from the caches; None when there is no
    such sandbox or its caches do not tell enough."""
    entries = [e for e in cache.list_attachments(cni_dir) if _of_pod(e, pod)]
    live = [(e, path) for e in entries if (path := netns_of(e)) and os.path.exists(path)]
    if not live:
        return None
    (first, netns) = live[0]
    cid = first.container_id
    try:
        delegates = scratch.load(cni_dir, cid)
        conf = parse_multus_conf(multus_conf)
    except CniError:
        return None
    if not delegates:
        return None
    by_key = {(e.network_name, e.ifname): e for e in entries if e.container_id == cid}
    args = first.cni_args
    return SandboxRecord(
        container_id=cid,
        netns=netns,
        pod_namespace=pod.namespace,
        pod_name=pod.name,
        pod_uid=pod.uid,
        cni_args=";".join(f"{k}={v}" for k, v in args),
        cni_path=list(cni_path),
        multus_conf=multus_conf,
        attachments=[
            _attachment(d, i, conf, by_key, ifname=_ifname(d, i)) for i, d in enumerate(delegates)
        ],
    )


def netns_of(entry: CacheEntry) -> str:
    """The sandbox's netns: the cache entry's (libcni >= 1.2 records it), else the
    ``sandbox`` of an interface in its result (what older caches, Go Multus's included,
    have)."""
    if entry.netns:
        return entry.netns
    try:
        result = to_current(parse_result(entry.result)) if entry.result else None
    except CniError:
        return ""
    sandboxes = [i.sandbox for i in result.interfaces if i.sandbox] if result else []
    return sandboxes[0] if sandboxes else ""


def _of_pod(entry: CacheEntry, pod: Pod) -> bool:
    args = dict(entry.cni_args)
    same = (args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME")) == (pod.namespace, pod.name)
    return same and args.get("K8S_POD_UID", "") in ("", pod.uid)


def _ifname(d: Delegate, index: int) -> str:
    """``core.runtime.ifname_for`` for a runtime that named the master ``eth0``."""
    if d.ifname_request:
        return d.ifname_request
    return "eth0" if index == 0 else f"net{index}"


def _attachment(
    d: Delegate,
    index: int,
    conf: MultusConf,
    by_key: dict[tuple[str, str], CacheEntry],
    *,
    ifname: str,
) -> Attachment:
    namespace, slash, name = d.name.partition("/")
    origin = record.OTHER
    if index == 0:
        origin = record.CLUSTER
    elif slash and d.name in _default_network_names(conf):
        origin = record.DEFAULT_NETWORKS
    elif slash:
        origin = record.ANNOTATION
    entry = _entry_for(d, ifname, by_key)
    return Attachment(
        network=d.name,
        ifname=ifname,
        origin=origin,
        config=entry.config if entry is not None else d.raw,
        is_list=d.is_list,
        nad_namespace=namespace if origin == record.ANNOTATION else "",
        nad_name=name if origin == record.ANNOTATION else "",
        auto_named=not d.ifname_request,
        runtime_args=list(entry.cni_args) if entry is not None else [],
        capability_args=dict(entry.capability_args) if entry is not None else {},
        result=record.result_of_cache(entry.result) if entry is not None else None,
    )


def _entry_for(
    d: Delegate, ifname: str, by_key: dict[tuple[str, str], CacheEntry]
) -> CacheEntry | None:
    for (network, name), entry in by_key.items():
        if name == ifname and network in (d.name, d.name.rpartition("/")[2]):
            return entry
    return next((e for (_, name), e in by_key.items() if name == ifname), None)


def _default_network_names(conf: MultusConf) -> set[str]:
    return {n if "/" in n else f"{conf.multus_namespace}/{n}" for n in conf.default_networks}
