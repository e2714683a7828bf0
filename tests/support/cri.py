"""A small kubelet for tests: the CRI calls kubelet makes for a pod sandbox, over gRPC.

No kubelet or crictl exists on Debian; the PyPI package ``container-runtime-interface-api``
(module ``cri_api``) has the ``runtime.v1`` stubs containerd 1.6 speaks. The calls and fields
are the ones kubelet sends, in kubelet's order::

    cri = CriClient("/tmp/x/containerd.sock")
    sandbox = cri.run_pod_sandbox(PodSpec("web-0", "team-a", annotations={...}))
    status = cri.pod_sandbox_status(sandbox)   # state, IPs, netns path, containerd's CNI result
    cri.stop_pod_sandbox(sandbox)              # CNI DEL with the netns
    cri.remove_pod_sandbox(sandbox)            # CNI DEL again, CNI_NETNS=""

Every failed call raises ``CriError`` with the gRPC code and containerd's message.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from cri_api.v1 import api_pb2 as pb
from cri_api.v1.api_pb2_grpc import ImageServiceStub, RuntimeServiceStub

#: Seconds a call may take. RunPodSandbox runs every CNI plugin of the pod; kubelet's own
#: default runtime request timeout is 2 minutes, one is plenty here.
DEFAULT_TIMEOUT = 60.0
_PROTOCOLS = {"tcp": pb.TCP, "udp": pb.UDP, "sctp": pb.SCTP}


class CriError(Exception):
    """A CRI call failed: ``code`` is the gRPC status name, ``message`` containerd's text."""

    def __init__(self, call: str, code: str, message: str) -> None:
        super().__init__(f"{call}: {code}: {message}")
        self.call, self.code, self.message = call, code, message


@dataclass(frozen=True)
class Port:
    """A container port published on the node (kubelet sends only those with a hostPort)."""

    container_port: int
    host_port: int
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass(frozen=True)
class PodSpec:
    """What kubelet takes from the pod object for RunPodSandbox."""

    name: str
    namespace: str = "default"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    attempt: int = 0


@dataclass(frozen=True)
class SandboxStatus:
    """The parts of PodSandboxStatus (verbose) the tests look at."""

    id: str
    state: str  # SANDBOX_READY or SANDBOX_NOTREADY
    ip: str
    additional_ips: tuple[str, ...]
    info: dict[str, Any]  # containerd's verbose "info" JSON

    @property
    def netns_path(self) -> str:
        """The sandbox's network namespace (``/var/run/netns/cni-<uuid>``), "" if none."""
        spec = self.info.get("runtimeSpec") or {}
        for ns in (spec.get("linux") or {}).get("namespaces") or []:
            if ns.get("type") == "network":
                return str(ns.get("path", ""))
        return ""

    @property
    def cni_result(self) -> dict[str, Any]:
        """The result containerd kept from the CNI ADD (go-cni's merged view)."""
        result: dict[str, Any] = self.info.get("cniResult") or {}
        return result


def sandbox_config(spec: PodSpec) -> pb.PodSandboxConfig:
    """The PodSandboxConfig kubelet builds: metadata, hostname, labels and annotations,
    host ports, and a pod network namespace (not the host's)."""
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(
            name=spec.name, uid=spec.uid, namespace=spec.namespace, attempt=spec.attempt
        ),
        hostname=spec.name,
        labels={
            "io.kubernetes.pod.name": spec.name,
            "io.kubernetes.pod.namespace": spec.namespace,
            "io.kubernetes.pod.uid": spec.uid,
            **spec.labels,
        },
        annotations=spec.annotations,
        port_mappings=[
            pb.PortMapping(
                protocol=_PROTOCOLS[p.protocol.lower()],
                container_port=p.container_port,
                host_port=p.host_port,
                host_ip=p.host_ip,
            )
            for p in spec.ports
        ],
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
            )
        ),
    )


class CriClient:
    """One gRPC channel to a CRI runtime's unix socket."""

    def __init__(self, socket_path: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.runtime = RuntimeServiceStub(self.channel)
        self.images = ImageServiceStub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, name: str, stub: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return getattr(stub, name)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            raise CriError(name, code, details or "") from None

    def version(self, *, timeout: float | None = None) -> str:
        """``<runtime name> <runtime version>``, e.g. ``containerd 1.6.20~ds1``."""
        reply = self._call("Version", self.runtime, pb.VersionRequest(version="v1"), timeout)
        return f"{reply.runtime_name} {reply.runtime_version}"

    def status_info(self) -> dict[str, Any]:
        """The runtime's verbose Status info, each value decoded (``cniconfig`` shows the CNI
        config containerd loaded)."""
        reply = self._call("Status", self.runtime, pb.StatusRequest(verbose=True))
        return {k: _decode(v) for k, v in reply.info.items()}

    def image_present(self, ref: str) -> bool:
        reply = self._call(
            "ImageStatus", self.images, pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))
        )
        return bool(reply.image.id)

    def run_pod_sandbox(self, spec: PodSpec) -> str:
        """Start the sandbox (the CNI ADD happens inside); returns its id."""
        reply = self._call(
            "RunPodSandbox", self.runtime, pb.RunPodSandboxRequest(config=sandbox_config(spec))
        )
        return str(reply.pod_sandbox_id)

    def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus:
        reply = self._call(
            "PodSandboxStatus",
            self.runtime,
            pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True),
        )
        status = reply.status
        return SandboxStatus(
            id=status.id,
            state=pb.PodSandboxState.Name(status.state),
            ip=status.network.ip,
            additional_ips=tuple(a.ip for a in status.network.additional_ips),
            info=_decode(reply.info.get("info", "{}")),
        )

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop the sandbox: kill its processes, CNI DEL with the netns, netns removed."""
        self._call(
            "StopPodSandbox", self.runtime, pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)
        )

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Forget the sandbox: a second CNI DEL (empty CNI_NETNS), then its files go."""
        self._call(
            "RemovePodSandbox",
            self.runtime,
            pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
        )

    def list_pod_sandboxes(self) -> list[str]:
        reply = self._call("ListPodSandbox", self.runtime, pb.ListPodSandboxRequest())
        return [str(item.id) for item in reply.items]

    def teardown(self, sandbox_id: str) -> None:
        """Stop then remove, as kubelet does when a pod is deleted."""
        self.stop_pod_sandbox(sandbox_id)
        self.remove_pod_sandbox(sandbox_id)


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
