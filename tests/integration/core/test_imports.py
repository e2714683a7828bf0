"""The thin plugin starts once per CNI call, so what it imports is what it costs (issue #15).
These pin the import budget by module names, not by timings: VERSION imports next to nothing;
no verb imports lightkube, httpx or their stack (the thin client is ``k8s.lite``); a DEL its
caches serve imports neither TLS nor HTTP; pyroute2 (~0.3 s) only when a pod asks for a
default-route change; PyYAML only in standalone mode."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.support.multus import NETWORKS, Cluster, run_plugin

from pymultus.cni import gojson
from pymultus.cni.version import ALL_VERSIONS, CURRENT
from pymultus.plugin.install import install_thin
from pymultus.plugin.main import SUPPORTED, version_info

HEAVY = ("lightkube", "pyroute2", "httpx2", "httpcore2", "anyio", "h2", "yaml", "ssl", "http")
IMPORTTIME = [
    sys.executable,
    "-X",
    "importtime",
    "-c",
    "from pymultus.plugin.main import main; main()",
]


def imported(stderr: bytes) -> set[str]:
    """Every module ``-X importtime`` saw imported."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    } - {"imported package"}


def imported_heavy(stderr: bytes) -> set[str]:
    """Top-level names of the heavy packages ``-X importtime`` saw imported."""
    return {name.split(".")[0] for name in imported(stderr)} & set(HEAVY)


def test_version_imports_next_to_nothing() -> None:
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"}
    out = subprocess.run(IMPORTTIME, env=env, capture_output=True, check=True, timeout=60)
    assert out.stdout == version_info()
    names = imported(out.stderr)
    assert {n for n in names if n.startswith("pymultus")} == {
        "pymultus",
        "pymultus.plugin",
        "pymultus.plugin.main",
    }
    assert names.isdisjoint({"typing", "msgspec", "logging", "json", "socket", *HEAVY})


def test_version_constants_are_the_cni_library_s() -> None:
    assert SUPPORTED == ALL_VERSIONS and SUPPORTED[-1] == CURRENT
    assert version_info() == gojson.marshal(
        {"cniVersion": CURRENT, "supportedVersions": list(ALL_VERSIONS)}
    )


def _static_delegates(cluster: Cluster) -> dict[str, Any]:
    """Golden case 05: two static bridge delegates, no kubeconfig, no clusterNetwork."""
    first = cluster.bridge_nad("static-a", "pmbsa", 20)
    second = cluster.bridge_nad("static-b", "pmbsb", 21)
    return cluster.multus_conf(kubeconfig=None, clusterNetwork=None, delegates=[first, second])


def _cluster_file(cluster: Cluster) -> dict[str, Any]:
    """A clusterNetwork file and a defaultNetworks CNI name from confDir, no kubeconfig (Go
    needs Kubernetes credentials even for these): standalone mode, which reads manifests."""
    (cluster.conf_dir / "dn.conf").write_text(json.dumps(cluster.bridge_nad("dn", "pmbsb", 21)))
    dirs = {key: str(cluster.tmp / key) for key in ("nadDir", "podDir", "statusDir")}
    return cluster.multus_conf(kubeconfig=None, defaultNetworks=["dn"], **dirs)


@pytest.mark.parametrize(
    ("make_conf", "heavy"), [(_static_delegates, set()), (_cluster_file, {"yaml"})]
)
def test_no_kubernetes_needs_neither_lightkube_nor_pyroute2(
    cluster: Cluster, make_conf: Callable[[Cluster], dict[str, Any]], heavy: set[str]
) -> None:
    pod = cluster.put_pod("default", "static")
    conf = json.dumps(make_conf(cluster)).encode()
    outcomes = {}
    for command in ("ADD", "CHECK", "DEL"):
        out = run_plugin(cluster.pair, cluster.env(command, pod), conf, argv=IMPORTTIME)
        outcomes[command] = out.check_ok()
        if command == "ADD":
            assert cluster.link_names() == {"lo", "eth0", "net1"}
            assert cluster.addrs("net1") == ["198.18.21.2/24"]
            assert cluster.api.requests() == []  # the API is never used

    assert {c: imported_heavy(o.stderr) for c, o in outcomes.items()} == {
        "ADD": heavy,
        "CHECK": heavy,
        "DEL": heavy,
    }
    assert cluster.link_names() == {"lo"} and cluster.allocations() == []


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (None, set()),
        # pyroute2 imports ssl itself
        (json.dumps([{"name": "br-a", "default-route": ["198.18.1.1"]}]), {"pyroute2", "ssl"}),
    ],
    ids=["kubernetes", "kubernetes-and-default-route"],
)
def test_heavy_imports_only_when_needed(
    cluster: Cluster, annotation: str | None, expected: set[str]
) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "heavy", {NETWORKS: annotation} if annotation else None)
    conf = json.dumps(cluster.multus_conf()).encode()

    out = run_plugin(cluster.pair, cluster.env("ADD", pod), conf, argv=IMPORTTIME).check_ok()

    assert imported_heavy(out.stderr) == expected


def test_del_served_from_the_caches_imports_no_tls_nor_http(cluster: Cluster) -> None:
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "cached", {NETWORKS: "br-a"})
    conf = json.dumps(cluster.multus_conf()).encode()
    cluster.add(pod, conf).check_ok()
    before = len(cluster.api.requests())

    out = run_plugin(cluster.pair, cluster.env("DEL", pod), conf, argv=IMPORTTIME).check_ok()

    assert imported_heavy(out.stderr) == set()
    names = imported(out.stderr)
    assert names.isdisjoint(
        {"pymultus.k8s.client", "pymultus.core.add", "pymultus.core.verbs", "ctypes"}
    )
    assert len(cluster.api.requests()) == before  # the delegate cache had everything
    assert cluster.link_names() == {"lo"} and cluster.allocations() == []


def test_a_lean_call_through_the_installed_plugin_imports_its_modules_from_the_bundles(
    cluster: Cluster, tmp_path: Path
) -> None:
    """``plugin.preload``: ADD and DEL through the launcher ``pymultus install --type thin``
    writes import no module of the lean path by ``importlib``: the bundles hold them all."""
    launcher = install_thin(str(tmp_path))
    python = Path(launcher).read_text().splitlines()[0][2:].split()[0]
    traced = [python, "-IS", "-X", "importtime", launcher]
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "bundled", {NETWORKS: "br-a"})
    conf = json.dumps(cluster.multus_conf()).encode()
    lean = {"PYMULTUS_THIN_PATH": "lean"}  # exit 70 rather than the full path

    outcomes = [
        run_plugin(cluster.pair, cluster.env(command, pod) | lean, conf, argv=traced).check_ok()
        for command in ("ADD", "DEL")
    ]

    for out in outcomes:
        ours = {n for n in imported(out.stderr) if n.startswith("pymultus")}
        assert ours == {
            "pymultus",
            "pymultus.plugin",
            "pymultus.plugin.main",
            "pymultus.plugin.preload",
        }
    assert cluster.link_names() == {"lo"} and cluster.allocations() == []
