"""Pods, NADs, network-status and events straight from the API server (thin mode), shaped
as the core's ``Deps`` expects them."""

from __future__ import annotations

import msgspec

from pymultus.k8s.calls import ApiCalls
from pymultus.k8s.objects import STATUS_ANNOTATION, Nad, Pod
from pymultus.k8s.refs import PodRef

#: Thin mode polls for the pod every 250 ms for at most 2.5 s (behaviour row 50).
POD_ATTEMPTS = 10
POD_INTERVAL = 0.25


class ApiPods(msgspec.Struct):
    api: ApiCalls
    attempts: int = POD_ATTEMPTS
    interval: float = POD_INTERVAL

    def get_pod(self, ref: PodRef, *, for_add: bool) -> Pod | None:
        raw = self.api.get_pod_with_retry(
            ref, attempts=self.attempts if for_add else 1, interval=self.interval
        )
        return Pod.from_dict(raw) if raw is not None else None


class ApiNads(msgspec.Struct):
    api: ApiCalls

    def get_nad(self, namespace: str, name: str) -> Nad | None:
        raw = self.api.get_nad(namespace, name)
        return Nad.from_dict(raw) if raw is not None else None


class ApiStatus(msgspec.Struct):
    api: ApiCalls

    def write_network_status(self, pod: Pod, value: str) -> None:
        ref = PodRef(pod.namespace, pod.name, pod.uid)
        self.api.set_pod_annotation_status(ref, STATUS_ANNOTATION, value, expected_uid=pod.uid)


class ApiEvents(msgspec.Struct):
    api: ApiCalls

    def emit(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        ref = PodRef(pod.namespace, pod.name, pod.uid)
        self.api.emit_event(ref, type_=type_, reason=reason, message=message)
