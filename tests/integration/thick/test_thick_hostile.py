"""Thick mode with a networks annotation nested 1,000 or 100,000 deep (issue #11): the shim's
ADD fails with code 7 naming the annotation, the daemon logs no traceback and keeps serving;
DEL of that sandbox succeeds and leaves nothing."""

from __future__ import annotations

import pytest
from tests.support.multus import NETWORKS
from tests.support.thick import ThickCluster

HOSTILE = {"1000-deep": "[" * 1_000, "100000-deep": "[" * 100_000}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_deep_annotation_fails_add_with_code_7_and_del_succeeds(
    thick: ThickCluster, value: str
) -> None:
    thick.put_nad("default", "br-a", thick.bridge_nad("br-a", "pmbrh", 7))
    pod = thick.put_pod("default", "deep", {NETWORKS: value})
    good = thick.put_pod("default", "good", {NETWORKS: "br-a"})
    netns, good_netns = thick.new_netns(), thick.new_netns()
    thick.start_daemon()

    err = thick.shim("ADD", pod, netns=netns).error()
    assert err["code"] == 7, err
    assert f"{NETWORKS}: nested too deep" in err["msg"], err

    thick.shim("DEL", pod, netns=netns).check_ok()
    thick.shim("ADD", good, netns=good_netns).check_ok()  # the daemon still serves
    thick.shim("DEL", good, netns=good_netns).check_ok()
    log = thick.daemon_log()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]
    for path in (netns, good_netns):
        assert thick.pod_links(path) == {"lo"}
    assert thick.host_veths() == [] and thick.allocations() == [] and thick.cache_files() == []
