"""One CNI call as the core sees it: the parsed environment, the Multus config, the pod's
identity from CNI_ARGS. Built once per call, frozen, and shared by every step."""

from __future__ import annotations

import msgspec

from pymultus.cni.args import parse_cni_args
from pymultus.cni.env import CmdArgs
from pymultus.config.multus import MultusConf, parse_multus_conf
from pymultus.k8s.refs import PodRef


class K8sArgs(msgspec.Struct, frozen=True):
    """The ``K8S_POD_*`` keys of CNI_ARGS; unknown keys are ignored (containerd and podman
    always send ``IgnoreUnknown``, and Multus never needed the others)."""

    pod_namespace: str = ""
    pod_name: str = ""
    infra_container_id: str = ""
    pod_uid: str = ""

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> K8sArgs:
        found = dict(pairs)
        return cls(
            pod_namespace=found.get("K8S_POD_NAMESPACE", ""),
            pod_name=found.get("K8S_POD_NAME", ""),
            infra_container_id=found.get("K8S_POD_INFRA_CONTAINER_ID", ""),
            pod_uid=found.get("K8S_POD_UID", ""),
        )

    @property
    def pod_ref(self) -> PodRef | None:
        if not (self.pod_namespace and self.pod_name):
            return None
        return PodRef(self.pod_namespace, self.pod_name, self.pod_uid)


class Request(msgspec.Struct, frozen=True):
    cmd: CmdArgs
    conf: MultusConf
    runtime_args: tuple[tuple[str, str], ...]
    k8s: K8sArgs

    @classmethod
    def build(cls, cmd: CmdArgs, conf: MultusConf | None = None) -> Request:
        pairs = parse_cni_args(cmd.args)
        return cls(
            cmd=cmd,
            conf=conf if conf is not None else parse_multus_conf(cmd.stdin),
            runtime_args=tuple(pairs),
            k8s=K8sArgs.from_pairs(pairs),
        )

    @property
    def who(self) -> str:
        """``[ns/pod/uid]`` prefix Go Multus puts on its errors; the container id otherwise."""
        k = self.k8s
        if k.pod_name:
            return f"[{k.pod_namespace}/{k.pod_name}/{k.pod_uid}]"
        return f"[{self.cmd.container_id}]"
