"""Standalone mode: Multus without Kubernetes. NADs and pods are local files, network-status
goes to a state directory, and everything else is the one core.

Where a pod's network selection comes from, in order:

1. ``runtimeConfig["io.kubernetes.cri.pod-annotations"]``: containerd sends every annotation
   of the pod there when the config declares the capability
   ``"io.kubernetes.cri.pod-annotations": true``. It is used when it holds a Multus
   annotation (``k8s.v1.cni.cncf.io/networks`` or ``v1.multus-cni.io/default-network``);
2. the pod file ``<pod_dir>/<namespace>/<name>.yaml``;
3. nothing: the pod gets its cluster network (and ``defaultNetworks``) only.

The pod's namespace, name and UID always come from CNI_ARGS (``K8S_POD_*``). Because the
annotations travel with the request, standalone ``Deps`` are built per request from the
request's own config: ``standalone_deps(conf)`` has the shape of the thin plugin's
``thin_deps(conf)``. ``run_standalone(req)`` is the whole entry point: it also removes the
pod's status file after a successful DEL (Kubernetes drops the annotation with the pod; a state
directory has to be cleaned explicitly).

Who uses it: the daemon whenever it has no Kubernetes; the thin plugin when it has none and its
config names a ``clusterNetwork`` (or ``nadDir``/``podDir``/``statusDir``) — a config of static
``delegates`` alone keeps Go's plain mode there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from pymultus.cni.convert import AnyResult
from pymultus.cni.errors import CniError
from pymultus.config.multus import MultusConf
from pymultus.core import dispatch
from pymultus.core.deps import Deps
from pymultus.core.request import Request
from pymultus.k8s.files import (
    DEFAULT_NAD_DIR,
    DEFAULT_POD_DIR,
    DEFAULT_STATE_DIR,
    FileNads,
    FilePods,
    StateDirStatus,
    remove_record,
    string_map,
)
from pymultus.k8s.objects import DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, Pod
from pymultus.k8s.refs import PodRef

log = logging.getLogger(__name__)

CRI_POD_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"
_SELECTION_KEYS = (NETWORKS_ANNOTATION, DEFAULT_NETWORK_ANNOTATION)


def runtime_annotations(conf: MultusConf) -> Any:
    """The raw ``io.kubernetes.cri.pod-annotations`` value of the request, None if absent."""
    rc = conf.runtime_config
    return rc.raw.get(CRI_POD_ANNOTATIONS) if rc is not None else None


@dataclass
class StandalonePods:
    """The core's ``PodSource`` for one request: the runtime's annotations, else the pod file,
    else a pod without annotations. It never answers "no such pod": without an API server
    every pod the runtime names exists."""

    runtime: Any = None  # the raw runtimeConfig value; checked only when a pod is asked for
    files: FilePods = field(default_factory=FilePods)

    def get_pod(self, ref: PodRef, *, for_add: bool) -> Pod:
        """Raises ``InvalidConfigError`` for a runtime map or pod file that is not a map of
        strings (a DEL treats any error as "no pod" and goes on from its cache)."""
        annotations = self._runtime_map()
        if annotations is not None and any(k in annotations for k in _SELECTION_KEYS):
            return Pod(ref.namespace, ref.name, ref.uid, annotations=annotations)
        from_file = self.files.get_pod(ref, for_add=for_add)
        if from_file is not None:
            return from_file
        return Pod(ref.namespace, ref.name, ref.uid, annotations=annotations or {})

    def _runtime_map(self) -> Mapping[str, str] | None:
        if self.runtime is None:
            return None
        return string_map(self.runtime, f"runtimeConfig.{CRI_POD_ANNOTATIONS}")


def standalone_deps(
    conf: MultusConf,
    *,
    nad_dir: str = DEFAULT_NAD_DIR,
    pod_dir: str = DEFAULT_POD_DIR,
    state_dir: str = DEFAULT_STATE_DIR,
    container_id: str = "",
    base: Deps | None = None,
) -> Deps:
    """``Deps`` for one standalone request. ``container_id`` (the request's sandbox) is
    recorded in the status file; ``base`` supplies the executor and timeouts (the default
    ``Deps()`` values otherwise). No events: there is no API server to send them to."""
    return msgspec.structs.replace(
        base if base is not None else Deps(),
        pods=StandalonePods(runtime_annotations(conf), FilePods(pod_dir)),
        nads=FileNads(nad_dir),
        status=StateDirStatus(state_dir, container_id=container_id),
        events=None,
    )


def run_standalone(
    req: Request,
    *,
    nad_dir: str = DEFAULT_NAD_DIR,
    pod_dir: str = DEFAULT_POD_DIR,
    state_dir: str = DEFAULT_STATE_DIR,
    base: Deps | None = None,
) -> AnyResult | None:
    """Run one CNI call in standalone mode; ADD returns the cluster network's result."""
    deps = standalone_deps(
        req.conf,
        nad_dir=nad_dir,
        pod_dir=pod_dir,
        state_dir=state_dir,
        container_id=req.cmd.container_id,
        base=base,
    )
    result = dispatch.run(req, deps)
    if req.cmd.command == "DEL":
        forget_status(req, state_dir)
    return result


def forget_status(req: Request, state_dir: str) -> None:
    """After a successful DEL: remove the pod's status file if this sandbox wrote it. Best
    effort, as DEL must not fail for bookkeeping: a leftover file is overwritten by the pod's
    next ADD."""
    ref = req.k8s.pod_ref
    if ref is None:
        return
    try:
        remove_record(state_dir, ref, container_id=req.cmd.container_id)
    except CniError as exc:
        log.warning("%s: cannot remove the network-status file: %s", req.who, exc)
