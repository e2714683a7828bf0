"""The thin plugin against an API server over TLS, with a YAML kubeconfig as a real node has:
the server's certificate is verified against the kubeconfig's CA; the YAML is parsed once (its
parsed form cached, hidden, in ``cniDir``); ADD imports ``ssl`` and no HTTP library; a DEL its
caches serve imports neither, and opens no connection."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.integration.core.test_imports import IMPORTTIME, imported
from tests.support.apiserver import StandInApiServer
from tests.support.multus import NETWORKS, Cluster, run_plugin
from tests.support.netns import make_pair

TLS = Path(__file__).resolve().parents[2] / "unit" / "k8s" / "tls"


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[Cluster]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS / "server.crt", TLS / "server.key")
    with make_pair() as pair:
        api = StandInApiServer(tls=ctx)
        with pair.in_host():
            api.start()
        try:
            cluster = Cluster(pair, tmp_path, api)
            kubeconfig = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": api.url,
                            "certificate-authority": str(TLS / "ca.crt"),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": api.token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
            cluster.kubeconfig.write_text(yaml.safe_dump(kubeconfig))
            yield cluster
        finally:
            api.stop()


def test_thin_add_and_del_over_tls(tls_cluster: Cluster) -> None:
    cluster = tls_cluster
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "tls", {NETWORKS: "br-a"})
    conf = json.dumps(cluster.multus_conf()).encode()

    add = run_plugin(cluster.pair, cluster.env("ADD", pod), conf, argv=IMPORTTIME).check_ok()

    assert cluster.link_names() == {"lo", "eth0", "net1"}
    assert cluster.status_annotation(pod) is not None
    names = imported(add.stderr)
    assert "ssl" in names
    assert names.isdisjoint({"lightkube", "httpx2", "httpcore2", "anyio", "h2", "http.client"})
    hidden = [p.name for p in cluster.cni_dir.iterdir() if p.name.startswith(".kubeconfig-")]
    assert len(hidden) == 1
    requests = len(cluster.api.requests())

    delete = run_plugin(cluster.pair, cluster.env("DEL", pod), conf, argv=IMPORTTIME).check_ok()

    names = imported(delete.stderr)
    assert names.isdisjoint({"ssl", "yaml", "lightkube", "httpx2"})  # cache-served, no TLS
    assert len(cluster.api.requests()) == requests
    assert cluster.link_names() == {"lo"} and cluster.allocations() == []


def test_thin_add_with_the_wrong_ca_fails_without_retrying(tls_cluster: Cluster) -> None:
    cluster = tls_cluster
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["certificate-authority"] = str(TLS / "other-ca.crt")
    cluster.kubeconfig.write_text(yaml.safe_dump(kubeconfig))
    pod = cluster.put_pod("default", "tls-bad")

    err = cluster.add(pod).error()

    assert err["code"] == 999  # not "try again later": a wrong CA does not fix itself
    assert "certificate verify failed" in err["msg"] and cluster.api.url in err["msg"]
    assert cluster.api.requests() == []
    assert cluster.link_names() == {"lo"}


#: What no lean call imports (each costs milliseconds; issue #15): the core's stack, the
#: standard library's pure-Python layers over the C modules, and every HTTP/TLS library.
NOT_LEAN = {
    "typing",
    "re",
    "enum",
    "logging",
    "json",
    "socket",
    "ssl",
    "subprocess",
    "dataclasses",
    "collections",
    "msgspec",
    "ctypes",
    "ipaddress",
    "yaml",
    "http.client",
    "lightkube",
    "httpx2",
    "pymultus.core",
    "pymultus.cni",
    "pymultus.k8s",
    "pymultus.config",
}


def _pymultus(names: set[str]) -> set[str]:
    return {n for n in names if n.startswith("pymultus")}


def test_a_lean_add_and_del_over_tls_import_c_modules_only(tls_cluster: Cluster) -> None:
    """From its second call (the YAML kubeconfig's parsed form cached by the first), ADD takes
    the lean path: TLS through ``_ssl`` itself; its DEL opens no connection, no ``_ssl``."""
    cluster = tls_cluster
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    conf = json.dumps(cluster.multus_conf()).encode()
    warm = cluster.put_pod("default", "warm")
    cluster.add(warm, conf).check_ok()  # the full path: parses the YAML, caches its form
    cluster.delete(warm, conf).check_ok()
    pod = cluster.put_pod("default", "lean", {NETWORKS: "br-a"})
    lean = {**cluster.env("ADD", pod), "PYMULTUS_THIN_PATH": "lean"}

    add = run_plugin(cluster.pair, lean, conf, argv=IMPORTTIME).check_ok()

    assert cluster.link_names() == {"lo", "eth0", "net1"}
    names = imported(add.stderr)
    assert "_ssl" in names and names.isdisjoint(NOT_LEAN)
    assert {n for n in _pymultus(names) if not n.startswith("pymultus.plugin.lean")} == {
        "pymultus",
        "pymultus.plugin",
        "pymultus.plugin.main",
    }
    requests = len(cluster.api.requests())

    lean_del = {**cluster.env("DEL", pod), "PYMULTUS_THIN_PATH": "lean"}
    delete = run_plugin(cluster.pair, lean_del, conf, argv=IMPORTTIME).check_ok()

    names = imported(delete.stderr)
    assert names.isdisjoint(NOT_LEAN | {"_ssl", "_socket", "_thread"})
    assert len(cluster.api.requests()) == requests
    assert cluster.link_names() == {"lo"} and cluster.allocations() == []
