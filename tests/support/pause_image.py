"""A pause image built locally, so the end-to-end tests need no registry.

The image has one uncompressed layer holding ``/bin/busybox`` (Debian's busybox-static, a
statically linked binary that runs without any library) and ``/bin/sleep`` linking to it; its
command is ``/bin/sleep infinity``, all a sandbox's pid 1 has to do. The archive is an OCI image
layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) as ``ctr images import`` reads it;
the image's name is the ``io.containerd.image.name`` annotation of the index entry.

The bytes are deterministic (fixed mtimes and owners), so the same busybox gives the same image
id and a re-import is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUSYBOX = "/bin/busybox"
DEFAULT_NAME = "localhost/pymultus-e2e/pause:1"
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


def _add(
    tar: tarfile.TarFile,
    name: str,
    *,
    kind: bytes,
    data: bytes = b"",
    link: str = "",
    mode: int = 0o755,
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.uid, info.gid, info.mode = kind, 0, 0, 0, mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer_tar(busybox: bytes) -> bytes:
    """The root filesystem: ``bin/busybox`` and ``bin/sleep`` -> busybox."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "bin", kind=tarfile.DIRTYPE)
        _add(tar, "bin/busybox", kind=tarfile.REGTYPE, data=busybox)
        _add(tar, "bin/sleep", kind=tarfile.SYMTYPE, link="busybox")
    return buf.getvalue()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def image_blobs(busybox: bytes) -> tuple[Blob, Blob, Blob]:
    """(layer, config, manifest) of the pause image."""
    layer = Blob(LAYER_TYPE, layer_tar(busybox))
    config = Blob(
        CONFIG_TYPE,
        _json(
            {
                "architecture": _ARCH.get(platform.machine(), platform.machine()),
                "os": "linux",
                "config": {"Cmd": ["/bin/sleep", "infinity"], "Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            }
        ),
    )
    manifest = Blob(
        MANIFEST_TYPE,
        _json(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
            }
        ),
    )
    return layer, config, manifest


def build_pause_archive(dest: Path, *, name: str = DEFAULT_NAME, busybox: str = BUSYBOX) -> Path:
    """Write the OCI archive of the pause image named ``name`` to ``dest``; returns ``dest``."""
    blobs = image_blobs(Path(busybox).read_bytes())
    manifest = blobs[-1]
    tag = name.rsplit(":", 1)[-1]
    index = {
        "schemaVersion": 2,
        "manifests": [
            manifest.descriptor(
                annotations={
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                }
            )
        ],
    }
    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "blobs", kind=tarfile.DIRTYPE)
        _add(tar, "blobs/sha256", kind=tarfile.DIRTYPE)
        for blob in blobs:
            path = f"blobs/sha256/{blob.digest[7:]}"
            _add(tar, path, kind=tarfile.REGTYPE, data=blob.data, mode=0o644)
        layout = _json({"imageLayoutVersion": "1.0.0"})
        _add(tar, "oci-layout", kind=tarfile.REGTYPE, data=layout, mode=0o644)
        _add(tar, "index.json", kind=tarfile.REGTYPE, data=_json(index), mode=0o644)
    return dest
