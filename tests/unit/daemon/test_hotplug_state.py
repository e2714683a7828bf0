"""The reconciler's bookkeeping (``daemon.hotplug``): backoff, metrics, the status snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pymultus.core import record
from pymultus.core.deps import Deps
from pymultus.core.reconcile import Outcome
from pymultus.core.record import Attachment, SandboxRecord
from pymultus.daemon.handler import Backend
from pymultus.daemon.hotplug import HotPlug
from pymultus.daemon.hotplug_state import BACKOFF_MAX, PodState, Retry
from pymultus.daemon.metrics import Metrics

KEY = ("default", "web")
IDENTITY = ("default", "a", "net1")


class NoPods:
    def get(self, key: tuple[str, str]) -> None:
        return None


def test_backoff_doubles_from_1_s_to_5_min() -> None:
    retry = Retry()
    delays = []
    for _ in range(12):
        retry.fail("boom", 1000.0)
        delays.append(retry.next_at - 1000.0)
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays[-1] == BACKOFF_MAX == 300.0


def sample_metric(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def hotplug(tmp_path: Path) -> Iterator[HotPlug]:
    """A reconciler whose cniDir holds the record of one sandbox of ``KEY``."""
    rec = SandboxRecord(container_id="c0ffee", netns="/x", pod_namespace=KEY[0], pod_name=KEY[1])
    record.save(str(tmp_path), rec)
    with ThreadPoolExecutor(1) as pool:
        yield HotPlug(Backend(Deps(), pool), NoPods(), str(tmp_path), metrics=Metrics())


def test_failures_are_counted_and_shown_with_the_next_retry(hotplug: HotPlug) -> None:
    state = hotplug.pods.setdefault(KEY, PodState())

    async def after() -> None:
        hotplug._after(KEY, state, Outcome(failed={IDENTITY: "no way"}))
        assert state.timer is not None  # a retry pass is scheduled
        state.timer.cancel()

    asyncio.run(after())
    metrics = hotplug.metrics
    assert metrics is not None
    assert sample_metric(metrics, "pymultus_hotplug_passes_total", outcome="failed") == 1
    assert sample_metric(metrics, "pymultus_hotplug_attachments_total", action="failed") == 1
    assert sample_metric(metrics, "pymultus_hotplug_pending") == 1
    [pending] = hotplug.snapshot()["pods"]["default/web"]["pending"]
    assert (pending["network"], pending["interface"], pending["error"]) == (
        "default/a",
        "net1",
        "no way",
    )


def test_success_clears_the_backoff(hotplug: HotPlug) -> None:
    state = hotplug.pods.setdefault(KEY, PodState())
    state.retries[IDENTITY] = Retry(failures=3, next_at=0.0, last_error="old")
    added = Attachment(
        network="default/a",
        ifname="net1",
        origin="annotation",
        config=b"{}",
        nad_namespace="default",
        nad_name="a",
    )
    hotplug._after(KEY, state, Outcome(added=[added]))
    assert state.retries == {}
    metrics = hotplug.metrics
    assert metrics is not None
    assert sample_metric(metrics, "pymultus_hotplug_attachments_total", action="added") == 1
    assert sample_metric(metrics, "pymultus_hotplug_passes_total", outcome="ok") == 1
