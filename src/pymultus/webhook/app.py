"""One review in, one answer out, measured: the webhook without its transport.

Metrics (Prometheus, served on ``/metrics``)::

    pymultus_webhook_requests_total{kind,operation,verdict}  verdict: allowed, warned,
                                                             denied, malformed
    pymultus_webhook_denials_total{reason}                   which rule denied
    pymultus_webhook_review_duration_seconds{kind}           body read to answer encoded
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from pymultus.config.multus import MultusConf
from pymultus.webhook.review import MalformedReview, Verdict, decode_review, encode_response
from pymultus.webhook.rules import NadLookup, judge

log = logging.getLogger(__name__)

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds. A review is judged in well under a millisecond; NAD lookups add API round trips;
#: the API server gives up after the configuration's timeoutSeconds (5).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class WebhookMetrics:
    """The webhook's metrics in their own registry (several webhooks in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pymultus_webhook_requests_total",
            "Admission reviews answered, by object kind, operation and verdict.",
            ["kind", "operation", "verdict"],
            registry=self.registry,
        )
        self.denials = Counter(
            "pymultus_webhook_denials_total",
            "Admission reviews denied, by the rule that denied them.",
            ["reason"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "pymultus_webhook_review_duration_seconds",
            "Time from a review's body read to its answer encoded, by object kind.",
            ["kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    def observe(self, kind: str, operation: str, verdict: Verdict, seconds: float) -> None:
        if not verdict.allowed:
            outcome = "denied"
            self.denials.labels(reason=verdict.reason).inc()
        else:
            outcome = "warned" if verdict.warnings else "allowed"
        self.requests.labels(kind=kind, operation=operation, verdict=outcome).inc()
        self.seconds.labels(kind=kind).observe(seconds)

    def malformed(self) -> None:
        self.requests.labels(kind="", operation="", verdict="malformed").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str


@dataclass
class Webhook:
    """The rules' settings (``conf``: the daemon config's Multus keys) and NAD lookups
    (None: no API access, existence is not checked)."""

    conf: MultusConf
    nads: NadLookup | None = None
    metrics: WebhookMetrics | None = None

    def validate(self, body: bytes) -> Answer:
        """``POST /validate``: 200 with the AdmissionReview answer, 400 with a one-line
        message for a body that is not a review the webhook can judge."""
        started = time.perf_counter()
        try:
            req = decode_review(body)
        except MalformedReview as err:
            if self.metrics is not None:
                self.metrics.malformed()
            return Answer(400, f"{err}\n".encode(), TEXT)
        verdict = judge(req, self.conf, self.nads)
        answer = Answer(200, encode_response(req.uid, verdict), JSON)
        if self.metrics is not None:
            seconds = time.perf_counter() - started
            self.metrics.observe(req.kind.kind, req.operation, verdict, seconds)
        if not verdict.allowed:
            log.info("denied %s %s/%s: %s", req.kind.kind, req.namespace, req.name, verdict.message)
        return answer
