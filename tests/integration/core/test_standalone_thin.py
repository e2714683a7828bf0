"""The thin plugin without Kubernetes: standalone mode for a ``clusterNetwork`` config, Go's
plain static-delegates mode for a ``delegates`` config.

Standalone reads NAD manifests from ``nadDir`` and the pod's selection from ``podDir``, and
writes network-status to ``statusDir``; the stand-in API server must see no request at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.multus import NETWORKS, STATUS, Cluster, PodId


def standalone_conf(cluster: Cluster) -> dict[str, Any]:
    dirs = {key: str(cluster.tmp / key) for key in ("nadDir", "podDir", "statusDir")}
    return cluster.multus_conf(kubeconfig=None, **dirs)


def write_nad(cluster: Cluster, namespace: str, name: str, config: Any) -> None:
    path = cluster.tmp / "nadDir" / namespace / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join("    " + line for line in json.dumps(config, indent=2).splitlines())
    path.write_text(
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
        f"metadata:\n  name: {name}\nspec:\n  config: |\n{body}\n"
    )


def write_pod(cluster: Cluster, p: PodId, annotations: dict[str, str]) -> None:
    path = cluster.tmp / "podDir" / p.namespace / f"{p.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metadata": {"annotations": annotations}}))


def status_file(cluster: Cluster, p: PodId) -> Path:
    return cluster.tmp / "statusDir" / p.namespace / f"{p.name}.json"


def test_standalone_thin_run_uses_nad_and_pod_files(cluster: Cluster) -> None:
    write_nad(cluster, "apps", "br-s", cluster.bridge_nad("br-s", "pmbrs", 30))
    p = PodId("apps", "web", "uid-web", container_id="5" * 64)
    write_pod(cluster, p, {NETWORKS: "br-s"})
    conf = standalone_conf(cluster)

    cluster.add(p, conf).check_ok()

    assert cluster.link_names() == {"lo", "eth0", "net1"}
    assert cluster.addrs("net1") == ["198.18.30.2/24"]
    record = json.loads(status_file(cluster, p).read_bytes())
    assert (record["uid"], record["containerID"]) == ("uid-web", p.container_id)
    names = [s["name"] for s in json.loads(record["annotations"][STATUS])]
    assert names == ["pm-cluster", "apps/br-s"]
    assert cluster.api.requests() == []

    cluster.delete(p, conf).check_ok()

    assert cluster.link_names() == {"lo"} and cluster.allocations() == []
    assert not status_file(cluster, p).exists()
    assert cluster.api.requests() == []


def test_standalone_missing_nad_file_fails_naming_it(cluster: Cluster) -> None:
    p = PodId("apps", "lost", "uid-lost", container_id="6" * 64)
    write_pod(cluster, p, {NETWORKS: "nowhere"})

    err = cluster.add(p, standalone_conf(cluster)).error()

    assert err["code"] == 7 and "(nowhere) in namespace (apps)" in err["msg"], err
    assert cluster.link_names() == {"lo"} and cluster.cache_files() == []


def test_static_delegates_never_look_at_pods(cluster: Cluster) -> None:
    """Golden case 05: the first delegate is eth0, the second net1, its result is printed, and
    nothing is asked of the API or of pod files: the pod's annotation, naming a NAD that does
    not exist, changes nothing. (That no pod file is even opened shows in test_imports: this
    mode never imports PyYAML.)"""
    first = cluster.bridge_nad("static-a", "pmbsa", 31)
    first["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}]
    second = cluster.bridge_nad("static-b", "pmbsb", 32)
    conf = cluster.multus_conf(kubeconfig=None, clusterNetwork=None, delegates=[first, second])
    p = cluster.put_pod("default", "static", {NETWORKS: "missing-nad"})

    out = cluster.add(p, conf).check_ok()

    assert out.stderr == b""  # as in the golden case: nothing logged at the default level
    assert out.json()["routes"] == [{"dst": "0.0.0.0/0"}]
    assert cluster.link_names() == {"lo", "eth0", "net1"}
    cached = json.loads((cluster.cni_dir / p.container_id).read_bytes())
    assert [d["Name"] for d in cached] == ["static-a", "static-b"]
    assert cluster.api.requests() == [] and cluster.status_annotation(p) is None
    cluster.delete(p, conf).check_ok()
    assert cluster.link_names() == {"lo"}
