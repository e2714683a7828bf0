"""Thin-mode events do not lengthen the ADD as the runtime sees it, and none is lost silently.

The runtime (libcni) waits for the plugin to exit and for its stdout to close; stderr is the
runtime's own file. These run the plugin that way: stdout a pipe, stderr a file.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.support.apiserver import LoggedRequest
from tests.support.multus import CLEAN_PATH, MULTUS_BIN, NETWORKS, Cluster

EVENT_DELAY = 1.5  # seconds the API server sits on each event


def _add_like_libcni(cluster: Cluster, pod_env: dict[str, str], stderr: Path) -> float:
    conf = json.dumps(cluster.multus_conf()).encode()
    start = time.monotonic()
    with cluster.pair.in_host(), stderr.open("wb") as err:
        proc = subprocess.run(
            [MULTUS_BIN],
            input=conf,
            env={"PATH": CLEAN_PATH, **pod_env},
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=60,
            check=False,
        )
    took = time.monotonic() - start
    assert proc.returncode == 0, (proc.stdout, stderr.read_text())
    return took


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _slow_events(req: LoggedRequest) -> None:
    if req.method == "POST" and req.path.endswith("/events"):
        time.sleep(EVENT_DELAY)


def test_add_answers_before_its_events_are_sent(cluster: Cluster, tmp_path: Path) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "evt", {NETWORKS: "br-a"})
    cluster.api.on_request = _slow_events

    took = _add_like_libcni(cluster, cluster.env("ADD", pod), tmp_path / "stderr")

    assert took < EVENT_DELAY  # two events, each held 1.5 s by the server: not waited for
    _wait_for(lambda: len(cluster.api.events) == 2, timeout=4 * EVENT_DELAY + 5)
    assert {e["reason"] for e in cluster.api.events} == {"AddedInterface"}
    cluster.api.on_request = None
    cluster.delete(pod).check_ok()


def test_events_that_cannot_be_sent_are_logged_with_the_count(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "evt-fail", {NETWORKS: "br-a"})
    log_file = tmp_path / "multus.log"
    conf = cluster.multus_conf(logFile=str(log_file), logLevel="error", logToStderr=False)

    def refuse_events(req: LoggedRequest) -> None:
        if req.method == "POST" and req.path.endswith("/events"):
            cluster.api.fail_next(1, 403)

    cluster.api.on_request = refuse_events
    cluster.add(pod, conf).check_ok()

    _wait_for(lambda: log_file.exists() and "events could not be sent" in log_file.read_text())
    assert "2 of 2 events could not be sent" in log_file.read_text()
    assert cluster.api.events == []
    cluster.api.on_request = None
    cluster.delete(pod, conf).check_ok()
