"""Hot-plug in standalone mode: pods from ``<podDir>/<ns>/<name>.yaml``, NADs from
``<nadDir>``, network-status into ``<statusDir>`` (issue #12).

There is no watch: the reconciler polls the pod files of the recorded sandboxes (twice a
second, so a change is picked up well within 2 s; ``k8s.files`` re-parses a file only when
its size or mtime changed). A pod without a file is left alone: its selection came from the
runtime (containerd's pod annotations), which cannot change on a running pod; to unplug
everything, set the file's annotation to ``[]``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from pymultus.cni.errors import CniError
from pymultus.core.deps import Deps
from pymultus.core.record import SandboxRecord
from pymultus.k8s.files import FileNads, FilePods, StateDirStatus, read_record
from pymultus.k8s.objects import Pod
from pymultus.k8s.refs import PodRef

POLL_SECONDS = 0.5


class FilePodLookup:
    """The hot-plug ``PodLookup`` of pod files (a bad file reads as "no pod": nothing
    changes until it is fixed)."""

    def __init__(self, pod_dir: str) -> None:
        self.files = FilePods(pod_dir)

    def get(self, key: tuple[str, str]) -> Pod | None:
        try:
            return self.files.get_pod(PodRef(key[0], key[1], ""), for_add=False)
        except CniError:
            return None


def standalone_deps_for(
    base: Deps, *, nad_dir: str, state_dir: str
) -> Callable[[SandboxRecord], Deps]:
    """``deps_for`` of the reconciler: NADs from files, status into the state directory
    (recorded as written by the sandbox), no events."""

    def deps_for(rec: SandboxRecord) -> Deps:
        status = StateDirStatus(state_dir, container_id=rec.container_id)
        return msgspec.structs.replace(base, nads=FileNads(nad_dir), status=status, events=None)

    return deps_for


def file_status(state_dir: str) -> Callable[[Pod], str]:
    """``read_status`` of the reconciler: the pod's network-status file."""

    def read(pod: Pod) -> str:
        found = read_record(state_dir, pod.namespace, pod.name)
        return found.network_status if found is not None else ""

    return read
