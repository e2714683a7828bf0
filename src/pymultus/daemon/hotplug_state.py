"""The hot-plug reconciler's bookkeeping per pod: backoff, and what ``pymultus status`` shows
(``daemon.hotplug`` runs the passes)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymultus.core.attach import Identity
from pymultus.k8s.calls import ApiCalls
from pymultus.k8s.objects import STATUS_ANNOTATION, Pod
from pymultus.k8s.refs import PodRef

Key = tuple[str, str]

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 300.0


@dataclass
class Retry:
    failures: int = 0
    next_at: float = 0.0  # time.time()
    last_error: str = ""

    def fail(self, error: str, now: float) -> None:
        self.failures += 1
        delay = min(BACKOFF_INITIAL * 2 ** (self.failures - 1), BACKOFF_MAX)
        self.next_at, self.last_error = now + delay, error


@dataclass
class PodState:
    annotation: str | None = None
    #: Passed over before: a pod seen for the first time may not have a sandbox yet, so
    #: a missing record is not looked for in the caches then.
    seen: bool = False
    retries: dict[Identity, Retry] = field(default_factory=dict)
    status_retry: Retry | None = None
    invalid: str = ""  # the error of the annotation value last refused
    running: bool = False
    again: bool = False
    timer: asyncio.TimerHandle | None = None
    attached: list[str] = field(default_factory=list)


def live_status(api: ApiCalls, pod: Pod) -> str:
    """The pod's network-status as the API has it now (the watch cache does not keep it)."""
    raw = api.get_pod(PodRef(pod.namespace, pod.name, pod.uid)) or {}
    annotations = raw.get("metadata", {}).get("annotations") or {}
    value = annotations.get(STATUS_ANNOTATION, "")
    return value if isinstance(value, str) else ""


def snapshot(pods: Mapping[Key, PodState], with_record: set[Key]) -> dict[str, Any]:
    """Per pod that has a sandbox (``with_record``): attached, pending (waiting for a retry)
    with the last error, the number of failures and the next retry (epoch seconds)."""
    shown: dict[str, Any] = {}
    for (ns, name), state in sorted(pods.items()):
        if (ns, name) not in with_record:
            continue
        pending = [
            {
                "network": f"{i[0]}/{i[1]}",
                "interface": i[2],
                "error": r.last_error,
                "failures": r.failures,
                "nextRetry": r.next_at,
            }
            for i, r in state.retries.items()
        ]
        entry: dict[str, Any] = {"attached": state.attached, "pending": pending}
        if state.status_retry is not None:
            entry["statusError"] = state.status_retry.last_error
        if state.invalid:
            entry["invalid"] = state.invalid
        shown[f"{ns}/{name}"] = entry
    return {"pods": shown}
