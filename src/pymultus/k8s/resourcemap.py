"""Device-plugin integration: which device a NAD with a ``resourceName`` gets (rows 28, 30).

Per ADD, the first NAD that carries ``k8s.v1.cni.cncf.io/resourceName`` makes Multus load
the pod's resource map (the kubelet's PodResources socket when it exists, otherwise the
device-manager checkpoint). Each such NAD then takes the next unused device ID of its
resource: IDs sorted, so two NADs on one resource get the first and then the second ID; a
NAD whose resource is not allocated to the pod, or whose IDs are used up, gets none and the
ADD goes on without one. The device ID is written into the delegate's config (``deviceID``
and ``pciBusID``, on every plugin of a conflist) and passed as capabilities ``deviceID`` and
``CNIDeviceInfoFile``.

Devices from Dynamic Resource Allocation (``k8s.dra``) join the kubelet's before the sort: the
PodResources ``dynamic_resources`` under their claim's name (Go v4.3.0), and the devices of
the pod's ResourceClaims under their ``resourceName`` attribute (Go master). A pod with
claims on a node with neither kubelet source has no kubelet devices rather than an error.

Use from the core, once per ADD::

    devices = LazyResourceMap(pod, socket_path=..., checkpoint_path=..., dra=DraLookup(...))
    ...
    if nad.resource_name:
        device_id = devices.next(nad.resource_name)
        if device_id:
            raw = inject_device_id(raw, device_id)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pymultus.cni import netconf
from pymultus.cni.errors import InvalidConfigError, IOFailure
from pymultus.k8s import checkpoint, podresources
from pymultus.k8s.devinfo_files import DEVINFO_ROOT, cni_device_info_path
from pymultus.k8s.dra import DraApi, DraPod, add_dra_devices

KUBELET_SOCKET = podresources.KUBELET_SOCKET
CHECKPOINT_FILE = checkpoint.CHECKPOINT_FILE


class PodIdentity(Protocol):
    """What the lookup needs of a pod (``k8s.objects.Pod`` and ``k8s.refs.PodRef`` fit)."""

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def uid(self) -> str: ...


class ResourceMap:
    """The device IDs allocated to one pod, handed out one at a time per resource."""

    def __init__(self, devices: Mapping[str, Iterable[str]] | None = None) -> None:
        self._ids = {res: tuple(sorted(ids)) for res, ids in (devices or {}).items()}
        self._used = dict.fromkeys(self._ids, 0)

    def next(self, resource_name: str) -> str:
        """The next unused device ID of ``resource_name``; "" when it has none left."""
        ids = self._ids.get(resource_name, ())
        used = self._used.get(resource_name, 0)
        if used >= len(ids):
            return ""
        self._used[resource_name] = used + 1
        return ids[used]

    def device_ids(self, resource_name: str) -> tuple[str, ...]:
        """Every device ID of ``resource_name``, sorted, used or not."""
        return self._ids.get(resource_name, ())

    def as_dict(self) -> dict[str, list[str]]:
        return {res: list(ids) for res, ids in self._ids.items()}

    def __repr__(self) -> str:
        return f"ResourceMap({self.as_dict()!r})"


@dataclass(frozen=True)
class DraLookup:
    """Where a pod's ResourceClaims are read (``api``), and the pod with its claims."""

    api: DraApi
    pod: DraPod


def load_resource_map(
    pod: PodIdentity,
    *,
    socket_path: str = KUBELET_SOCKET,
    checkpoint_path: str = CHECKPOINT_FILE,
    timeout: float = podresources.TIMEOUT,
    dra: DraLookup | None = None,
) -> ResourceMap:
    """The pod's resource map from the kubelet, and from its ResourceClaims with ``dra``.

    As Go Multus: when the socket exists it is the source (by pod name and namespace) and its
    errors are this function's; otherwise the checkpoint is (by pod UID). Neither there:
    ``IOFailure`` naming both paths, unless the pod has claims (DRA may be the node's only
    device source).
    """
    has_claims = dra is not None and bool(dra.pod.claims)
    devices = _kubelet_devices(pod, socket_path, checkpoint_path, timeout, optional=has_claims)
    if dra is not None and has_claims:
        add_dra_devices(dra.pod, dra.api, devices)
    return ResourceMap(devices)


def _kubelet_devices(
    pod: PodIdentity, socket_path: str, checkpoint_path: str, timeout: float, *, optional: bool
) -> dict[str, list[str]]:
    if os.path.exists(socket_path):
        return podresources.get_pod_resource_map(
            pod.namespace, pod.name, socket_path=socket_path, timeout=timeout
        )
    if os.path.exists(checkpoint_path):
        return checkpoint.get_pod_resource_map(pod.uid, path=checkpoint_path)
    if optional:
        return {}
    raise IOFailure(
        f"cannot find the device IDs of pod {pod.namespace}/{pod.name}: neither the kubelet "
        f"pod-resources socket {socket_path} nor the device-plugin checkpoint "
        f"{checkpoint_path} exists",
        pod=f"{pod.namespace}/{pod.name}",
        path=socket_path,
    )


class LazyResourceMap:
    """A ``ResourceMap`` loaded on the first ``next``: an ADD whose NADs name no resource
    never touches the kubelet (nor imports gRPC). One per ADD, shared by every delegate."""

    def __init__(
        self,
        pod: PodIdentity,
        *,
        socket_path: str = KUBELET_SOCKET,
        checkpoint_path: str = CHECKPOINT_FILE,
        timeout: float = podresources.TIMEOUT,
        dra: DraLookup | None = None,
    ) -> None:
        self._pod = pod
        self._dra = dra
        self._socket_path = socket_path
        self._checkpoint_path = checkpoint_path
        self._timeout = timeout
        self._map: ResourceMap | None = None

    @property
    def loaded(self) -> bool:
        return self._map is not None

    def next(self, resource_name: str) -> str:
        """As ``ResourceMap.next``; loads the map first (errors as ``load_resource_map``)."""
        if self._map is None:
            self._map = load_resource_map(
                self._pod,
                socket_path=self._socket_path,
                checkpoint_path=self._checkpoint_path,
                timeout=self._timeout,
                dra=self._dra,
            )
        return self._map.next(resource_name)


# ---------------------------------------------------------------- into the delegate


def inject_device_id(raw: bytes, device_id: str) -> bytes:
    """Go's ``delegateAddDeviceID`` / ``addDeviceIDInConfList``: ``deviceID`` and
    ``pciBusID`` set on the config, or on every plugin of a conflist (a config with no
    ``type``), re-marshalled with sorted keys as Go does."""
    obj = netconf.decode_object(raw, "delegate config")
    _, type_ = netconf.go_field(obj, "type")
    if isinstance(type_, str) and type_:
        targets: list[Any] = [obj]
    else:
        targets = _plugins(obj)
    for target in targets:
        target["deviceID"] = device_id
        target["pciBusID"] = device_id
    return netconf.remarshal(obj)


def _plugins(obj: Mapping[str, Any]) -> list[Any]:
    plugins = obj.get("plugins")
    if not isinstance(plugins, list):
        raise InvalidConfigError(
            "cannot add the device ID to the delegate: a config without 'type' needs a "
            "'plugins' list",
            field="plugins",
        )
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise InvalidConfigError(
                f"cannot add the device ID to the delegate: plugins[{i}] is not an object",
                field=f"plugins[{i}]",
            )
    return plugins


def device_capability_args(
    delegate_name: str,
    container_id: str,
    ifname: str,
    device_id: str,
    *,
    devinfo_root: str = DEVINFO_ROOT,
) -> dict[str, str]:
    """Capability args of an attachment with a device: ``deviceID`` and the auto-generated
    ``CNIDeviceInfoFile`` (Go's ``delegateRuntimeConfig``, which sets the file whenever a
    device ID is known, from the resource map or the annotation); empty without one."""
    if not device_id:
        return {}
    path = cni_device_info_path(delegate_name, container_id, ifname, root=devinfo_root)
    return {"deviceID": device_id, "CNIDeviceInfoFile": path}
