"""The parts of Pods and NetworkAttachmentDefinitions that Multus reads, as small frozen views.

Sources (the API server, the daemon's watch cache, local files in standalone mode) all hand
the core these views, so the core never touches raw API objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from pymultus.k8s.dra import NO_CLAIMS, PodClaims, pod_claims

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
CONFIG_SOURCE_ANNOTATION = "kubernetes.io/config.source"


class Pod(msgspec.Struct, frozen=True):
    namespace: str
    name: str
    uid: str = ""
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)
    node_name: str = ""
    resource_version: str = ""
    #: The pod's ResourceClaims (DRA devices for NADs with a resourceName).
    claims: PodClaims = NO_CLAIMS
    host_network: bool = False  # spec.hostNetwork: no sandbox netns, nothing to hot-plug

    @property
    def is_static(self) -> bool:
        """Static (mirror) pods have a config source other than the API (row 40)."""
        source = self.annotations.get(CONFIG_SOURCE_ANNOTATION, "")
        return bool(source) and source != "api"

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Pod:
        meta = obj.get("metadata") or {}
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            annotations=dict(meta.get("annotations") or {}),
            node_name=(obj.get("spec") or {}).get("nodeName", ""),
            resource_version=meta.get("resourceVersion", ""),
            claims=pod_claims_of(obj),
            host_network=(obj.get("spec") or {}).get("hostNetwork") is True,
        )


def pod_claims_of(obj: Mapping[str, Any]) -> PodClaims:
    spec, status = obj.get("spec"), obj.get("status")
    return pod_claims(
        spec if isinstance(spec, Mapping) else None,
        status if isinstance(status, Mapping) else None,
    )


class Nad(msgspec.Struct, frozen=True):
    namespace: str
    name: str
    config: str = ""  # spec.config exactly as stored ("" = empty spec)
    resource_name: str = ""

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Nad:
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            config=(obj.get("spec") or {}).get("config", "") or "",
            resource_name=annotations.get(RESOURCE_NAME_ANNOTATION, ""),
        )
