"""Pods, NADs and network-status as local files: the sources of standalone mode (no API server).

Layout (every directory is optional; a missing one simply holds nothing)::

    /etc/pymultus/nads/<namespace>/*.yaml|*.yml|*.json   NetworkAttachmentDefinitions
    /etc/pymultus/pods/<namespace>/<name>.yaml|.yml|.json a pod's annotations (its selection)
    /var/lib/pymultus/status/<namespace>/<name>.json      network-status, one file per pod

NAD files hold the CRD's own schema, so ``kubectl``-style manifests work unchanged: a YAML file
may hold several documents, a ``List`` (or ``NetworkAttachmentDefinitionList``) is opened up,
and documents of other kinds are ignored. The directory names the namespace; a document whose
``metadata.namespace`` names another one is not in this namespace and is skipped. When two
documents share a name, ``<name>.yaml`` (the fast path) wins, then the first file in name order.

Parsed files are cached by path and (mtime, size, inode, ctime), so repeated lookups in a
long-lived process re-parse a file only after it changed; a broken file is cached as broken too.

Status files are written atomically (``cni.atomic``: temporary file, rename) in the shape a
pod's status would carry the annotation::

    {"namespace": "ns", "name": "pod", "uid": "…", "containerID": "<sandbox id>",
     "annotations": {"k8s.v1.cni.cncf.io/network-status": "[{…}]"}}

``containerID`` lets the DEL of an old sandbox leave alone the file of a newer sandbox of a pod
with the same name (a StatefulSet pod that was recreated).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import yaml

from pymultus.cni import gojson, limits
from pymultus.cni.atomic import write_atomic
from pymultus.cni.errors import CniError, DecodeError, InvalidConfigError, IOFailure, rebuild
from pymultus.k8s.objects import RESOURCE_NAME_ANNOTATION, STATUS_ANNOTATION, Nad, Pod
from pymultus.k8s.refs import PodRef

DEFAULT_NAD_DIR = "/etc/pymultus/nads"
DEFAULT_POD_DIR = "/etc/pymultus/pods"
DEFAULT_STATE_DIR = "/var/lib/pymultus/status"
EXTENSIONS: tuple[str, ...] = (".yaml", ".yml", ".json")
NAD_KIND = "NetworkAttachmentDefinition"
LIST_KINDS = frozenset({"List", "NetworkAttachmentDefinitionList"})
_MAX_NAME = 253  # Kubernetes object names are DNS-1123 subdomains
_CACHE_ENTRIES = 1024  # files; a node rarely has more NADs than this


def safe_component(value: str) -> bool:
    """True when ``value`` can be one path component: a namespace or name taken from CNI_ARGS
    or an annotation must never lead outside the directory (``..``, ``/``)."""
    return (
        bool(value)
        and len(value) <= _MAX_NAME
        and value not in (".", "..")
        and "/" not in value
        and "\0" not in value
    )


# ---------------------------------------------------------------- parsing, cached


def parse_documents(data: bytes, path: str) -> list[Any]:
    """Every document of a manifest file: YAML (several ``---`` documents allowed) or, for
    ``.json``, one JSON value (a top-level array counts as several documents)."""
    try:
        if path.endswith(".json"):
            limits.check_json(data, field=path, max_bytes=limits.MAX_FILE_BYTES)
            value = msgspec.json.decode(data)
            return list(value) if isinstance(value, list) else [value]
        return limits.load_yaml(data, field=path)
    except (msgspec.DecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{path}: not valid {_format(path)}: {exc}", path=path) from exc


def _format(path: str) -> str:
    return "JSON" if path.endswith(".json") else "YAML"


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


@dataclass
class DocumentCache:
    """Parsed manifest files by path, valid while the file's stat signature is unchanged."""

    max_entries: int = _CACHE_ENTRIES
    _entries: dict[str, tuple[tuple[int, ...], list[Any] | CniError]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    parses: int = 0  # how many files were really parsed (tests and metrics read it)

    def load(self, path: str) -> list[Any] | None:
        """The documents of ``path``; None when it does not exist. Raises ``DecodeError`` for
        a file that does not parse, ``IOFailure`` for one that cannot be read."""
        try:
            sig = _signature(os.stat(path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IOFailure(f"cannot read {path}: {exc.strerror}", path=path) from exc
        with self._lock:
            cached = self._entries.get(path)
        if cached is None or cached[0] != sig:
            cached = (sig, self._parse(path))
            with self._lock:
                self._entries.pop(path, None)
                self._entries[path] = cached
                while len(self._entries) > self.max_entries:
                    del self._entries[next(iter(self._entries))]
        docs = cached[1]
        if isinstance(docs, CniError):
            raise rebuild(docs, docs.msg)
        return docs

    def _parse(self, path: str) -> list[Any] | CniError:
        self.parses += 1
        try:
            with open(path, "rb") as f:
                return parse_documents(f.read(), path)
        except OSError as exc:
            return IOFailure(f"cannot read {path}: {exc.strerror}", path=path)
        except CniError as exc:
            return exc


#: Shared by every source of the process, so per-request ``Deps`` still reuse parsed files.
SHARED_CACHE = DocumentCache()


# ---------------------------------------------------------------- NADs


def manifest_objects(docs: Sequence[Any]) -> Iterator[Mapping[str, Any]]:
    """Every object of the documents, ``List`` kinds opened up; non-objects skipped."""
    for doc in docs:
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") in LIST_KINDS and isinstance(doc.get("items"), list):
            yield from (item for item in doc["items"] if isinstance(item, Mapping))
        else:
            yield doc


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def nad_from_object(obj: Mapping[str, Any], namespace: str, path: str) -> Nad:
    """The NAD view of one manifest object; ``spec.config`` must be a string (the CRD says so;
    a YAML mapping there is the most common mistake)."""
    meta = _metadata(obj)
    name = str(meta.get("name", ""))
    spec = obj.get("spec")
    spec = spec if spec is not None else {}
    where = f"network-attachment-definition {namespace}/{name} in {path}"
    if not isinstance(spec, Mapping):
        raise InvalidConfigError(f"{where}: spec must be an object", field="spec", path=path)
    config = spec.get("config")
    if config is not None and not isinstance(config, str):
        raise InvalidConfigError(
            f"{where}: spec.config must be a string holding the CNI config JSON "
            "(write `config: |` followed by the JSON)",
            field="spec.config",
            path=path,
            network=f"{namespace}/{name}",
        )
    annotations = meta.get("annotations")
    resource = (
        annotations.get(RESOURCE_NAME_ANNOTATION, "") if isinstance(annotations, Mapping) else ""
    )
    return Nad(namespace=namespace, name=name, config=config or "", resource_name=str(resource))


def find_nad(docs: Sequence[Any], namespace: str, name: str, path: str) -> Nad | None:
    """The NAD ``name`` among ``docs`` (a file of directory ``namespace``), or None."""
    for obj in manifest_objects(docs):
        meta = _metadata(obj)
        if obj.get("kind", NAD_KIND) != NAD_KIND or meta.get("name") != name:
            continue
        if meta.get("namespace") not in (None, "", namespace):
            continue
        return nad_from_object(obj, namespace, path)
    return None


def _manifest_files(directory: str) -> list[str]:
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(directory)
            if entry.name.endswith(EXTENSIONS) and not entry.name.startswith(".")
        )
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise IOFailure(f"cannot list {directory}: {exc.strerror}", path=directory) from exc
    return [os.path.join(directory, n) for n in names]


@dataclass
class FileNads:
    """NADs from ``<root>/<namespace>/`` (the core's ``NadSource``)."""

    root: str = DEFAULT_NAD_DIR
    cache: DocumentCache = field(default_factory=lambda: SHARED_CACHE)

    def get_nad(self, namespace: str, name: str) -> Nad | None:
        """The NAD, or None. A file that does not parse is reported only when the NAD is found
        nowhere else (it may be the one holding it), so one broken file does not break every
        other NAD of the namespace."""
        if not (safe_component(namespace) and safe_component(name)):
            return None
        directory = os.path.join(self.root, namespace)
        fast = [os.path.join(directory, name + ext) for ext in EXTENSIONS]
        broken: list[CniError] = []
        for path in dict.fromkeys([*fast, *_manifest_files(directory)]):
            try:
                docs = self.cache.load(path)
            except (DecodeError, IOFailure) as exc:
                broken.append(exc)
                continue
            nad = find_nad(docs, namespace, name, path) if docs else None
            if nad is not None:
                return nad
        if broken:
            raise broken[0]
        return None


# ---------------------------------------------------------------- pods


def pod_from_documents(docs: Sequence[Any], ref: PodRef, path: str) -> Pod | None:
    """The pod ``ref`` from a pod file: the document named so, or one without a name. The
    runtime's UID wins over one in the file (the file describes the pod by name only)."""
    for obj in manifest_objects(docs):
        meta = _metadata(obj)
        if obj.get("kind", "Pod") != "Pod" or meta.get("name") not in (None, "", ref.name):
            continue
        return Pod(
            namespace=ref.namespace,
            name=ref.name,
            uid=ref.uid or str(meta.get("uid", "")),
            annotations=string_map(meta.get("annotations"), "metadata.annotations", path),
        )
    return None


def string_map(value: Any, where: str, path: str = "") -> dict[str, str]:
    """Annotations: a map of strings to strings (null is empty), as the API server insists."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidConfigError(
            f"{where} must be a map of strings", field=where, path=path or None
        )
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidConfigError(
                f"{where}.{key} must be a string, got {item!r} (quote it)",
                field=f"{where}.{key}",
                path=path or None,
            )
    return dict(value)


@dataclass
class FilePods:
    """Pods from ``<root>/<namespace>/<name>.yaml`` (or ``.yml``/``.json``)."""

    root: str = DEFAULT_POD_DIR
    cache: DocumentCache = field(default_factory=lambda: SHARED_CACHE)

    def get_pod(self, ref: PodRef, *, for_add: bool) -> Pod | None:
        """The pod file's pod, or None when there is no file (``for_add`` changes nothing:
        a local file needs no retries)."""
        if not (safe_component(ref.namespace) and safe_component(ref.name)):
            return None
        for ext in EXTENSIONS:
            path = os.path.join(self.root, ref.namespace, ref.name + ext)
            docs = self.cache.load(path)
            if docs is not None:
                return pod_from_documents(docs, ref, path)
        return None


# ---------------------------------------------------------------- network-status files


class StatusRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One pod's status file."""

    namespace: str
    name: str
    uid: str = ""
    container_id: str = msgspec.field(default="", name="containerID")
    annotations: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def network_status(self) -> str:
        return self.annotations.get(STATUS_ANNOTATION, "")


def status_path(root: str, namespace: str, name: str) -> str:
    for value, key in ((namespace, "K8S_POD_NAMESPACE"), (name, "K8S_POD_NAME")):
        if not safe_component(value):
            raise InvalidConfigError(f"{key} {value!r} cannot name a status file", field=key)
    return os.path.join(root, namespace, name + ".json")


_WRITE_TRIES = 3


def write_record(root: str, record: StatusRecord) -> str:
    """Write ``record`` atomically; returns its path. ``IOFailure`` when that fails."""
    path = status_path(root, record.namespace, record.name)
    directory = os.path.dirname(path)
    data = gojson.marshal_indent(msgspec.to_builtins(record)) + b"\n"
    for attempt in range(_WRITE_TRIES):
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise IOFailure(f"cannot write {path}: {exc.strerror}", path=path) from exc
        try:
            write_atomic(path, data, mode=0o644)
        except IOFailure as exc:
            # The namespace directory went away between makedirs and the write: the last
            # record of another pod of the namespace was removed (``remove_record``).
            gone = isinstance(exc.__cause__, FileNotFoundError)
            if not gone or attempt == _WRITE_TRIES - 1:
                raise
            continue
        break
    return path


def _decode_record(data: bytes, path: str) -> StatusRecord:
    limits.check_json(data, field=path, max_bytes=limits.MAX_FILE_BYTES, error=DecodeError)
    try:
        return msgspec.json.decode(data, type=StatusRecord)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{path}: not a pymultus status file: {exc}", path=path) from exc


def read_record(root: str, namespace: str, name: str) -> StatusRecord | None:
    """The status file of a pod, or None when there is none."""
    path = status_path(root, namespace, name)
    try:
        with open(path, "rb") as f:
            return _decode_record(f.read(), path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IOFailure(f"cannot read {path}: {exc.strerror}", path=path) from exc


def list_records(root: str = DEFAULT_STATE_DIR) -> list[StatusRecord]:
    """Every readable status file under ``root``, by namespace and name (for ``pymultus
    status``); files that do not decode are skipped."""
    records = []
    for directory in _subdirs(root):
        for path in _manifest_files(directory):
            if not path.endswith(".json"):
                continue
            with contextlib.suppress(OSError, DecodeError), open(path, "rb") as f:
                records.append(_decode_record(f.read(), path))
    return sorted(records, key=lambda r: (r.namespace, r.name))


def _subdirs(root: str) -> list[str]:
    try:
        return sorted(e.path for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def remove_record(root: str, ref: PodRef, *, container_id: str) -> bool:
    """Remove the status file of ``ref`` if the sandbox ``container_id`` wrote it, and the
    namespace's directory when that was its last file; True when removed. Lock-free: the
    file is renamed away first, and put back (unless an even newer one appeared meanwhile)
    when it belongs to another sandbox."""
    path = status_path(root, ref.namespace, ref.name)
    grabbed = f"{path}.del-{os.getpid()}-{threading.get_ident()}"
    try:
        os.rename(path, grabbed)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise IOFailure(f"cannot remove {path}: {exc.strerror}", path=path) from exc
    try:
        with open(grabbed, "rb") as f:
            mine = _decode_record(f.read(), path).container_id == container_id
    except (OSError, DecodeError):
        mine = True  # unreadable: nobody can use it
    with contextlib.suppress(OSError):
        if not mine:
            _put_back(grabbed, path)
        os.unlink(grabbed)
    if mine:
        with contextlib.suppress(OSError):  # not empty: other pods of the namespace remain
            os.rmdir(os.path.dirname(path))
    return mine


def _put_back(grabbed: str, path: str) -> None:
    """Restore another sandbox's record unless a newer one was written meanwhile."""
    try:
        os.link(grabbed, path)
    except FileExistsError:
        pass  # newer still: it wins
    except OSError:
        os.rename(grabbed, path)  # no hard links here: restore by name


@dataclass
class StateDirStatus:
    """network-status into ``<root>/<ns>/<name>.json`` (the core's ``StatusSink``).

    ``container_id`` is the sandbox of the request this sink serves (standalone ``Deps`` are
    built per request); it is recorded so that a later DEL removes only its own file.
    """

    root: str = DEFAULT_STATE_DIR
    container_id: str = ""

    def write_network_status(self, pod: Pod, value: str) -> None:
        write_record(
            self.root,
            StatusRecord(
                namespace=pod.namespace,
                name=pod.name,
                uid=pod.uid,
                container_id=self.container_id,
                annotations={STATUS_ANNOTATION: value},
            ),
        )
