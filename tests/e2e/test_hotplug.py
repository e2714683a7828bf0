"""Hot-plug through containerd (issue #12): a running sandbox gets ``net3`` when its pod's
``k8s.v1.cni.cncf.io/networks`` is patched in the API server, and loses it when the element is
removed; the runtime's teardown then leaves nothing."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.clusters import WithApiServer, api_server_cluster
from tests.e2e.node import Node
from tests.support.cri import CriClient, PodSpec

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@pytest.fixture(scope="module")
def api(e2e_node: Node) -> Iterator[WithApiServer]:
    with api_server_cluster(e2e_node) as with_api:
        yield with_api


def patch_networks(api: WithApiServer, spec: PodSpec, value: str) -> None:
    pod = api.api.get_object("pods", spec.namespace, spec.name)
    assert pod is not None
    pod["metadata"].setdefault("annotations", {})[NETWORKS] = value
    api.api.put_object(pod)


def wait(condition: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, why()
        time.sleep(0.05)


def test_sandbox_gets_net3_after_a_patch_and_loses_it_after_removal(
    api: WithApiServer, node: Node, cri: CriClient
) -> None:
    spec = PodSpec(f"hot-{secrets.token_hex(3)}", node.namespace, annotations={NETWORKS: "a"})
    api.add_pod(spec)
    sandbox = cri.run_pod_sandbox(spec)
    netns = cri.pod_sandbox_status(sandbox).netns_path
    assert sorted(node.addresses_in(netns)) == ["eth0", "net1"]

    def names() -> list[str]:
        return sorted(node.addresses_in(netns))

    patch_networks(api, spec, "a, b@net3")
    wait(lambda: names() == ["eth0", "net1", "net3"], 15.0, lambda: f"{names()}")
    wait(lambda: len(api.network_status(spec)) == 3, 5.0, lambda: f"{api.network_status(spec)}")
    entry = api.network_status(spec)[-1]
    assert (entry["name"], entry["interface"]) == (f"{node.namespace}/b", "net3")

    patch_networks(api, spec, "a")
    wait(lambda: names() == ["eth0", "net1"], 15.0, lambda: f"{names()}")
    wait(lambda: len(api.network_status(spec)) == 2, 5.0, lambda: f"{api.network_status(spec)}")

    cri.teardown(sandbox)
    assert node.leftovers() == []
