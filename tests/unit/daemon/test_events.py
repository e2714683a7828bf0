"""Events leave the request at once and reach the API from one background thread."""

from __future__ import annotations

import threading
import time

from pymultus.daemon.events import BackgroundEvents
from pymultus.k8s.objects import Pod

POD = Pod("ns", "p", "uid")


class SlowSink:
    def __init__(self) -> None:
        self.got: list[str] = []
        self.release = threading.Event()

    def emit(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        self.release.wait(5)
        self.got.append(message)


def test_emit_returns_at_once_and_the_thread_sends_in_order() -> None:
    sink = SlowSink()
    events = BackgroundEvents(sink, rate=1000)
    events.start()
    started = time.monotonic()
    for i in range(5):
        events.emit(POD, "Normal", "AddedInterface", f"m{i}")
    assert time.monotonic() - started < 0.5  # the sink blocks; emit must not
    sink.release.set()
    events.stop()
    assert sink.got == [f"m{i}" for i in range(5)]
    assert events.sent == 5


def test_a_full_queue_drops_and_counts() -> None:
    sink = SlowSink()
    events = BackgroundEvents(sink, rate=1000)  # not started: nothing drains the queue
    for i in range(1005):
        events.emit(POD, "Normal", "AddedInterface", f"m{i}")
    assert events.dropped == 5


def test_a_failing_sink_does_not_stop_the_thread() -> None:
    class Broken:
        calls = 0

        def emit(self, pod: Pod, type_: str, reason: str, message: str) -> None:
            Broken.calls += 1
            raise RuntimeError("boom")

    events = BackgroundEvents(Broken(), rate=1000)
    events.start()
    events.emit(POD, "Normal", "R", "a")
    events.emit(POD, "Normal", "R", "b")
    events.stop()
    assert Broken.calls == 2


class Recorder:
    def __init__(self) -> None:
        self.at: list[float] = []

    def emit(self, pod: Pod, type_: str, reason: str, message: str) -> None:
        self.at.append(time.monotonic())


def test_events_wait_for_a_moment_without_requests() -> None:
    sink = Recorder()
    events = BackgroundEvents(sink, rate=1000, hold=5.0)
    events.start()
    events.set_busy(True)
    events.emit(POD, "Normal", "AddedInterface", "m")
    time.sleep(0.3)
    assert sink.at == []  # a request is in flight: the event waits
    idle = time.monotonic()
    events.set_busy(False)
    events.stop()
    assert len(sink.at) == 1 and sink.at[0] >= idle


def test_under_steady_load_an_event_waits_at_most_hold() -> None:
    sink = Recorder()
    events = BackgroundEvents(sink, rate=1000, hold=0.2)
    events.start()
    events.set_busy(True)  # and never idle again
    queued = time.monotonic()
    events.emit(POD, "Normal", "AddedInterface", "m")
    events.stop()
    assert len(sink.at) == 1 and 0.15 <= sink.at[0] - queued < 2
