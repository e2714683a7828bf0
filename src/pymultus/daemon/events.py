"""Kubernetes Events off the ADD's critical path.

Go Multus's daemon posts an ``AddedInterface`` event per attachment from the request's own
goroutine, through the client's shared rate limit, so a burst of pods queues behind its own
events (issue #7: three of the five API requests of a Go ADD are events). Here the core hands
each event to a bounded queue and returns; one thread sends them at most ``rate`` per second.
When the queue is full an event is dropped and counted: events are best effort, pods are not.

Sending one costs about a millisecond of the daemon's CPU (and its GIL), which would slow
the very requests that queued them: the server reports when requests are in flight
(``set_busy``) and an event waits for a moment without any, at most ``hold`` seconds, so under
steady load events still go out, only later.
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
HOLD = 1.0  # seconds an event may wait for the daemon to have no request in flight
_STOP = None


@dataclass
class BackgroundEvents:
    """An ``EventSink`` that queues; ``inner`` is the real sink (called from one thread)."""

    inner: EventSink
    rate: float = RATE
    hold: float = HOLD
    dropped: int = 0
    sent: int = 0
    _queue: queue.Queue[tuple[float, Pod, str, str, str] | None] = field(
        default_factory=lambda: queue.Queue(QUEUE_SIZE)
    )
    _thread: threading.Thread | None = None
    _quiet: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._quiet.set()

    def set_busy(self, busy: bool) -> None:
        """Whether requests are in flight now (the server calls this on every change)."""
        if busy:
            self._quiet.clear()
        else:
            self._quiet.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def emit(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait((time.monotonic(), pod, type_, reason, message))
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
            queued, pod, type_, reason, message = item
            self._quiet.wait(max(0.0, queued + self.hold - time.monotonic()))
            started = time.monotonic()
            try:
                self.inner.emit(pod, type_, reason, message)
                self.sent += 1
            except Exception:  # a sink must not raise; if it does, the thread must live on
                log.exception("sending an event failed")
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
