"""The per-sandbox attachment record hot-plug reconciles against (issue #12).

One file per sandbox, ``<cniDir>/pymultus-records/<containerID>.json``, written atomically
(``cni.atomic``) by ADD and after every hot-plug step, removed by the runtime's DEL. It holds
what is needed to run the sandbox again without the pod or the NADs: the CNI call's identity
(container id, netns, CNI_ARGS, CNI_PATH, the Multus config bytes after the daemon's
overlay), the pod, and per attachment its origin, the NAD it came from, the interface name,
the exact config bytes, runtime args and capability args used, and its result (for
network-status). Go Multus's delegate cache (``core.scratch``) stays as it is and is kept in
step, so Go can still tear the sandbox down after a switch back.

``state`` is ``attached`` or ``pending``: a hot-plug ADD is recorded ``pending`` before it runs
and ``attached`` after; a ``pending`` entry found later (the daemon died in between) is DELed
with its recorded config and tried again.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import msgspec

from pymultus.cni.atomic import write_atomic
from pymultus.cni.convert import AnyResult, to_current
from pymultus.cni.env import validate_container_id
from pymultus.cni.errors import CniError, DecodeError, IOFailure
from pymultus.cni.result import parse_result
from pymultus.core.scratch import read_if_present

RECORD_SUBDIR = "pymultus-records"

#: Origins of an attachment. Only ``annotation`` ones are ever reconciled.
CLUSTER = "cluster"
DEFAULT_NETWORKS = "defaultNetworks"
ANNOTATION = "annotation"
OTHER = "other"  # static delegates, the auxiliary chain

ATTACHED = "attached"
PENDING = "pending"


class Attachment(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One attachment of a sandbox."""

    network: str  # the status name: ns/nad for a NAD
    ifname: str
    origin: str
    config: bytes  # the exact delegate config (base64 in the file)
    is_list: bool = False
    nad_namespace: str = ""
    nad_name: str = ""
    auto_named: bool = False  # the name was chosen by Multus (net<N>), not requested
    runtime_args: list[tuple[str, str]] = msgspec.field(default_factory=list)
    capability_args: dict[str, Any] = msgspec.field(default_factory=dict)
    state: str = ATTACHED
    result: dict[str, Any] | None = None  # the delegate's result in the current version
    device_info: dict[str, Any] | None = None  # what network-status shows as device-info

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.nad_namespace, self.nad_name, self.ifname)


class SandboxRecord(msgspec.Struct, kw_only=True):
    container_id: str
    netns: str
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    cni_args: str = ""
    cni_path: list[str] = msgspec.field(default_factory=list)
    multus_conf: bytes = b""
    attachments: list[Attachment] = msgspec.field(default_factory=list)

    @property
    def pod_key(self) -> tuple[str, str]:
        return (self.pod_namespace, self.pod_name)


_decoder = msgspec.json.Decoder(SandboxRecord)


def result_dict(result: AnyResult) -> dict[str, Any]:
    """A delegate's result as the record keeps it: the current version, as JSON values."""
    value: dict[str, Any] = msgspec.to_builtins(to_current(result))
    return value


def result_of_cache(data: bytes) -> dict[str, Any] | None:
    """The result libcni cached (any version), as the record keeps it; None if unusable."""
    if not data:
        return None
    try:
        return result_dict(parse_result(data))
    except CniError:
        return None


def record_dir(cni_dir: str) -> str:
    return os.path.join(cni_dir, RECORD_SUBDIR)


def hotplug_state_path(socket_dir: str) -> str:
    """The daemon's hot-plug state per pod (attached, pending, last error, next retry), for
    ``pymultus status``: beside the daemon's socket, as run-time state that is not a cache."""
    return os.path.join(socket_dir, "pymultus-hotplug.json")


def record_path(cni_dir: str, container_id: str) -> str:
    return os.path.join(record_dir(cni_dir), validate_container_id(container_id) + ".json")


def save(cni_dir: str, record: SandboxRecord) -> None:
    """Replace the record atomically (0600 file in a 0700 directory: configs may hold
    credentials)."""
    directory = record_dir(cni_dir)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise IOFailure(
            f"cannot create {directory}: {exc.strerror or exc}", path=directory
        ) from exc
    write_atomic(record_path(cni_dir, record.container_id), msgspec.json.encode(record))


def load(cni_dir: str, container_id: str) -> SandboxRecord | None:
    """The record, None when there is none; ``DecodeError`` when it is corrupt."""
    path = record_path(cni_dir, container_id)
    data = read_if_present(path, "attachment record")
    return None if data is None else decode(data, path)


def decode(data: bytes, path: str = "") -> SandboxRecord:
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise DecodeError(f"attachment record is invalid: {exc}", path=path or None) from exc


def remove(cni_dir: str, container_id: str) -> None:
    """Delete the record; one that is already gone is fine (DEL is idempotent)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path(cni_dir, container_id))


def load_all(cni_dir: str) -> list[SandboxRecord]:
    """Every readable record (a corrupt one is skipped: it is reported when its sandbox
    is reconciled)."""
    return RecordCache(cni_dir).all()


class RecordCache:
    """``load_all`` for a caller that asks often (the reconciler, on every pass and resync):
    a record is parsed again only when its file changed (size, mtime or inode)."""

    def __init__(self, cni_dir: str) -> None:
        self.cni_dir = cni_dir
        self._seen: dict[str, tuple[tuple[int, ...], SandboxRecord]] = {}

    def all(self) -> list[SandboxRecord]:
        directory = record_dir(self.cni_dir)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        seen: dict[str, tuple[tuple[int, ...], SandboxRecord]] = {}
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                found = self._read(os.path.join(directory, name), name)
                if found is not None:
                    seen[name] = found
        self._seen = seen
        return [rec for _, rec in seen.values()]

    def _read(self, path: str, name: str) -> tuple[tuple[int, ...], SandboxRecord] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._seen.get(name)
        if cached is not None and cached[0] == sig:
            return cached
        try:
            rec = load(self.cni_dir, name[: -len(".json")])
        except CniError:
            return None
        return None if rec is None else (sig, rec)
