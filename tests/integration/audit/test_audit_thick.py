"""Regression tests for bugs found by the acceptance audit of thick mode (issue #4).

Same world as ``tests/integration/thick``: the real shim and daemon processes, real
bridge/host-local plugins, the stand-in API server; assertions on real state.
"""

from __future__ import annotations

import os

from tests.support.multus import NETWORKS
from tests.support.thick import ThickCluster

NS = "default"


def test_del_while_the_daemon_is_stopped_for_a_restart_is_retried(thick: ThickCluster) -> None:
    """A graceful stop (SIGTERM, as a DaemonSet rolling update does) must not make the node
    look as if Multus were not installed: the socket file stays, so a DEL in the restart window
    answers code 11 (the runtime retries) instead of exit 0 with the pod's IPs leaked."""
    thick.put_nad(NS, "br-a", thick.bridge_nad("br-a", "pmbra", 1))
    pod = thick.put_pod(NS, "restarted", {NETWORKS: "br-a"})
    thick.start_daemon()
    thick.shim("ADD", pod).check_ok()
    assert thick.stop_daemon() == 0
    assert os.path.lexists(thick.socket_path)

    down = thick.shim("DEL", pod).error()
    assert down["code"] == 11, down
    assert len(thick.allocations()) == 2  # nothing was released: the DEL is still owed

    thick.start_daemon()
    thick.shim("DEL", pod).check_ok()
    assert thick.allocations() == []
    assert thick.cache_files() == []
    assert thick.link_names() == {"lo"}
