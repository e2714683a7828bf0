"""Device-info files (NPWG Device Information Spec): where they live and how Multus uses them.

A device plugin writes ``<root>/dp/<resource>-<deviceID>-device.json``. Before a delegate's
ADD, Multus copies it to the delegate's CNI file ``<root>/cni/<delegate>-<containerID>_<ifname>``
(the path it passes as capability ``CNIDeviceInfoFile``); after the ADD it reads the CNI file
(which the plugin may also have written) into the network-status ``device-info``; DEL removes
the CNI file (row 31). Every "/" in a file name becomes "-", as the NAD client does.

All of this is best effort, as in Go Multus: no function here raises. A device plugin that
writes no file, or a plugin that writes none, must not fail the pod's networking.
"""

from __future__ import annotations

import contextlib
import os

from pymultus.cni import gojson
from pymultus.cni.errors import CniError
from pymultus.k8s.devinfo import DeviceInfo, parse_device_info

#: The NAD client's ``baseDevInfoPath``; tests pass a temporary root instead.
DEVINFO_ROOT = "/var/run/k8s.cni.cncf.io/devinfo"
DP_SUBDIR = "dp"
CNI_SUBDIR = "cni"
#: Mode of a CNI file Multus writes: read-only, as Go writes it.
CNI_FILE_MODE = 0o444
#: Mode of a directory Multus creates. Go passes ``os.ModeDir`` (no permission bits at all),
#: which only root can use; 0755 lets non-root readers of the files (monitoring) in too.
DIR_MODE = 0o755


def dp_device_info_path(resource_name: str, device_id: str, *, root: str = DEVINFO_ROOT) -> str:
    """The device plugin's file for one device of ``resource_name``."""
    name = f"{resource_name.replace('/', '-')}-{device_id.replace('/', '-')}-device.json"
    return os.path.join(root, DP_SUBDIR, name)


def cni_device_info_path(
    delegate_name: str, container_id: str, ifname: str, *, root: str = DEVINFO_ROOT
) -> str:
    """The CNI file of one attachment; ``delegate_name`` is ``ns/nad`` for a NAD."""
    name = f"{delegate_name}-{container_id}_{ifname}".replace("/", "-")
    return os.path.join(root, CNI_SUBDIR, name)


def read_device_info(path: str) -> DeviceInfo | None:
    """The device info in ``path``; None when it is missing, unreadable or not valid."""
    try:
        with open(path, "rb") as f:
            return parse_device_info(f.read(), path=path)
    except (OSError, CniError):
        return None


def copy_dp_to_cni(
    cni_path: str, resource_name: str, device_id: str, *, root: str = DEVINFO_ROOT
) -> bool:
    """Copy the device plugin's file to ``cni_path``; True when a file was written.

    As the NAD client's ``CopyDeviceInfoForCNIFromDP``: the DP file is decoded and written
    again (unknown keys dropped), and an existing CNI file is left alone.
    """
    info = read_device_info(dp_device_info_path(resource_name, device_id, root=root))
    if info is None:
        return False
    return _write_new(cni_path, gojson.marshal(info))


def _write_new(path: str, data: bytes) -> bool:
    try:
        os.makedirs(os.path.dirname(path), mode=DIR_MODE, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, CNI_FILE_MODE)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), CNI_FILE_MODE)  # whatever the umask
            f.write(data)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return False
    return True


def remove_cni_device_info(cni_path: str) -> None:
    """DEL and rollback: remove the attachment's CNI file; a missing file is fine."""
    with contextlib.suppress(OSError):
        os.unlink(cni_path)
