"""The resource types pymultus reads and writes through lightkube, all as plain JSON dicts.

Why dicts and not lightkube's typed models: the core needs a handful of fields (metadata,
annotations, a NAD's ``spec.config`` string) and must hand a NAD's config on as the exact
bytes the API held, so decoding every pod into a full model and back would cost time and
risk dropping fields a newer API server sends. Each class below is a lightkube
``Generic`` (a ``dict`` subclass), so ``client.get(RawPod, ...)`` returns the raw JSON object.

The classes are hand-written rather than made by ``create_namespaced_resource`` so that
mypy sees real classes, and the pod classes are deliberately *not* put in lightkube's
resource registry, where the typed ``Pod`` model owns ``v1/Pod``.
"""

from __future__ import annotations

from lightkube.core import resource as res
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import Generic, GenericGlobalResource, GenericNamespacedResource

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_KIND = "NetworkAttachmentDefinition"
NAD_PLURAL = "network-attachment-definitions"

_ALL_VERBS = [
    "delete",
    "deletecollection",
    "get",
    "global_list",
    "global_watch",
    "list",
    "patch",
    "post",
    "put",
    "watch",
]

_POD = res.ResourceDef("", "v1", "Pod")


class RawPod(GenericNamespacedResource):
    """A core/v1 Pod as its raw JSON object."""

    _api_info = res.ApiInfo(resource=_POD, plural="pods", verbs=_ALL_VERBS)


class RawPodStatus(res.NamespacedSubResource, Generic):  # type: ignore[misc]
    """The ``pods/status`` subresource: a PUT or PATCH here changes status and metadata,
    never spec."""

    _api_info = res.ApiInfo(
        resource=_POD, parent=_POD, plural="pods", verbs=["get", "patch", "put"], action="status"
    )


class RawEvent(GenericNamespacedResource):
    """A core/v1 Event, the kind client-go's event recorder (and so Go Multus) creates."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef("", "v1", "Event"),
        plural="events",
        verbs=["delete", "get", "list", "patch", "post", "put", "watch"],
    )


class NetworkAttachmentDefinition(GenericNamespacedResource):
    """``k8s.cni.cncf.io/v1`` NetworkAttachmentDefinition; ``spec.config`` is a JSON string."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef(NAD_GROUP, NAD_VERSION, NAD_KIND),
        plural=NAD_PLURAL,
        verbs=_ALL_VERBS,
    )


DRA_GROUP = "resource.k8s.io"
DRA_VERSION = "v1"


class RawResourceClaim(GenericNamespacedResource):
    """A ``resource.k8s.io/v1`` ResourceClaim (DRA): its ``status.allocation`` is read."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef(DRA_GROUP, DRA_VERSION, "ResourceClaim"),
        plural="resourceclaims",
        verbs=["get"],
    )


class RawResourceSlice(GenericGlobalResource):
    """A ``resource.k8s.io/v1`` ResourceSlice (cluster-scoped): the devices of a pool."""

    _api_info = res.ApiInfo(
        resource=res.ResourceDef(DRA_GROUP, DRA_VERSION, "ResourceSlice"),
        plural="resourceslices",
        verbs=["global_list", "global_watch", "list", "watch"],
    )


def _register_nad() -> None:
    """Let ``lightkube.codecs`` load NAD manifests, unless someone registered NADs first."""
    if resource_registry.get(f"{NAD_GROUP}/{NAD_VERSION}", NAD_KIND) is None:
        resource_registry.register(NetworkAttachmentDefinition)


_register_nad()


#: Every (apiGroup, resource, verb) pymultus's code uses: the ClusterRole in deploy/rbac.yaml
#: grants exactly these (a test compares them with the calls in the code and with the role).
REQUIRED_API_ACCESS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("", "pods", "get"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods/status", "patch"),
        ("", "pods/status", "update"),
        ("", "events", "create"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "list"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "watch"),
        ("resource.k8s.io", "resourceclaims", "get"),
        ("resource.k8s.io", "resourceslices", "list"),
        ("resource.k8s.io", "resourceslices", "watch"),
    }
)
