"""The thick daemon's resident memory: idle, after the load runs, and with a full cache.

"Full" is 1,000 pods on this node and 500 NADs (10 namespaces of 50), all listed by a
freshly started daemon before it serves. The pods look like what a kubelet sees: labels, an
owner, a container with env and resources, a status with conditions, ``managedFields`` and a
``last-applied-configuration`` annotation, about 4 KiB each in JSON. The daemon keeps only
the few fields Multus reads, so what it holds does not grow with this noise; the decode of
the first list briefly does, which the peak (VmHWM) shows.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from bench.modes import run_call
from bench.world import NAMESPACE, NETWORKS, NODE, World

FULL_PODS = 1000
FULL_NADS = 500
NAD_NAMESPACES = 10


@dataclass(frozen=True)
class Rss:
    """One reading of ``/proc/<pid>/status``: resident now and at the peak, MiB."""

    label: str
    rss_mib: float
    peak_mib: float
    pods: int
    nads: int


def read_rss(pid: int) -> tuple[float, float]:
    values = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def reading(world: World, label: str) -> Rss:
    assert world.daemon is not None
    rss, peak = read_rss(world.daemon.pid)
    return Rss(label, rss, peak, world.api.count("pods"), world.api.count("nads"))


def warm_call(world: World, label: str) -> None:
    """One ADD and DEL through the shim, so every module of the request path is loaded."""
    pod = world.new_pod(2, label)
    time.sleep(0.3)
    world.make_netns(pod)
    try:
        for command in ("ADD", "DEL"):
            call = run_call(world, "thick", command, pod)
            if not call.ok:
                raise RuntimeError(f"warm-up {command} failed: {call.detail}")
    finally:
        world.delete_netns(pod.netns)


def fill_cache(world: World) -> None:
    """Add pods and NADs until the API holds ``FULL_PODS`` pods and ``FULL_NADS`` NADs."""
    for i in range(world.api.count("pods"), FULL_PODS):
        world.api.put_object(big_pod(f"filler-{i:04d}", networks=i % 3))
    for i in range(world.api.count("nads"), FULL_NADS):
        ns = f"team-{i % NAD_NAMESPACES}"
        conf = world.nad_conf(1 + i % 8) | {"name": f"filler-{i}"}
        world.put_nad(f"filler-{i}", conf, namespace=ns)


def big_pod(name: str, networks: int) -> dict[str, Any]:
    """A pod object of the size a real one has (see the module docstring)."""
    labels = {"app": name.rsplit("-", 1)[0], "pod-template-hash": "7d9c8f6b5d", "tier": "web"}
    container = {
        "name": "app",
        "image": "registry.example/app:1.2.3",
        "env": [{"name": f"VAR_{k}", "value": "x" * 20} for k in range(8)],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
    }
    spec = {"nodeName": NODE, "containers": [container], "restartPolicy": "Always"}
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(spec)}
    if networks:
        annotations[NETWORKS] = ", ".join(f"net{k}" for k in range(1, networks + 1))
    conditions = [
        {"type": t, "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}
        for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    meta = {
        "namespace": NAMESPACE,
        "name": name,
        "uid": str(uuid.uuid4()),
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-rs"}],
        "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {}}}],
    }
    status = {"phase": "Running", "podIP": "198.18.0.9", "conditions": conditions}
    return {"kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def measure_full(world: World) -> Rss:
    """Fill the API, start a fresh daemon over it (it lists all before serving), one call.
    The pods of the latency and load runs are deleted first, so the cache holds what the
    issue asks for (``FULL_PODS`` pods), not however many the runs made."""
    world.stop_daemon()
    world.forget_pods()
    fill_cache(world)
    world.start_daemon(timeout=120)
    warm_call(world, "mem")
    return reading(world, "fresh daemon over a full API (everything listed before serving)")
