"""Finding the pod of a CNI call (behaviour rows 40, 41, 50)."""

from __future__ import annotations

from pymultus.cni.errors import CniError, UnknownContainerError
from pymultus.core.deps import Deps
from pymultus.core.request import Request
from pymultus.k8s.objects import Pod


def pod_for_add(req: Request, deps: Deps) -> Pod | None:
    """The pod, or None (no Kubernetes, no pod identity in CNI_ARGS, or the pod is gone).
    A UID that differs from the runtime's fails the ADD unless the pod is static."""
    ref = req.k8s.pod_ref
    if deps.pods is None or ref is None:
        return None
    pod = deps.pods.get_pod(ref, for_add=True)
    mismatch = pod is not None and bool(req.k8s.pod_uid) and pod.uid not in ("", req.k8s.pod_uid)
    if mismatch and pod is not None and not pod.is_static:
        raise UnknownContainerError(
            f"expected pod UID {req.k8s.pod_uid!r} but got {pod.uid!r} from Kube API",
            pod=str(ref),
        )
    return pod


def pod_for_del(req: Request, deps: Deps) -> Pod | None:
    """DEL never fails because the pod cannot be read: errors mean "no pod"."""
    ref = req.k8s.pod_ref
    if deps.pods is None or ref is None:
        return None
    try:
        return deps.pods.get_pod(ref, for_add=False)
    except CniError:
        return None
