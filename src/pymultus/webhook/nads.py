"""NAD existence for the webhook's warnings, with the answers "it exists" remembered a while.

Pods come in batches that name the same few NADs (a Deployment's replicas, a GitOps sync), and
each review must answer within the API server's timeout, so a NAD found is trusted for
``FOUND_TTL`` seconds instead of being fetched for every pod. "Not found" is never remembered:
the NAD may be created the next second, and the warning must stop as soon as it is. A NAD
deleted inside the window costs only a missing warning: the pod's ADD still reports it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pymultus.webhook.rules import NadLookup

#: Seconds a NAD found stays trusted (a warning is advice, not an admission rule).
FOUND_TTL = 30.0
#: NADs remembered at most; past that the memory starts over (a few hundred bytes each).
MAX_ENTRIES = 4096


class RememberFound:
    """``NadLookup`` over another one, remembering hits for ``ttl`` seconds."""

    def __init__(
        self,
        lookup: NadLookup,
        ttl: float = FOUND_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl
        self._clock = clock
        self._found: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def get_nad(self, namespace: str, name: str) -> object | None:
        key, now = (namespace, name), self._clock()
        with self._lock:
            if self._found.get(key, 0.0) > now:
                return True
        nad = self._lookup.get_nad(namespace, name)
        if nad is not None:
            with self._lock:
                if len(self._found) >= MAX_ENTRIES:
                    self._found.clear()
                self._found[key] = now + self._ttl
        return nad
