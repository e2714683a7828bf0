"""A networks annotation nested 1,000 or 100,000 deep (issue #11): the thin plugin's ADD fails
with code 7 naming the annotation, no traceback on stderr; DEL of that sandbox succeeds and
leaves nothing (it never depends on parsing what ADD refused)."""

from __future__ import annotations

import pytest
from tests.support.multus import NETWORKS, Cluster

HOSTILE = {
    "1000-deep": "[" * 1_000,
    "100000-deep": "[" * 100_000,
    "100000-deep-balanced": "[" * 100_000 + "]" * 100_000,
    "objects-1000-deep": '{"a":' * 1_000,
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_deep_annotation_fails_add_with_code_7_and_del_succeeds(
    cluster: Cluster, value: str
) -> None:
    pod = cluster.put_pod("default", "deep", {NETWORKS: value})
    before = cluster.snapshot()

    added = cluster.add(pod)
    err = added.error()
    assert err["code"] == 7, err
    assert f"{NETWORKS}: nested too deep" in err["msg"], err
    assert b"Traceback" not in added.stderr and b"RecursionError" not in added.stderr

    deleted = cluster.delete(pod)
    deleted.check_ok()
    assert b"Traceback" not in deleted.stderr
    assert cluster.snapshot() == before
    assert cluster.allocations() == [] and cluster.cache_files() == []


def test_too_large_annotation_is_refused_naming_it(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "big", {NETWORKS: "br-a," * 70_000})

    err = cluster.add(pod).error()

    assert err["code"] == 7 and f"{NETWORKS}: too large" in err["msg"], err
    cluster.delete(pod).check_ok()
