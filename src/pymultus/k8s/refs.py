"""Typed references to Kubernetes objects.

Go Multus passes pods around as "ns/name" strings and once split one the wrong way; here a
reference is a frozen value with named parts, and its string form is only for messages.
"""

from __future__ import annotations

import msgspec


class PodRef(msgspec.Struct, frozen=True):
    """A pod as the runtime names it: namespace, name and (when the runtime sent it) UID.

    The UID is empty when the runtime gave no ``K8S_POD_UID``; it never takes part in the
    string form, which is what Go Multus prints in messages (``ns/name``).
    """

    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class NadRef(msgspec.Struct, frozen=True):
    """A NetworkAttachmentDefinition: the namespace it lives in and its name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
