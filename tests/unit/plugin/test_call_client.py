"""Which API client a thin call gets (``plugin.call._api``): ``k8s.lite`` for a kubeconfig it
can use, lightkube for ``exec`` credentials, nothing for a DEL whose kubeconfig is unusable
(the caches serve it), and a config error for any other verb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pymultus.cni.errors import InvalidConfigError
from pymultus.config.multus import MultusConf, parse_multus_conf
from pymultus.k8s.client import KubeApi
from pymultus.k8s.lite import LiteApi
from pymultus.plugin.call import _api


def _conf(tmp_path: Path, user: dict[str, object] | None) -> MultusConf:
    path = tmp_path / "kubeconfig"
    if user is not None:
        doc = {
            "clusters": [{"name": "c", "cluster": {"server": "https://198.51.100.9:6443"}}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
        path.write_text(json.dumps(doc))
    raw = {"cniVersion": "1.0.0", "name": "m", "type": "multus", "kubeconfig": str(path)}
    raw["cniDir"] = str(tmp_path / "cni")
    raw["clusterNetwork"] = str(tmp_path / "cluster.conflist")
    return parse_multus_conf(json.dumps(raw).encode())


def test_a_token_kubeconfig_gets_the_lite_client(tmp_path: Path) -> None:
    api = _api(_conf(tmp_path, {"token": "t"}), "ADD")
    assert isinstance(api, LiteApi) and api.server == "https://198.51.100.9:6443"
    api.close()


def test_exec_credentials_get_lightkube(tmp_path: Path) -> None:
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "true"}}
    api = _api(_conf(tmp_path, exec_user), "ADD")
    assert isinstance(api, KubeApi)
    api.close()


@pytest.mark.parametrize("command", ["ADD", "CHECK", "STATUS"])
def test_an_unusable_kubeconfig_fails_every_verb_but_del(tmp_path: Path, command: str) -> None:
    conf = _conf(tmp_path, None)  # the file does not exist
    assert _api(conf, "DEL") is None
    with pytest.raises(InvalidConfigError) as err:
        _api(conf, command)
    assert err.value.field == "kubeconfig"
