"""libcni RuntimeConf for each attachment: interface name, CNI_ARGS and capability args."""

from __future__ import annotations

from typing import Any

import msgspec

from pymultus.cni.chain import RuntimeConf
from pymultus.config.multus import MultusConf
from pymultus.core.delegate import Delegate
from pymultus.core.request import Request
from pymultus.k8s.devinfo_files import DEVINFO_ROOT
from pymultus.k8s.resourcemap import device_capability_args
from pymultus.k8s.selection import NetworkSelection


def ifname_for(delegate: Delegate, index: int, req: Request) -> str:
    """Explicit request wins; the master gets CNI_IFNAME; others ``net<index>`` (row 44)."""
    if delegate.ifname_request:
        return delegate.ifname_request
    return req.cmd.ifname if index == 0 else f"net{index}"


def k8s_args(req: Request, *, append_runtime: bool) -> list[tuple[str, str]]:
    """Multus's own K8S args, then (thin mode) the runtime's CNI_ARGS (row 43)."""
    k = req.k8s
    args = [
        ("IgnoreUnknown", "true"),
        ("K8S_POD_NAMESPACE", k.pod_namespace),
        ("K8S_POD_NAME", k.pod_name),
        ("K8S_POD_INFRA_CONTAINER_ID", k.infra_container_id or req.cmd.container_id),
        ("K8S_POD_UID", k.pod_uid),
    ]
    if append_runtime:
        args += list(req.runtime_args)
    return args


def runtime_conf(
    req: Request,
    delegate: Delegate,
    ifname: str,
    *,
    is_master: bool,
    selection: NetworkSelection | None = None,
    append_runtime_args: bool = True,
    devinfo_root: str = DEVINFO_ROOT,
) -> RuntimeConf:
    args = k8s_args(req, append_runtime=append_runtime_args)
    if delegate.mac_request:
        args.append(("MAC", delegate.mac_request))
    if delegate.ip_requests:
        args.append(("IP", ",".join(delegate.ip_requests)))
    caps = _master_caps(req.conf) if is_master else _attachment_caps(delegate, selection)
    # Any attachment with a device, the cluster network included (issue #501): the device
    # ID and the path of its device-info file (rows 24, 30).
    caps.update(
        device_capability_args(
            delegate.name,
            req.cmd.container_id,
            ifname,
            delegate.device_id,
            devinfo_root=devinfo_root,
        )
    )
    return RuntimeConf(
        container_id=req.cmd.container_id,
        netns=req.cmd.netns,
        ifname=ifname,
        args=tuple(args),
        capability_args=caps,
    )


def _master_caps(conf: MultusConf) -> dict[str, Any]:
    """The runtime's own runtimeConfig reaches the cluster network only (NPWG rule 7.5; Go
    lets it reach secondary networks too). libcni then passes each plugin only the keys it
    declares in ``capabilities``."""
    rc = conf.runtime_config
    return dict(rc.raw) if rc is not None else {}


def _attachment_caps(delegate: Delegate, sel: NetworkSelection | None) -> dict[str, Any]:
    """Capability args of a secondary attachment, from the pod's request only."""
    caps: dict[str, Any] = {}
    if sel is not None and sel.port_mappings:
        # Go's PortMapEntry/BandwidthEntry JSON is the Structs' own encoding
        caps["portMappings"] = msgspec.to_builtins(list(sel.port_mappings))
    if sel is not None and sel.bandwidth is not None:
        caps["bandwidth"] = msgspec.to_builtins(sel.bandwidth)
    if delegate.ip_requests:
        caps["ips"] = list(delegate.ip_requests)
    if delegate.mac_request:
        caps["mac"] = delegate.mac_request
    if delegate.infiniband_guid_request:
        caps["infinibandGUID"] = delegate.infiniband_guid_request
    return caps


def device_info_file(rt: RuntimeConf) -> str:
    """The attachment's device-info file (capability ``CNIDeviceInfoFile``); "" without a
    device."""
    path = rt.capability_args.get("CNIDeviceInfoFile", "")
    return path if isinstance(path, str) else ""
