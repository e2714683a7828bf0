"""Device information (the NPWG Device Information Spec), as the network-status carries it.

Go Multus decodes the CNI device-info file into the NAD client's typed ``DeviceInfo`` and
encodes that into the status, so unknown keys are dropped and the known ones come out in the
struct's order. These Structs have the same fields, names and order (NAD client v1.7.6), which
makes ``device-info`` in the status byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from pymultus.cni import limits
from pymultus.cni.errors import DecodeError

DEVICE_INFO_VERSION = "1.0.0"
TYPE_PCI = "pci"
TYPE_VHOST_USER = "vhost-user"
TYPE_MEMIF = "memif"
TYPE_VDPA = "vdpa"


class PciDevice(msgspec.Struct, omit_defaults=True):
    pci_address: str = msgspec.field(default="", name="pci-address")
    vhost_net: str = msgspec.field(default="", name="vhost-net")
    rdma_device: str = msgspec.field(default="", name="rdma-device")
    pf_pci_address: str = msgspec.field(default="", name="pf-pci-address")
    representor_device: str = msgspec.field(default="", name="representor-device")


class VdpaDevice(msgspec.Struct, omit_defaults=True):
    parent_device: str = msgspec.field(default="", name="parent-device")
    driver: str = ""
    path: str = ""
    pci_address: str = msgspec.field(default="", name="pci-address")
    pf_pci_address: str = msgspec.field(default="", name="pf-pci-address")
    representor_device: str = msgspec.field(default="", name="representor-device")


class VhostDevice(msgspec.Struct, omit_defaults=True):
    mode: str = ""
    path: str = ""


class MemifDevice(msgspec.Struct, omit_defaults=True):
    role: str = ""
    path: str = ""
    mode: str = ""


class DeviceInfo(msgspec.Struct, omit_defaults=True):
    """``{type, version, pci, vdpa, vhost-user, memif}``; empty parts are omitted, as in Go."""

    type: str = ""
    version: str = ""
    pci: PciDevice | None = None
    vdpa: VdpaDevice | None = None
    vhost_user: VhostDevice | None = msgspec.field(default=None, name="vhost-user")
    memif: MemifDevice | None = None


_decoder = msgspec.json.Decoder(DeviceInfo)


def parse_device_info(data: bytes, *, path: str = "") -> DeviceInfo:
    """Decode a device-info file (written by a device plugin, a CNI plugin or Multus)."""
    limits.check_json(data, field=path or "device-info", error=DecodeError)
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as err:
        raise DecodeError(f"invalid device-info JSON: {err}", path=path or None) from err


def device_info_from_mapping(value: Mapping[str, Any]) -> DeviceInfo:
    """The typed form of an already decoded device-info object."""
    try:
        return msgspec.convert(dict(value), DeviceInfo)
    except msgspec.ValidationError as err:
        raise DecodeError(f"invalid device-info: {err}", field="device-info") from err
