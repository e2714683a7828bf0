"""The daemon's delegate executor: at most N plugin processes at once, each one measured.

Why a cap: every delegate process counts against the daemon's cgroup. After a node reboot the
runtime sends ADDs for every pod at once, and Go Multus starts all their delegates together
(cilium-cni alone is ~55 MB RSS each), which OOM-kills its 50 MiB daemon (Multus issues
#1346, #1416). Here an exec waits for a free slot instead; the wait is not part of the
plugin's timeout, so a queued exec is never killed for the queue.

Every exec is counted by plugin type, CNI command and outcome, timed, and logged with the
network name (read from the stdin libcni built) next to the request's own log fields.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping

from pymultus.cni.env import config_name
from pymultus.cni.errors import CniError, InvalidConfigError
from pymultus.cni.invoke import Executor
from pymultus.daemon import logs
from pymultus.daemon.metrics import Metrics

log = logging.getLogger(__name__)

#: Default cap on delegate processes: two per CPU, at least 8. Delegates are short and mostly
#: CPU-bound (netlink, iptables), so more than ~2 per CPU only adds memory; 8 keeps a slow one
#: (dhcp waiting for a lease) from stalling a small node.
DEFAULT_DELEGATE_LIMIT = max(8, 2 * (os.cpu_count() or 1))
#: The daemon config key that overrides it.
LIMIT_KEY = "maxDelegateProcesses"


def network_name(stdin: bytes) -> str:
    """The ``name`` libcni injected into a plugin's stdin ("" when it cannot be read)."""
    try:
        return config_name(stdin)
    except CniError:
        return ""


class LimitedExecutor:
    """Wraps an ``Executor``: a slot per running plugin, metrics and a log line per exec."""

    def __init__(self, inner: Executor, *, limit: int, metrics: Metrics | None = None) -> None:
        if limit < 1:
            raise InvalidConfigError(
                f"the delegate limit must be >= 1, got {limit}", field=LIMIT_KEY
            )
        self.inner = inner
        self.root: str = getattr(inner, "root", "")  # the chroot plugins are found under
        self.limit = limit
        self.metrics = metrics
        self._slots = threading.BoundedSemaphore(limit)

    def run(
        self, plugin: str, path: str, environ: Mapping[str, str], stdin: bytes, timeout: float
    ) -> bytes:
        command = environ.get("CNI_COMMAND", "")
        with logs.fields(network=network_name(stdin), plugin=plugin):
            self._acquire()
            started = time.monotonic()
            outcome = "error"
            try:
                out = self.inner.run(plugin, path, environ, stdin, timeout)
                outcome = "success"
                return out
            finally:
                elapsed = time.monotonic() - started
                self._release()
                if self.metrics is not None:
                    self.metrics.observe_exec(plugin, command, outcome, elapsed)
                log.info("%s of plugin %s: %s in %.3f s", command, plugin, outcome, elapsed)

    def _acquire(self) -> None:
        if self._slots.acquire(blocking=False):
            self._gauge_running(+1)
            return
        log.info("all %d delegate slots busy; waiting", self.limit)
        if self.metrics is not None:
            self.metrics.exec_waiting.inc()
        try:
            self._slots.acquire()
        finally:
            if self.metrics is not None:
                self.metrics.exec_waiting.dec()
        self._gauge_running(+1)

    def _release(self) -> None:
        self._slots.release()
        self._gauge_running(-1)

    def _gauge_running(self, delta: int) -> None:
        if self.metrics is not None:
            self.metrics.exec_running.inc(delta)
