"""Where pods and NADs live for the daemon: nowhere (standalone) or the stand-in API server.

Kubelet creates no pod; the API server already holds it when kubelet calls RunPodSandbox. So a
test first ``add_pod(spec)`` (a no-op in standalone mode, where containerd's
``io.kubernetes.cri.pod-annotations`` carry the selection), then drives the CRI, then reads
``network_status(spec)`` from wherever that mode writes it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pymultus.netns.enter import in_netns
from tests.e2e.node import NETNS_DIR, Node
from tests.support.apiserver import StandInApiServer
from tests.support.cri import PodSpec

STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"


class Cluster(Protocol):
    mode: str

    def add_pod(self, spec: PodSpec) -> None: ...

    def network_status(self, spec: PodSpec) -> list[dict[str, Any]]: ...


@dataclass
class Standalone:
    node: Node
    mode: str = "standalone"

    def add_pod(self, spec: PodSpec) -> None:
        """Nothing to do: the daemon reads the selection from containerd's runtimeConfig."""

    def network_status(self, spec: PodSpec) -> list[dict[str, Any]]:
        return self.node.network_status(spec.name)


@dataclass
class WithApiServer:
    node: Node
    api: StandInApiServer
    mode: str = "apiserver"

    def add_pod(self, spec: PodSpec) -> None:
        """The pod as the scheduler left it: bound to our node, same uid and annotations."""
        self.api.put_object(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": spec.name,
                    "namespace": spec.namespace,
                    "uid": spec.uid,
                    "annotations": dict(spec.annotations),
                },
                "spec": {
                    "nodeName": self.node.node_name,
                    "containers": [{"name": "main", "image": "localhost/app:1"}],
                },
            }
        )

    def network_status(self, spec: PodSpec) -> list[dict[str, Any]]:
        pod = self.api.get_object("pods", spec.namespace, spec.name)
        assert pod is not None, f"pod {spec.name} is gone from the API server"
        annotations = pod["metadata"].get("annotations") or {}
        assert STATUS_ANNOTATION in annotations, f"no network-status on {spec.name}"
        status: list[dict[str, Any]] = json.loads(annotations[STATUS_ANNOTATION])
        return status


@contextlib.contextmanager
def api_server_cluster(node: Node) -> Iterator[WithApiServer]:
    """The stand-in API server listening inside the node's host namespace (where the daemon
    runs) holding the NADs, and the daemon restarted against it; standalone again after."""
    api = StandInApiServer()
    with in_netns(str(NETNS_DIR / node.host)):
        api.start()  # the listening socket belongs to the namespace it was made in
    try:
        for nad in node.nad_objects():
            api.put_object(nad)
        kubeconfig = api.write_kubeconfig(node.path("kubeconfig"))
        node.start_daemon(str(kubeconfig))
        yield WithApiServer(node, api)
    finally:
        node.start_daemon(None)
        api.stop()
