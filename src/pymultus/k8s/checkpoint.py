"""The kubelet's device-manager checkpoint: the fallback source of a pod's device IDs.

When the PodResources socket is absent, Go Multus reads
``/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint`` and keeps the entries whose
``PodUID`` is the pod's (row 28)::

    {"Data": {"PodDeviceEntries": [{"PodUID": "...", "ContainerName": "...",
                                    "ResourceName": "intel.com/sriov",
                                    "DeviceIDs": {"0": ["0000:03:00.1"]},
                                    "AllocResp": "<base64>"}],
              "RegisteredDevices": {...}},
     "Checksum": 123}

``DeviceIDs`` maps a NUMA node to IDs since kubelet 1.20; older kubelets wrote a plain list.
Both are read. The checksum is not verified (Go Multus does not either: a kubelet writes the
file atomically, and a wrong sum would only make us refuse a usable file).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from pymultus.cni import limits
from pymultus.cni.errors import DecodeError, InvalidEnvironmentError, IOFailure

#: Where the kubelet keeps it (kubelet ``--root-dir`` default ``/var/lib/kubelet``).
CHECKPOINT_FILE = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"


class PodDevicesEntry(msgspec.Struct, frozen=True):
    """One allocation: the devices of one resource given to one container of one pod."""

    pod_uid: str = msgspec.field(default="", name="PodUID")
    container_name: str = msgspec.field(default="", name="ContainerName")
    resource_name: str = msgspec.field(default="", name="ResourceName")
    device_ids: dict[str, list[str]] | list[str] | None = msgspec.field(
        default=None, name="DeviceIDs"
    )

    def ids(self) -> list[str]:
        """Every device ID of the entry, whichever shape ``DeviceIDs`` has."""
        if self.device_ids is None:
            return []
        if isinstance(self.device_ids, list):
            return list(self.device_ids)
        return [i for per_numa in self.device_ids.values() for i in per_numa]


class _Data(msgspec.Struct):
    entries: list[PodDevicesEntry] | None = msgspec.field(default=None, name="PodDeviceEntries")


class _File(msgspec.Struct):
    data: _Data | None = msgspec.field(default=None, name="Data")


_decoder = msgspec.json.Decoder(_File | None)


def parse_checkpoint(data: bytes, *, path: str = "") -> list[PodDevicesEntry]:
    """The pod device entries of checkpoint bytes; ``DecodeError`` (naming ``path``) when the
    bytes are not such a file."""
    limits.check_json(data, field=path or "checkpoint", error=DecodeError)
    try:
        decoded = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as err:
        where = f" {path}" if path else ""
        raise DecodeError(
            f"invalid kubelet device-plugin checkpoint{where}: {err}", path=path or None
        ) from err
    if decoded is None or decoded.data is None:
        return []
    return list(decoded.data.entries or [])


def read_checkpoint(path: str = CHECKPOINT_FILE) -> list[PodDevicesEntry]:
    """The pod device entries of the checkpoint file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise IOFailure(
            f"error reading the kubelet device-plugin checkpoint {path}: {err.strerror or err}",
            path=path,
        ) from err
    return parse_checkpoint(data, path=path)


def resource_map_of(entries: Iterable[PodDevicesEntry], pod_uid: str) -> dict[str, list[str]]:
    """``{resource: [device IDs, sorted]}`` over the entries of the pod with UID ``pod_uid``."""
    found: dict[str, list[str]] = {}
    for entry in entries:
        if entry.pod_uid == pod_uid:
            found.setdefault(entry.resource_name, []).extend(entry.ids())
    return {resource: sorted(ids) for resource, ids in found.items()}


def get_pod_resource_map(pod_uid: str, *, path: str = CHECKPOINT_FILE) -> dict[str, list[str]]:
    """The device IDs the checkpoint records for one pod, by resource name."""
    if not pod_uid:
        raise InvalidEnvironmentError(
            "cannot look up the pod's devices in the kubelet checkpoint: the pod UID is empty",
            field="K8S_POD_UID",
        )
    return resource_map_of(read_checkpoint(path), pod_uid)
