"""``pymultus cni add|check|del`` behaves like cnitool on Debian's real plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
from tests.support.netns import NetnsPair, addresses, links

PYMULTUS = str(Path(sys.executable).with_name("pymultus"))


def _conflist(tmp_path: Path, bridge: str) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "clinet",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "subnet": "198.18.20.0/24",
                    "dataDir": str(tmp_path / "ipam"),
                },
            },
            {"type": "tuning", "mtu": 1300},
        ],
    }


def _run(pair: NetnsPair, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NETCONFPATH": str(tmp_path / "net.d"),
        "CNI_PATH": "/usr/lib/cni",
        "CNI_CACHE_DIR": str(tmp_path / "cache"),
        "CNI_IFNAME": "eth0",
    }
    return subprocess.run(
        ["ip", "netns", "exec", pair.host, PYMULTUS, "cni", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_add_check_del_like_cnitool(netns_pair: NetnsPair, tmp_path: Path) -> None:
    (tmp_path / "net.d").mkdir()
    bridge = "clibr" + netns_pair.host[-6:]
    (tmp_path / "net.d" / "10-cli.conflist").write_text(json.dumps(_conflist(tmp_path, bridge)))

    added = _run(netns_pair, tmp_path, "add", "clinet", netns_pair.pod_path)
    assert added.returncode == 0, added.stdout + added.stderr
    result = msgspec.json.decode(added.stdout)
    assert result["ips"][0]["address"].startswith("198.18.20.")
    assert links(netns_pair.pod)["eth0"]["mtu"] == 1300
    assert addresses(netns_pair.pod, "eth0") == [result["ips"][0]["address"]]
    cached = list((tmp_path / "cache" / "results").iterdir())
    assert [p.name.split("-")[0] for p in cached] == ["clinet"]
    assert "-cnitool-" in cached[0].name  # cnitool's container id rule

    checked = _run(netns_pair, tmp_path, "check", "clinet", netns_pair.pod_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    deleted = _run(netns_pair, tmp_path, "del", "clinet", netns_pair.pod_path)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "eth0" not in links(netns_pair.pod)
    assert not list((tmp_path / "cache" / "results").iterdir())
    assert not [p for p in (tmp_path / "ipam" / "clinet").iterdir() if p.name[0].isdigit()]


def test_unknown_network_is_a_cni_error(netns_pair: NetnsPair, tmp_path: Path) -> None:
    (tmp_path / "net.d").mkdir()
    out = _run(netns_pair, tmp_path, "add", "nosuch", netns_pair.pod_path)
    assert out.returncode == 1
    error = msgspec.json.decode(out.stdout)
    assert error["code"] == 7
    assert "nosuch" in error["msg"]
    assert "Traceback" not in out.stderr
