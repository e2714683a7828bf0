"""Kubernetes Events off the ADD's critical path.

Go Multus's daemon posts an ``AddedInterface`` event per attachment from the request's own
goroutine, through the client's shared rate limit, so a burst of pods queues behind its own
events (issue #7: three of the five API requests of a Go ADD are events). Here the core hands
each event to a bounded queue and returns; one thread sends them at most ``rate`` per second.
When the queue is full an event is dropped and counted: events are best effort, pods are not.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from pymultus.core.deps import EventSink
from pymultus.k8s.objects import Pod

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000  # events waiting; a node-reboot burst of 100 pods with 4 networks fits
RATE = 20.0  # events per second sent to the API server (client-go's recorder default is 1/s
# per object with bursts of 25; 20/s in total keeps events from competing with status writes)
_STOP = None


@dataclass
class BackgroundEvents:
    """An ``EventSink`` that queues; ``inner`` is the real sink (called from one thread)."""

    inner: EventSink
    rate: float = RATE
    dropped: int = 0
    sent: int = 0
    _queue: queue.Queue[tuple[Pod, str, str, str] | None] = field(
        default_factory=lambda: queue.Queue(QUEUE_SIZE)
    )
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def emit(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait((pod, type_, reason, message))
        except queue.Full:
            self.dropped += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (for at most ``timeout`` seconds), then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        interval = 1.0 / self.rate
        while (item := self._queue.get()) is not _STOP:
            started = time.monotonic()
            try:
                self.inner.emit(*item)
                self.sent += 1
            except Exception:  # a sink must not raise; if it does, the thread must live on
                log.exception("sending an event failed")
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
