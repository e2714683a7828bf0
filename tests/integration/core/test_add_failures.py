"""A failed ADD answers with a CNI error naming the cause and leaves the pod exactly as before:
no link, no address, no route, no host-local allocation, no cache file, no network-status."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.support.multus import NETWORKS, Cluster, PodId
from tests.support.plugins import install_recorder, read_records, recorder_conf

ANNOTATION = NETWORKS


@dataclass(frozen=True)
class Case:
    annotation: str
    code: int
    says: tuple[str, ...]
    conf: dict[str, Any] = field(default_factory=dict)
    pod_namespace: str = "default"


def _json(*elements: dict[str, Any]) -> str:
    return json.dumps(list(elements))


CASES = {
    "missing-nad": Case(
        "br-a, missing-x",
        7,
        ("cannot find a network-attachment-definition (missing-x) in namespace (default)",),
    ),
    "bad-json": Case('[{"name": "br-a"', 7, (f"{ANNOTATION}:", "is not valid JSON")),
    "bad-ip": Case(
        _json({"name": "br-a", "ips": ["198.18.1.300/24"]}),
        7,
        (f"{ANNOTATION}[0].ips[0]", '"198.18.1.300/24" is not a valid IP'),
    ),
    "bad-mac": Case(
        _json({"name": "br-a", "mac": "c2:ac:c0:00:03"}),
        7,
        (f"{ANNOTATION}[0].mac", '"c2:ac:c0:00:03" is not a valid MAC'),
    ),
    "16-char-ifname": Case("br-a@abcdefghijklmnop", 7, (f"{ANNOTATION}[0].interface", "too long")),
    "ifname-taken-by-cluster-network": Case(
        "br-a@eth0", 7, ("interface name eth0 is requested by both",)
    ),
    "two-v4-gateways": Case(
        _json(
            {"name": "br-a", "default-route": ["198.18.1.1"]},
            {"name": "br-a", "default-route": ["198.18.1.254"]},
        ),
        7,
        (f"{ANNOTATION}[1].default-route", "does not support ECMP"),
    ),
    "namespace-isolation": Case(
        "other/br-x",
        7,
        ("namespace isolation enabled", "pod is in namespace apps", "namespace other"),
        conf={"namespaceIsolation": True},
        pod_namespace="apps",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_invalid_request_fails_before_anything_runs(cluster: Cluster, case: Case) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    cluster.put_nad("other", "br-x", cluster.bridge_nad("br-x", "pmbrx", 2))
    pod = cluster.put_pod(case.pod_namespace, "bad", {NETWORKS: case.annotation})
    before = cluster.snapshot()

    err = cluster.add(pod, cluster.multus_conf(**case.conf)).error()

    assert err["code"] == case.code, err
    assert err["msg"].startswith(f"Multus: [{pod.namespace}/bad/{pod.uid}]: "), err
    for text in case.says:
        assert text in err["msg"], err
    assert cluster.snapshot() == before
    assert cluster.allocations() == [] and cluster.cache_files() == []
    assert cluster.status_annotation(pod) is None


def test_missing_nad_sends_a_warning_event(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "ev", {NETWORKS: "missing-x"})

    cluster.add(pod).error()

    [event] = cluster.api.events
    assert (event["type"], event["reason"]) == ("Warning", "NoNetworkFound")
    assert event["involvedObject"]["name"] == "ev"


def test_third_delegate_failure_rolls_back_and_keeps_its_code(cluster: Cluster) -> None:
    bin_dir = cluster.tmp / "bin"
    install_recorder(bin_dir, "pm-fail")
    calls = cluster.tmp / "calls.jsonl"
    failing = recorder_conf(
        "pm-fail",
        calls,
        name="fail-c",
        behaviour={"ADD": {"action": "error", "code": 42, "msg": "no capacity left"}},
    )
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    cluster.put_nad("default", "fail-c", failing)
    pod = cluster.put_pod("default", "third", {NETWORKS: "br-a, fail-c"})
    before = cluster.snapshot()

    err = cluster.add(pod, cluster.multus_conf(binDir=str(bin_dir))).error()

    assert err["code"] == 42
    prefix = f'[default/third/{pod.uid}:fail-c]: error adding container to network "fail-c": '
    assert err["msg"] == prefix + "no capacity left"
    assert cluster.snapshot() == before  # eth0 and net1 were rolled back, IPs released
    assert [(r["command"], r["env"]["CNI_IFNAME"]) for r in read_records(calls)] == [
        ("ADD", "net2"),
        ("DEL", "net2"),
    ]
    assert cluster.status_annotation(pod) is None


def test_uid_mismatch_fails_with_code_3(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "uid")
    stale = PodId(pod.namespace, pod.name, "11111111-2222-3333-4444-555555555555", "c1d" * 10)

    err = cluster.add(stale).error()

    assert err["code"] == 3
    assert "expected pod UID" in err["msg"]
    assert cluster.snapshot()["links"] == {"lo"} and cluster.cache_files() == []


def test_api_server_unreachable_on_add_is_try_again_later(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "down")
    before = cluster.snapshot()
    cluster.api.stop()

    err = cluster.add(pod).error()

    assert err["code"] == 11, err
    assert cluster.api.url.removeprefix("http://") in err["msg"], err
    assert cluster.snapshot() == before


def _unreachable_gateway(cluster: Cluster) -> str:
    """A default route via an address that is not on net1's subnet: the kernel refuses it."""
    return json.dumps([{"name": "br-a", "default-route": ["203.0.113.1"]}])


def _status_write_forbidden(cluster: Cluster) -> str:
    """RBAC without pods/status patch or update: the network-status write is refused (403)."""

    def refuse(request: Any) -> None:
        if request.method in ("PATCH", "PUT") and request.path.endswith("/status"):
            cluster.api.fail_next(1, 403)

    cluster.api.on_request = refuse
    return "br-a"


AFTER_ATTACH = {
    "route-change-fails": (_unreachable_gateway, 5, "cannot add default route via 203.0.113.1"),
    "status-write-fails": (_status_write_forbidden, 999, "denied the request (RBAC)"),
}


@pytest.mark.parametrize(("setup", "code", "says"), AFTER_ATTACH.values(), ids=AFTER_ATTACH.keys())
def test_failure_after_every_delegate_ran_rolls_everything_back(
    cluster: Cluster, setup: Callable[[Cluster], str], code: int, says: str
) -> None:
    """Go Multus fails these without any rollback and leaves the pod's interfaces behind."""
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "late", {NETWORKS: setup(cluster)})
    before = cluster.snapshot()

    err = cluster.add(pod).error()

    assert err["code"] == code, err
    assert err["msg"].startswith(f"Multus: [default/late/{pod.uid}]: "), err
    assert says in err["msg"], err
    assert cluster.snapshot() == before


def test_repeated_add_fails_without_touching_the_first(cluster: Cluster) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "again", {NETWORKS: "br-a"})
    cluster.add(pod).check_ok()
    before = cluster.snapshot()
    delegate_cache = (cluster.cni_dir / pod.container_id).read_bytes()

    err = cluster.add(pod).error()

    assert err["code"] == 7
    assert "interface name eth0 already exists" in err["msg"], err
    assert cluster.snapshot() == before
    assert (cluster.cni_dir / pod.container_id).read_bytes() == delegate_cache
    cluster.delete(pod).check_ok()
    assert cluster.allocations() == [] and cluster.cache_files() == []
