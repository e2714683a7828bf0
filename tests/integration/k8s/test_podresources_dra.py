"""DRA through the kubelet (Go Multus v4.3.0's path): PodResources ``dynamic_resources``
from a stand-in gRPC server on a real unix socket, keyed by the claim's name."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.podresources_server import (
    Container,
    Devices,
    Dynamic,
    PodResourcesServer,
    pod,
)

from pymultus.k8s.refs import PodRef
from pymultus.k8s.resourcemap import LazyResourceMap, load_resource_map

POD = PodRef("ns1", "pod1", "uid-1")
SRIOV = "intel.com/sriov"


@pytest.fixture
def kubelet() -> Iterator[PodResourcesServer]:
    workdir = Path(tempfile.mkdtemp(prefix="pm-dra-", dir="/tmp"))
    try:
        with PodResourcesServer(workdir / "kubelet.sock") as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_go_case_claim_name_maps_to_the_cdi_device(kubelet: PodResourcesServer) -> None:
    """kubeletclient_test.go at v4.3.0: ``cdi-kind=cdi-resource`` under ``resource-claim``."""
    dyn = Dynamic("resource-claim", ["cdi-kind=cdi-resource"])
    kubelet.pods = [pod("ns1", "pod1", Container("app", dynamic=[dyn]))]
    kubelet.extras = True  # class_name, claim_namespace, driver/pool/device: all skipped

    found = load_resource_map(POD, socket_path=str(kubelet.socket_path))

    assert found.as_dict() == {"resource-claim": ["cdi-resource"]}


def test_devices_and_claims_together_sorted_deduplicated(kubelet: PodResourcesServer) -> None:
    shared = Dynamic("p-vf-x1", ["vendor.com/vf=0000:03:00.2", "vendor.com/vf=0000:03:00.1"])
    app = Container("app", dynamic=[shared, Dynamic("empty-claim", [])])
    bad = Dynamic("bad", ["no-equals", "a=b=c", "v/c=ok"])
    side = Container("side", [Devices(SRIOV, ["0000:05:00.0"])], [shared, bad])
    other = pod("ns1", "other", Container("c", dynamic=[Dynamic("x", ["v/c=z"])]))
    kubelet.pods = [pod("ns1", "pod1", app, side), other]

    devices = LazyResourceMap(POD, socket_path=str(kubelet.socket_path))

    assert devices.next("p-vf-x1") == "0000:03:00.1"  # sorted
    assert devices.next("p-vf-x1") == "0000:03:00.2"
    assert devices.next("p-vf-x1") == ""  # a claim shared by two containers counts once
    assert devices.next("bad") == "ok"  # names without exactly one "=" are skipped
    assert devices.next("empty-claim") == ""
    assert devices.next(SRIOV) == "0000:05:00.0"
    assert devices.next("x") == ""  # another pod's claim
    assert kubelet.calls == 1
