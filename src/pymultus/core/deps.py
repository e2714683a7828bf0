"""Everything the core does to the outside world comes in through ``Deps``.

Thin, thick and standalone modes differ only in what they put here: where pods and NADs come
from, where network-status and events go, and how plugins are executed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from pymultus.cni.invoke import Executor
from pymultus.k8s.devinfo_files import DEVINFO_ROOT
from pymultus.k8s.dra import DraApi
from pymultus.k8s.objects import Nad, Pod
from pymultus.k8s.refs import PodRef
from pymultus.k8s.resourcemap import CHECKPOINT_FILE, KUBELET_SOCKET


def _link_exists(netns: str, ifname: str) -> bool:
    """``netns.links.link_exists``, imported at the first use (ctypes: only ADD needs it)."""
    from pymultus.netns.links import link_exists  # noqa: PLC0415

    return link_exists(netns, ifname)


class PodSource(Protocol):
    def get_pod(self, ref: PodRef, *, for_add: bool) -> Pod | None:
        """The pod, or None when it does not exist. Raises ``TryAgainLaterError`` when the
        source cannot answer (API server unreachable)."""
        ...


class NadSource(Protocol):
    def get_nad(self, namespace: str, name: str) -> Nad | None: ...


class StatusSink(Protocol):
    def write_network_status(self, pod: Pod, value: str) -> None:
        """Record the network-status annotation of ``pod``; a pod that is gone is fine."""
        ...


class EventSink(Protocol):
    def emit(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        """Best effort: never raises."""
        ...


class Deps(msgspec.Struct):
    pods: PodSource | None = None
    nads: NadSource | None = None
    status: StatusSink | None = None
    events: EventSink | None = None
    executor: Executor | None = None
    plugin_timeout: float = 60.0
    #: Thin mode appends the runtime's own CNI_ARGS after Multus's K8S args (Go does so in
    #: thin mode only; the thick daemon passes only its own set).
    append_runtime_args: bool = True
    #: ADD, STATUS and GC wait this long (seconds) for ``readinessindicatorfile``, checking
    #: every ``readiness_interval`` seconds: Go's 45 s and 1 s (row 35).
    readiness_timeout: float = 45.0
    readiness_interval: float = 1.0
    #: Where the device IDs of a pod come from (row 28): the kubelet's PodResources socket,
    #: else the device-manager checkpoint; and the root of the device-info files (row 31).
    #: Tests point them at temporary paths.
    kubelet_socket: str = KUBELET_SOCKET
    kubelet_checkpoint: str = CHECKPOINT_FILE
    devinfo_root: str = DEVINFO_ROOT
    #: Where a pod's ResourceClaims and ResourceSlices are read (DRA devices); None: no DRA.
    dra: DraApi | None = None
    #: Keep the per-sandbox attachment record (``core.record``): the daemon with hot-plug on.
    keep_records: bool = False
    link_exists: Callable[[str, str], bool] = _link_exists

    @property
    def has_kubernetes(self) -> bool:
        return self.pods is not None
