"""Hot-plug in the daemon: level-driven reconcile of running pods' networks (issue #12).

``"hotPlug": true`` in the daemon config turns it on. The watch cache tells us when a pod of
this node changes (``Store.on_change``, on the loop); a pass for that pod starts at once
(well within 1 s), runs ``core.reconcile`` in the worker pool while holding the sandbox's
container lock (so it never interleaves with the runtime's ADD or DEL of the same sandbox),
and at most one pass per pod runs at a time: an event during a pass makes one more pass
after it. Passes of different pods run in parallel; their plugins share the delegate cap.

Failures: each failed attachment waits 1 s, doubling to 5 min, then is tried again, until it
succeeds, the annotation changes (backoff starts afresh) or the pod goes. A network-status
write that failed is retried the same way, without running any plugin again. A periodic
resync passes over every pod, so nothing depends on seeing one particular event.

What each pod with a sandbox has attached, pending and failing is written to
``<socketDir>/pymultus-hotplug.json`` for ``pymultus status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

from pymultus.cni.atomic import write_atomic
from pymultus.cni.errors import CniError
from pymultus.core import record
from pymultus.core.adopt import adopt
from pymultus.core.attach import Identity
from pymultus.core.deps import Deps
from pymultus.core.reconcile import Outcome, reconcile
from pymultus.core.record import ANNOTATION, SandboxRecord
from pymultus.daemon.handler import Backend
from pymultus.daemon.hotplug_state import Key, PodState, Retry, snapshot
from pymultus.daemon.metrics import Metrics
from pymultus.daemon.watch import Store
from pymultus.k8s.objects import NETWORKS_ANNOTATION, Nad, Pod

log = logging.getLogger(__name__)


class PodLookup(Protocol):
    def get(self, key: Key) -> Pod | None:
        """The pod as it is now; None when it is gone."""
        ...


RESYNC_SECONDS = 60.0


class HotPlug:
    """The reconciler of one daemon; ``start``/``stop`` on its loop."""

    def __init__(
        self,
        backend: Backend,
        pods: PodLookup,
        cni_dir: str,
        *,
        metrics: Metrics | None = None,
        resync: float = RESYNC_SECONDS,
        multus_conf: Callable[[], bytes | None] = lambda: None,
        deps_for: Callable[[SandboxRecord], Deps] | None = None,
        read_status: Callable[[Pod], str] = lambda _pod: "",
        state_path: str = "",
    ) -> None:
        self.backend = backend
        self.lookup = pods
        self.cni_dir = cni_dir
        self._records = record.RecordCache(cni_dir)
        self.metrics = metrics
        self.resync = resync
        self.multus_conf = multus_conf
        self.deps_for = deps_for or (lambda _rec: backend.deps)
        self.read_status = read_status
        self.state_path = state_path  # "" = none written
        self.pods: dict[Key, PodState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._unadoptable: set[Key] = set()
        self._store: Store[Pod] | None = None
        self._nads: Store[Nad] | None = None

    def get(self, key: Key) -> Pod | None:
        return self.lookup.get(key)

    async def start(
        self,
        store: Store[Pod] | None = None,
        *,
        nads: Store[Nad] | None = None,
        poll: float | None = None,
    ) -> None:
        """Listen on the watch cache's pod ``store`` (and ``nads``: a NAD that appears or
        changes is retried at once by the pods waiting for it), or poll the pods of the
        records every ``poll`` seconds (standalone: pod files change without events)."""
        if store is not None:
            store.on_change = self.pod_changed
            for key in store.all_keys():  # listed before we listened: catch up, adopt
                self.pods[key] = PodState(seen=True)
            self._store = store
        if nads is not None:
            nads.on_change = self.nad_changed
            self._nads = nads
        loop = asyncio.get_running_loop()

        def on_attached(key: Key) -> None:  # from a worker thread
            loop.call_soon_threadsafe(self.attached, key)

        self.backend.on_attached = on_attached
        if poll is not None:
            self._background.append(asyncio.create_task(self._poll_loop(poll), name="hotplug-poll"))
        self._background.append(asyncio.create_task(self._resync_loop(), name="hotplug-resync"))

    async def stop(self) -> None:
        self.backend.on_attached = None
        for store in (self._store, self._nads):
            if store is not None:
                store.on_change = None
        tasks = [*self._background, *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(OSError):  # the state of a daemon that runs no more
            os.unlink(self.state_path)
        for state in self.pods.values():
            if state.timer is not None:
                state.timer.cancel()

    # --- scheduling (loop thread) -----------------------------------------------------------

    def pod_changed(self, key: Key) -> None:
        """A watch event for ``key``: pass now if its selection changed (or it is gone)."""
        pod = self.get(key)
        state = self.pods.get(key)
        value = None if pod is None else pod.annotations.get(NETWORKS_ANNOTATION, "")
        if state is None and pod is None:
            return  # gone, and never seen: nothing to do
        if state is not None and pod is not None and state.annotation == value:
            return
        self.schedule(key)

    def attached(self, key: Key) -> None:
        """The runtime's ADD of the pod just succeeded: its record is there now, so pass
        over it (its selection may have changed while the ADD ran)."""
        self.pods.setdefault(key, PodState()).seen = True
        self.schedule(key)

    def nad_changed(self, nad: Key) -> None:
        """A NAD event: the attachments waiting for a retry on it are tried now."""
        for key, state in list(self.pods.items()):
            waiting = [r for i, r in state.retries.items() if i[:2] == nad]
            for retry in waiting:
                retry.next_at = 0.0
            if waiting:
                self.schedule(key)

    def schedule(self, key: Key, delay: float = 0.0) -> None:
        state = self.pods.setdefault(key, PodState())
        if delay > 0:
            if state.timer is not None:
                state.timer.cancel()
            loop = asyncio.get_running_loop()
            state.timer = loop.call_later(delay, self.schedule, key)
            return
        if state.running:
            state.again = True
            return
        state.running = True
        task = asyncio.create_task(self._run(key), name=f"hotplug-{key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll_loop(self, interval: float) -> None:
        """Standalone: a pass for every recorded pod whose selection changed."""
        while True:
            try:
                for key in self._record_keys():
                    self.pod_changed(key)
            except Exception:  # a bug must not stop hot-plug: log it, poll again
                log.exception("hot-plug: polling the pod files failed")
            await asyncio.sleep(interval)

    async def _resync_loop(self) -> None:
        while True:
            for key in list(self.pods) + self._record_keys():
                self.schedule(key)
            await asyncio.sleep(self.resync)

    def _record_keys(self) -> list[Key]:
        return [r.pod_key for r in self._records.all() if r.pod_name]

    async def _run(self, key: Key) -> None:
        state = self.pods[key]
        try:
            while True:
                state.again = False
                try:
                    await self._pass(key, state)
                except Exception:
                    log.exception("hot-plug pass for %s/%s failed unexpectedly", *key)
                    self._count_pass("failed")
                if not state.again:
                    break
        finally:
            state.running = False
        if self.get(key) is None:  # the pod is gone: forget it
            if state.timer is not None:
                state.timer.cancel()
            self.pods.pop(key, None)
        self._write_state()

    # --- one pass -----------------------------------------------------------------------

    async def _pass(self, key: Key, state: PodState) -> None:
        pod = self.get(key)
        log.debug("hot-plug pass for %s/%s: %s", *key, "pod gone" if pod is None else "starting")
        if pod is None:
            return
        first_sight, state.seen = not state.seen, True
        edited = _note_annotation(pod, state)
        if pod.host_network:
            if edited is not None:
                self._rejected(pod, edited)
            return
        rec = self._record_of(pod, adopt_it=not first_sight)
        if rec is None:
            return
        async with self.backend.locks.hold(rec.container_id):
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(
                self.backend.pool, self._reconcile, rec.container_id, key, state
            )
        if outcome is not None:
            self._after(key, state, outcome)

    def _record_of(self, pod: Pod, *, adopt_it: bool) -> SandboxRecord | None:
        """The record of the pod's sandbox (the one whose netns is still there if the
        sandbox was recreated). Without one, and ``adopt_it`` (not at the first sight of a
        pod, which may not have a sandbox yet), the sandbox is adopted from the caches, or
        a line is logged once."""
        found = [
            r
            for r in self._records.all()
            if r.pod_key == (pod.namespace, pod.name) and pod.uid in ("", r.pod_uid or pod.uid)
        ]
        found.sort(key=lambda r: os.path.exists(r.netns), reverse=True)
        if found or not adopt_it:
            return found[0] if found else None
        adopted = self._adopt(pod)
        key = (pod.namespace, pod.name)
        if adopted is None and key not in self._unadoptable:
            self._unadoptable.add(key)
            log.info(
                "hot-plug: pod %s/%s has no attachment record and its sandbox cannot be "
                "found in the caches: not hot-plugged until its sandbox is added",
                *key,
            )
        return adopted

    def _adopt(self, pod: Pod) -> SandboxRecord | None:
        """A record for a pod attached without one (before hot-plug, or by Go Multus)."""
        conf = self.multus_conf()
        if conf is None:
            return None
        path = [p for p in self.backend.complete_env({})["CNI_PATH"].split(":") if p]
        rec = adopt(self.cni_dir, pod, conf, path)
        if rec is not None:
            record.save(self.cni_dir, rec)
            log.info("hot-plug: adopted pod %s/%s (sandbox %s)", *rec.pod_key, rec.container_id)
        return rec

    def _reconcile(self, container_id: str, key: Key, state: PodState) -> Outcome | None:
        """In a worker thread, holding the container's lock: the record as it is now."""
        try:
            rec = record.load(self.cni_dir, container_id)
        except CniError as exc:
            log.error("hot-plug of %s/%s: %s", *key, exc)
            return None
        pod = self.get(key)
        if rec is None or pod is None or pod.uid not in ("", rec.pod_uid or pod.uid):
            return None  # torn down meanwhile
        _note_annotation(pod, state)  # edited since the pass began: this is what runs
        now = time.time()

        def ready(identity: Identity) -> bool:
            retry = state.retries.get(identity)
            return retry is None or retry.next_at <= now

        def alive() -> bool:
            current = self.get(key)
            return current is not None and current.uid == pod.uid

        status_due = state.status_retry is not None and state.status_retry.next_at <= now

        def current_status() -> str:
            try:
                return self.read_status(pod)
            except CniError as exc:  # the write goes on; foreign entries are lost this once
                log.warning("cannot read the network-status of %s/%s: %s", *key, exc.msg)
                return ""

        try:
            outcome = reconcile(
                rec,
                pod,
                self.deps_for(rec),
                ready=ready,
                alive=alive,
                write_status=status_due,
                current_status=current_status,
            )
        except CniError as exc:
            self._refused(pod, state, exc)
            return None
        state.attached = [
            f"{a.network}@{a.ifname}" for a in rec.attachments if a.origin == ANNOTATION
        ]
        return outcome

    def _rejected(self, pod: Pod, edited: bool) -> None:
        """A host-network pod has no netns of its own: its edits are refused, as the
        external controller refuses them (``InterfaceAddRejected``)."""
        events = self.backend.deps.events
        if edited and events is not None:
            message = (
                f"pod [{pod.namespace}/{pod.name}]: will not add interface to host networked pod"
            )
            events.emit(pod, "Warning", "InterfaceAddRejected", message)

    def _refused(self, pod: Pod, state: PodState, exc: CniError) -> None:
        """A desired set that cannot be taken: nothing changes, one Warning per value."""
        self._count_pass("invalid")
        if state.invalid == exc.msg:
            return
        state.invalid = exc.msg
        log.error("hot-plug of %s/%s refused: %s", pod.namespace, pod.name, exc.msg)
        events = self.backend.deps.events
        if events is not None:
            message = f"pod [{pod.namespace}/{pod.name}]: {exc.msg}"
            events.emit(pod, "Warning", "FailedAddingInterface", message)

    def _after(self, key: Key, state: PodState, out: Outcome) -> None:
        now = time.time()
        for a in (*out.added, *out.removed):
            state.retries.pop(a.identity, None)
        for identity, error in out.failed.items():
            state.retries.setdefault(identity, Retry()).fail(error, now)
        if out.status_error:
            state.status_retry = state.status_retry or Retry()
            state.status_retry.fail(out.status_error, now)
        elif out.status_written:  # a pass that ran before the retry was due keeps it
            state.status_retry = None
        self._count(out)
        due = [r.next_at for r in state.retries.values()]
        if state.status_retry is not None:
            due.append(state.status_retry.next_at)
        if due:
            self.schedule(key, max(0.05, min(due) - now))

    # --- reporting ------------------------------------------------------------------------

    def _count_pass(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.hotplug_passes.labels(outcome=outcome).inc()

    def _count(self, out: Outcome) -> None:
        self._count_pass("failed" if out.failed or out.status_error else "ok")
        if self.metrics is None:
            return
        m = self.metrics.hotplug_attachments
        m.labels(action="added").inc(len(out.added))
        m.labels(action="removed").inc(len(out.removed))
        m.labels(action="failed").inc(len(out.failed))
        self.metrics.hotplug_pending.set(sum(len(s.retries) for s in self.pods.values()))

    def snapshot(self) -> dict[str, Any]:
        """Per pod with a sandbox: attached, pending with the last error and next retry."""
        return snapshot(self.pods, set(self._record_keys()))

    def _write_state(self) -> None:
        if not self.state_path:
            return
        with contextlib.suppress(OSError, CniError):
            write_atomic(self.state_path, json.dumps(self.snapshot(), indent=2).encode())


def _note_annotation(pod: Pod, state: PodState) -> bool | None:
    """Take the pod's networks annotation as the one this pass works to; a new value starts
    every backoff afresh. Returns None when it is unchanged, else whether it was an edit (not
    the first value seen)."""
    value = pod.annotations.get(NETWORKS_ANNOTATION, "")
    if value == state.annotation:
        return None
    edited = state.annotation is not None
    state.annotation, state.retries, state.invalid = value, {}, ""
    return edited
