"""``readinessindicatorfile`` in thin mode (row 35): ADD waits for the file and fails with code
11 naming it when it never comes; DEL does not wait and only warns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tests.support.multus import Cluster, Outcome

FAST = {"readiness_timeout": 0.4, "readiness_interval": 0.05}


def test_add_waits_for_the_readiness_file(cluster: Cluster, thin: Callable[..., Outcome]) -> None:
    ready = cluster.tmp / "ready"
    conf = cluster.multus_conf(readinessindicatorfile=str(ready))
    pod = cluster.put_pod("default", "waits")
    outcome: dict[str, Any] = {}

    def add() -> None:
        started = time.monotonic()
        outcome["out"] = thin(cluster, "ADD", pod, conf, readiness_timeout=20.0)
        outcome["took"] = time.monotonic() - started

    runner = threading.Thread(target=add)
    runner.start()
    time.sleep(1.0)
    assert "out" not in outcome, "ADD did not wait for the readiness file"
    ready.write_text("")
    runner.join(30)

    outcome["out"].check_ok()
    assert 1.0 <= outcome["took"] < 10, outcome["took"]
    assert cluster.link_names() == {"lo", "eth0"}
    cluster.delete(pod, conf).check_ok()


def test_add_without_the_readiness_file_fails_with_code_11(
    cluster: Cluster, thin: Callable[..., Outcome]
) -> None:
    missing = cluster.tmp / "never"
    pod = cluster.put_pod("default", "notready")

    err = thin(
        cluster, "ADD", pod, cluster.multus_conf(readinessindicatorfile=str(missing)), **FAST
    )

    assert err.error()["code"] == 11
    assert str(missing) in err.error()["msg"]
    assert cluster.link_names() == {"lo"} and cluster.cache_files() == []


def test_del_only_warns_about_a_missing_readiness_file(
    cluster: Cluster, thin: Callable[..., Outcome]
) -> None:
    ready = cluster.tmp / "ready"
    ready.write_text("")
    conf = cluster.multus_conf(
        readinessindicatorfile=str(ready), logLevel="verbose", logToStderr=True
    )
    pod = cluster.put_pod("default", "gone")
    cluster.add(pod, conf).check_ok()
    ready.unlink()

    started = time.monotonic()
    out = thin(cluster, "DEL", pod, conf, readiness_timeout=30.0).check_ok()

    assert time.monotonic() - started < 10  # no 30 s wait
    warning = f"readiness indicator file {ready} is absent; deleting anyway"
    assert warning in out.stderr.decode(), out.describe()
    assert cluster.link_names() == {"lo"} and cluster.allocations() == []
