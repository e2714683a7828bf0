"""Prometheus metrics of the daemon, served on ``metricsPort`` (behaviour row 56).

``multus_server_request_total{handler,code,method}`` is exactly Go Multus's counter (labels as
``promhttp.InstrumentHandlerCounter`` writes them: ``code="200"``, ``method="post"``, handler
``/cni``, ``/delegate``, ``/healthz``, ``/readyz`` or ``NotFound``), so existing dashboards keep
working. The rest is ours: request latency, and per-delegate exec count, latency and outcome by
plugin type and verb, with the names proposed upstream (Multus PR #1533) so a later Go release
and pymultus agree; plus in-flight and delegate-slot gauges, which show a reboot burst queueing.

Each ``Metrics`` has its own registry (several daemons in one test process must not clash);
it carries the process, platform and GC collectors the default registry would have.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

#: Content type of the text exposition format ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. A CNI request takes from a few ms (DEL of a gone pod) to tens of seconds (a dhcp
# delegate, a 2.5 s pod wait); the plugin timeout is 60 s, so the top buckets reach past it.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# A delegate exec is a process start plus the plugin's work: ~2 ms to the 60 s timeout.
EXEC_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric the daemon records, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        reg = self.registry
        self.requests = Counter(
            "multus_server_request_total",
            "Number of HTTP requests handled by the multus daemon (Go Multus's counter).",
            ["handler", "code", "method"],
            registry=reg,
        )
        self.request_seconds = Histogram(
            "multus_server_request_duration_seconds",
            "Time from reading a request to its response, by handler and method.",
            ["handler", "method"],
            buckets=REQUEST_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "multus_server_requests_in_flight",
            "Requests read and not yet answered.",
            registry=reg,
        )
        self.exec_total = Counter(
            "multus_cni_plugin_execution_total",
            "Delegate plugin executions by plugin type, CNI command and outcome.",
            ["plugin", "command", "outcome"],
            registry=reg,
        )
        self.exec_seconds = Histogram(
            "multus_cni_plugin_execution_duration_seconds",
            "Wall time of one delegate plugin execution (waiting for a slot not included).",
            ["plugin", "command"],
            buckets=EXEC_BUCKETS,
            registry=reg,
        )
        self.exec_running = Gauge(
            "multus_cni_plugin_executions_running",
            "Delegate plugin processes running now (at most the daemon's delegate limit).",
            registry=reg,
        )
        self.exec_waiting = Gauge(
            "multus_cni_plugin_executions_waiting",
            "Delegate executions waiting for a free slot under the delegate limit.",
            registry=reg,
        )

        self.hotplug_passes = Counter(
            "pymultus_hotplug_passes_total",
            "Hot-plug reconcile passes, by outcome (ok, failed, invalid).",
            ["outcome"],
            registry=reg,
        )
        self.hotplug_attachments = Counter(
            "pymultus_hotplug_attachments_total",
            "Attachments hot-plugged or hot-unplugged, by action (added, removed, failed).",
            ["action"],
            registry=reg,
        )
        self.hotplug_pending = Gauge(
            "pymultus_hotplug_pending",
            "Attachments waiting for a retry (their last hot-plug step failed).",
            registry=reg,
        )

    def observe_request(self, handler: str, code: int, method: str, seconds: float) -> None:
        self.requests.labels(handler=handler, code=str(code), method=method.lower()).inc()
        self.request_seconds.labels(handler=handler, method=method.lower()).observe(seconds)

    def observe_exec(self, plugin: str, command: str, outcome: str, seconds: float) -> None:
        self.exec_total.labels(plugin=plugin, command=command, outcome=outcome).inc()
        self.exec_seconds.labels(plugin=plugin, command=command).observe(seconds)

    def exposition(self) -> bytes:
        """The text format for ``GET /metrics``."""
        return generate_latest(self.registry)
