"""Which delegates a pod gets, in order, each validated before anything runs.

Order (behaviour §1): the cluster network (or the pod's default-network annotation), then
``defaultNetworks`` (skipped in ``systemNamespaces``), then the selection annotation, then the
auxiliary CNI chain (row 47).

A NAD with ``k8s.v1.cni.cncf.io/resourceName`` takes the next unused device of that resource
from the pod's resource map, loaded once per ADD on the first such NAD (rows 28, 30).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec

from pymultus.cni import netconf
from pymultus.cni.env import validate_network_name
from pymultus.cni.errors import CniError, InvalidConfigError
from pymultus.cni.netconf import NetConf, NetConfList
from pymultus.config.multus import MultusConf
from pymultus.core.delegate import PARSED_CACHE, Delegate, load_delegate, load_delegate_list
from pymultus.core.deps import Deps
from pymultus.core.request import Request
from pymultus.k8s.dra import ERROR_PREFIX, IndexedSlice
from pymultus.k8s.objects import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, Nad, Pod
from pymultus.k8s.resourcemap import DraLookup, LazyResourceMap, inject_device_id
from pymultus.k8s.selection import (
    NetworkSelection,
    check_gateways,
    parse_default_network_annotation,
    parse_networks_annotation,
)

#: The first plugin of the auxiliary chain: it only hands the chained plugins a prevResult.
PASSTHRU = "passthru"


class Planned(msgspec.Struct, frozen=True):
    """One attachment to make: the delegate (what the cache keeps), what libcni runs, and the
    pod's request for it (port mappings and bandwidth are not cached, as in Go)."""

    delegate: Delegate
    net: NetConf | NetConfList
    selection: NetworkSelection | None = None


def net_of(delegate: Delegate) -> NetConf | NetConfList:
    """What libcni runs for a delegate's bytes."""
    if delegate.is_list:
        return netconf.conflist_from_bytes(delegate.raw)
    return netconf.conf_from_bytes(delegate.raw)


class DeviceIds(Protocol):
    def next(self, resource_name: str) -> str:
        """The next unused device ID of the resource; "" when there is none."""
        ...


class NoDevices:
    """No pod, so no device lookup (Go looks devices up only for a pod)."""

    def next(self, resource_name: str) -> str:
        return ""


class NoDraOnDel:
    """DEL never reads ResourceClaims: a DEL without the delegate cache whose pod has claims
    and a NAD with a resourceName fails its rebuild here, and DEL then takes the cluster
    network and libcni's cached configs (which hold the deviceID the ADD injected)."""

    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        raise CniError(f"{ERROR_PREFIX}: DEL does not read claim {namespace}/{name}")

    def slices(self, node_name: str, driver: str, *, local_only: bool) -> list[IndexedSlice]:
        raise CniError(f"{ERROR_PREFIX}: DEL does not read ResourceSlices")


def _dra(req: Request, deps: Deps, pod: Pod) -> DraLookup | None:
    if deps.dra is None:
        return None
    return DraLookup(NoDraOnDel() if req.cmd.command == "DEL" else deps.dra, pod)


def plan(req: Request, deps: Deps, pod: Pod | None) -> list[Planned]:
    """Every attachment of an ADD, fully validated; raises before any delegate runs."""
    conf = req.conf
    devices: DeviceIds = NoDevices()
    if pod is not None:
        devices = LazyResourceMap(
            pod,
            socket_path=deps.kubelet_socket,
            checkpoint_path=deps.kubelet_checkpoint,
            dra=_dra(req, deps, pod),
        )
    planned = [_master(req, deps, pod, devices)]
    if not conf.cluster_network:
        planned += [_static(raw, i) for i, raw in enumerate(conf.delegates) if i > 0]
    elif pod is None or pod.namespace not in conf.system_namespaces:
        # Go reads defaultNetworks only together with clusterNetwork (GetDefaultNetworks).
        planned += [_named(name, req, deps, pod, devices) for name in conf.default_networks]
    if pod is not None:
        selections = parse_networks_annotation(
            pod.annotations.get(NETWORKS_ANNOTATION, ""), pod.namespace
        )
        check_gateways(selections)
        planned += [_from_selection(sel, req, deps, pod, devices) for sel in selections]
    planned = _with_gateway_filters(planned)
    # Go appends the chain after its gateway check, so the chain carries no filter flags.
    aux = auxiliary_chain(conf)
    return planned if aux is None else [*planned, aux]


def plan_master(req: Request, deps: Deps) -> Planned:
    """The cluster network alone (STATUS and GC have no pod)."""
    return _master(req, deps, None, NoDevices())


def _master(req: Request, deps: Deps, pod: Pod | None, devices: DeviceIds) -> Planned:
    conf = req.conf
    if pod is not None and pod.annotations.get(DEFAULT_NETWORK_ANNOTATION):
        sel = parse_default_network_annotation(
            pod.annotations[DEFAULT_NETWORK_ANNOTATION], conf.multus_namespace
        )
        nad = _get_nad(sel.namespace, sel.name, deps, pod, DEFAULT_NETWORK_ANNOTATION)
        return _from_nad(nad, None, conf, devices)
    if conf.cluster_network:
        return _named(conf.cluster_network, req, deps, pod, devices)
    return _static(conf.delegates[0], 0)


def static_delegate(raw: bytes, index: int) -> Delegate:
    """``delegates[index]`` of the config."""
    return load_delegate(raw, prefix=f"delegates[{index}].")


def _static(raw: bytes, index: int) -> Planned:
    delegate = static_delegate(raw, index)
    return Planned(delegate, net_of(delegate))


def _named(value: str, req: Request, deps: Deps, pod: Pod | None, devices: DeviceIds) -> Planned:
    """A ``clusterNetwork``/``defaultNetworks`` entry: a NAD in ``multusNamespace``, a CNI
    network name in ``confDir``, a directory, or a file (row 10). Files need no Kubernetes."""
    conf = req.conf
    if "/" not in value:
        if deps.nads is not None:
            nad = deps.nads.get_nad(conf.multus_namespace, value)
            if nad is not None:
                return _from_nad(nad, None, conf, devices)
        found = netconf.find_by_name(conf.conf_dir, value)
        if found is not None:
            return _from_file_net(found)
        raise InvalidConfigError(
            f"cannot find network {value!r}: no NetworkAttachmentDefinition in namespace "
            f"{conf.multus_namespace!r} and no CNI config named so in {conf.conf_dir}",
            field="clusterNetwork",
            network=value,
        )
    path = _first_config(value) if os.path.isdir(value) else value
    if not os.path.isfile(path):
        raise InvalidConfigError(
            f"network file {value} does not exist", field="clusterNetwork", path=value
        )
    return _from_file_net(netconf.conflist_from_file(path))


def _first_config(directory: str) -> str:
    files = netconf.files_in_dir(directory, (".conf", ".conflist"))
    if not files:
        raise InvalidConfigError(
            f"no .conf or .conflist file in {directory}", field="clusterNetwork", path=directory
        )
    return files[0]


def _from_file_net(net: NetConfList) -> Planned:
    """Go caches a file network re-marshalled (keys sorted) and runs libcni on the file."""
    return Planned(load_delegate_list(_remarshalled(net.raw)), net)


@functools.lru_cache(maxsize=PARSED_CACHE)
def _remarshalled(raw: bytes) -> bytes:
    return netconf.remarshal(netconf.decode_object(raw))


def plan_selection(sel: NetworkSelection, req: Request, deps: Deps, pod: Pod) -> Planned:
    """One annotation element of a running pod (hot-plug): checked and resolved as ADD does,
    without a device from the resource map (the pod's devices were handed out at ADD)."""
    return _from_selection(sel, req, deps, pod, NoDevices())


def _from_selection(
    sel: NetworkSelection, req: Request, deps: Deps, pod: Pod, devices: DeviceIds
) -> Planned:
    check_isolation(sel, req.conf, pod)
    nad = _get_nad(sel.namespace, sel.name, deps, pod, NETWORKS_ANNOTATION)
    return _from_nad(nad, sel, req.conf, devices)


def check_isolation(sel: NetworkSelection, conf: MultusConf, pod: Pod) -> None:
    """``namespaceIsolation``: a pod may use NADs of its own namespace and of the global
    ones only (also the admission webhook's rule)."""
    if not conf.namespace_isolation or sel.namespace == pod.namespace:
        return
    if sel.namespace in conf.global_namespaces():
        return
    raise InvalidConfigError(
        f"namespace isolation enabled, annotation violates permission, pod is in namespace "
        f"{pod.namespace} but refers to target namespace {sel.namespace}",
        field=NETWORKS_ANNOTATION,
        network=f"{sel.namespace}/{sel.name}",
    )


def _get_nad(namespace: str, name: str, deps: Deps, pod: Pod, where: str) -> Nad:
    nad = deps.nads.get_nad(namespace, name) if deps.nads is not None else None
    if nad is not None:
        return nad
    if deps.events is not None:
        deps.events.emit(
            pod,
            "Warning",
            "NoNetworkFound",
            f"cannot find a network-attachment-definition ({name}) in namespace ({namespace})",
        )
    raise InvalidConfigError(
        f"cannot find a network-attachment-definition ({name}) in namespace ({namespace})",
        field=where,
        network=f"{namespace}/{name}",
    )


def _from_nad(
    nad: Nad, sel: NetworkSelection | None, conf: MultusConf, devices: DeviceIds
) -> Planned:
    """The delegate of a NAD. A device from the resource map is written into the config
    (``deviceID``/``pciBusID``) and recorded with its resource; without one, the annotation's
    ``deviceID`` is only passed as a capability (row 24)."""
    raw = _nad_config(nad, conf)
    if sel is not None and sel.cni_args:
        raw = with_cni_args(raw, sel.cni_args)
    device_id = devices.next(nad.resource_name) if nad.resource_name else ""
    if device_id:
        raw = inject_device_id(raw, device_id)
    delegate = load_delegate(raw, name=f"{nad.namespace}/{nad.name}")
    if device_id:
        delegate = msgspec.structs.replace(
            delegate, device_id=device_id, resource_name=nad.resource_name
        )
    elif sel is not None:
        delegate = msgspec.structs.replace(delegate, device_id=sel.device_id)
    if sel is not None:
        delegate = msgspec.structs.replace(
            delegate,
            ifname_request=sel.interface,
            mac_request=sel.mac,
            infiniband_guid_request=sel.infiniband_guid,
            ip_requests=sel.ips,
            default_route=sel.default_route,
        )
    return Planned(delegate, net_of(delegate), sel)


def _nad_config(nad: Nad, conf: MultusConf) -> bytes:
    """``spec.config`` (name injected when missing), or for an empty spec the config file in
    ``confDir`` whose network name is the NAD's (row 27)."""
    where = f"network-attachment-definition {nad.namespace}/{nad.name}"
    if not nad.config.strip():
        found = netconf.find_by_name(conf.conf_dir, nad.name)
        if found is None:
            raise InvalidConfigError(
                f"{where} has no spec.config and no CNI config named {nad.name!r} is in "
                f"{conf.conf_dir}",
                field="spec.config",
                network=nad.name,
            )
        return found.raw
    raw = nad.config.encode()
    obj = netconf.decode_object(raw, f"{where} spec.config")
    if not obj.get("name"):
        return netconf.inject(raw, name=nad.name)
    return raw


def with_cni_args(raw: bytes, cni_args: Any) -> bytes:
    """``cni-args`` merged into ``args.cni`` of the config (every plugin of a conflist);
    the annotation's keys win (row 23)."""
    obj = netconf.decode_object(raw)
    targets = obj["plugins"] if isinstance(obj.get("plugins"), list) else [obj]
    for target in targets:
        args = target.setdefault("args", {})
        if not isinstance(args, dict):
            raise InvalidConfigError("config key args must be an object", field="args")
        cni = args.setdefault("cni", {})
        if isinstance(cni, dict):
            cni.update(cni_args)
        else:
            args["cni"] = dict(cni_args)
    return netconf.remarshal(obj)


def auxiliary_chain(conf: MultusConf) -> Planned | None:
    """Row 47: the conflist ``auxiliaryCNIChainName`` run after every other attachment, on its
    own ``net<N>``: ``passthru`` (so the chained plugins get a prevResult), then the ``.conf``
    files of ``<clusterNetwork's directory>/<chain name>/``; None when there are none.

    ``clusterNetwork`` must be a path: the file's directory, or the directory itself when it
    names one (Go takes the parent directory then). The plugins are inlined, so the delegate
    cache holds everything DEL needs even if the files change."""
    name = conf.auxiliary_cni_chain_name
    if not name:
        return None
    validate_network_name(name, field="auxiliaryCNIChainName")
    base = conf.cluster_network
    if "/" not in base:
        raise InvalidConfigError(
            "auxiliaryCNIChainName needs clusterNetwork to be a file or directory path: the "
            f"chain's plugins are read from <its directory>/{name}/*.conf",
            field="auxiliaryCNIChainName",
            network=name,
        )
    directory = base if os.path.isdir(base) else os.path.dirname(base)
    plugins = netconf.subdirectory_plugins(directory, name)
    if not plugins:
        return None
    chain = {
        "cniVersion": conf.cni_version or plugins[0].cni_version,
        "name": name,
        "plugins": [{"type": PASSTHRU}, *(netconf.decode_object(p.raw) for p in plugins)],
    }
    delegate = load_delegate_list(netconf.remarshal(chain))
    return Planned(delegate, net_of(delegate))


def _with_gateway_filters(planned: Sequence[Planned]) -> list[Planned]:
    """Go's ``CheckGatewayConfig`` flags, recorded in the delegate cache: once any attachment
    has a ``default-route`` key, every attachment is marked IsFilterV4/V6, and the mark of a
    family is cleared on each attachment that names a gateway of it. (What ADD then does to
    the routes is ``core.routes``' policy, decided from the requests themselves.)"""
    if all(p.delegate.default_route is None for p in planned):
        return list(planned)
    return [
        msgspec.structs.replace(
            p,
            delegate=msgspec.structs.replace(
                p.delegate,
                filter_v4_gateway=not any(":" not in gw for gw in p.delegate.default_route or ()),
                filter_v6_gateway=not any(":" in gw for gw in p.delegate.default_route or ()),
            ),
        )
        for p in planned
    ]
