"""DEL succeeds and releases everything ADD made, whatever else is already gone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.support.multus import NETWORKS, Cluster, PodId
from tests.support.netns import ip


def _added(cluster: Cluster) -> PodId:
    """A pod with the cluster network, a NAD network and host-local addresses on both."""
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "gone", {NETWORKS: "br-a"})
    cluster.add(pod).check_ok()
    assert cluster.allocations() == ["br-a/198.18.1.2", "pm-cluster/198.18.0.2"]
    assert len(cluster.cache_files()) == 3  # delegate cache + 2 libcni results
    return pod


def _everything_gone(cluster: Cluster, pod: PodId) -> None:
    cluster.api.delete_object("pods", pod.namespace, pod.name)
    cluster.api.delete_object("network-attachment-definitions", "default", "br-a")
    cluster.api.stop()


def _netns_gone(cluster: Cluster, pod: PodId) -> None:
    ip(None, "netns", "delete", cluster.pair.pod)


def _delegate_cache_missing(cluster: Cluster, pod: PodId) -> None:
    (cluster.cni_dir / pod.container_id).unlink()
    cluster.api.delete_object("pods", pod.namespace, pod.name)


def _delegate_cache_corrupt(cluster: Cluster, pod: PodId) -> None:
    path = cluster.cni_dir / pod.container_id
    path.write_bytes(path.read_bytes()[:40])  # torn by a crash
    cluster.api.delete_object("pods", pod.namespace, pod.name)


def _kubeconfig_gone(cluster: Cluster, pod: PodId) -> None:
    cluster.kubeconfig.unlink()


GONE: dict[str, Callable[[Cluster, PodId], None]] = {
    "pod-nad-and-api-server-gone": _everything_gone,
    "netns-gone": _netns_gone,
    # Go Multus returns success here without calling any delegate and leaks the addresses;
    # pymultus DELs every attachment libcni's result cache still records.
    "delegate-cache-missing-pod-gone": _delegate_cache_missing,
    "delegate-cache-corrupt-pod-gone": _delegate_cache_corrupt,
    "kubeconfig-gone": _kubeconfig_gone,
}


@pytest.mark.parametrize("gone", GONE.values(), ids=GONE.keys())
def test_del_releases_everything(cluster: Cluster, gone: Callable[[Cluster, PodId], None]) -> None:
    pod = _added(cluster)
    gone(cluster, pod)

    out = cluster.delete(pod).check_ok()

    assert out.stdout == b""
    assert cluster.allocations() == []
    assert cluster.cache_files() == []
    if gone is not _netns_gone:
        assert cluster.link_names() == {"lo"}


def test_del_twice_succeeds(cluster: Cluster) -> None:
    pod = _added(cluster)

    cluster.delete(pod).check_ok()
    second = cluster.delete(pod).check_ok()

    assert second.stdout == b""
    assert cluster.link_names() == {"lo"}
    assert cluster.allocations() == [] and cluster.cache_files() == []


def test_del_without_cache_recomputes_from_the_pod(cluster: Cluster) -> None:
    pod = _added(cluster)
    (cluster.cni_dir / pod.container_id).unlink()
    for entry in (cluster.cni_dir / "results").iterdir():
        entry.unlink()  # nothing cached at all: only the API knows

    cluster.delete(pod).check_ok()

    assert cluster.link_names() == {"lo"}
    assert cluster.allocations() == []


def test_del_of_a_pod_never_added_succeeds(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "never")
    cluster.api.delete_object("pods", "default", "never")

    assert cluster.delete(pod).check_ok().stdout == b""
    assert cluster.cache_files() == []
