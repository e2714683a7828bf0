"""``pymultus generate-config -t thin --per-node-cert-dir``: the thin plugin's kubeconfig uses
the node's own certificate, as Go's ``kubeconfig_generator`` does (issue #16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.support.apiserver import StandInApiServer

from pymultus.k8s.client import KubeApi, load_client
from pymultus.k8s.refs import PodRef

PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


@pytest.fixture
def api() -> Iterator[StandInApiServer]:
    with StandInApiServer(tls=True) as server:
        server.token_user = ("system:node:node-a", ["system:nodes", "system:authenticated"])
        server.put_object({"kind": "Pod", "metadata": {"namespace": "ns", "name": "p"}})
        yield server


def generate(
    tmp_path: Path, api: StandInApiServer, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    net_d = tmp_path / "net.d"
    net_d.mkdir(exist_ok=True)
    conf = {"cniVersion": "1.0.0", "name": "pm-pn", "type": "bridge", "bridge": "pmpn0"}
    (net_d / "10-pn.conf").write_text(json.dumps(conf))
    bootstrap = api.write_kubeconfig(tmp_path / "bootstrap.kubeconfig")
    argv = [PYMULTUS, "generate-config", "-t", "thin", "--multus-autoconfig-dir", str(net_d)]
    argv += [
        "--cni-conf-dir",
        str(tmp_path / "out"),
        "--per-node-cert-dir",
        str(tmp_path / "certs"),
    ]
    argv += ["--bootstrap-kubeconfig", str(bootstrap)]
    (tmp_path / "out").mkdir(exist_ok=True)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env}
    )


def test_thin_kubeconfig_names_the_nodes_certificate(api: StandInApiServer, tmp_path: Path) -> None:
    done = generate(tmp_path, api, {"MULTUS_NODE_NAME": "node-a"})
    assert done.returncode == 0, done.stderr
    kubeconfig = tmp_path / "out" / "multus.d" / "multus.kubeconfig"
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    assert user == {
        "client-certificate": str(tmp_path / "certs" / "multus-client-current.pem"),
        "client-key": str(tmp_path / "certs" / "multus-client-current.pem"),
    }
    client = load_client(str(kubeconfig))
    assert client is not None
    try:
        assert KubeApi(client).get_pod(PodRef("ns", "p")) is not None
    finally:
        client.close()
    assert api.requests("GET", "/pods/p")[-1].user == "system:multus:node-a"


def test_without_a_node_name_it_says_so(api: StandInApiServer, tmp_path: Path) -> None:
    done = generate(tmp_path, api, {"MULTUS_NODE_NAME": ""})
    assert done.returncode == 1
    assert "MULTUS_NODE_NAME" in done.stderr
    assert "Traceback" not in done.stderr
