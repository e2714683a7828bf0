"""The config manager on a real filesystem with inotify: discovery, generation, watching,
restart, uninstall, forceCNIVersion, overrideNetworkName, readiness file, version refusal."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pymultus.cni.errors import IncompatibleVersionError, InvalidConfigError, IOFailure
from pymultus.config.daemon import DaemonConf, parse_daemon_conf
from pymultus.config.generator import generate_shim_config
from pymultus.daemon.confmanager import ConfigManager, ManagerTiming, find_primary, wait_for_file

FAST = ManagerTiming(discover_timeout=2.0, discover_interval=0.02, settle=0.02, poll_interval=0.05)


def conflist(name: str = "primary", version: str = "1.0.0", **caps: bool) -> bytes:
    plugins: list[dict[str, Any]] = [{"type": "bridge", "bridge": "cni0"}]
    for cap, enabled in caps.items():
        plugins.append({"type": f"plugin-{cap}", "capabilities": {cap: enabled}})
    return json.dumps({"cniVersion": version, "name": name, "plugins": plugins}, indent=2).encode()


class Node:
    """A node's CNI directories under tmp_path and a daemon config pointing at them."""

    def __init__(self, tmp_path: Path) -> None:
        self.net_d = tmp_path / "net.d"
        self.net_d.mkdir()
        self.out = self.net_d / "00-multus.conf"

    def conf(self, **keys: Any) -> DaemonConf:
        base = {
            "cniVersion": "1.0.0",
            "multusAutoconfigDir": str(self.net_d),
            "cniConfigDir": str(self.net_d),
            "daemonSocketDir": "/run/multus",
        }
        return parse_daemon_conf(json.dumps({**base, **keys}).encode())

    def output(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.out.read_bytes())
        return out


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 20))


async def until(cond: Callable[[], bool], timeout: float = 1.0) -> None:
    """``cond`` must become true within ``timeout`` (the acceptance: within a second)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.01)


def managed(conf: DaemonConf, **kw: Any) -> ConfigManager:
    return ConfigManager(conf, timing=FAST, **kw)


# --- discovery and the file written ------------------------------------------------------


def test_primary_is_the_first_conf_or_conflist_by_name_not_ours(node: Node) -> None:
    (node.net_d / "00-multus.conf").write_text("{}")
    (node.net_d / "00-multus.conflist.bak.conf").write_text("{}")
    (node.net_d / "05-other.json").write_text("{}")
    (node.net_d / "07-dir.conf").mkdir()
    (node.net_d / "20-b.conflist").write_bytes(conflist("b"))
    (node.net_d / "10-a.conf").write_bytes(
        json.dumps({"cniVersion": "1.0.0", "type": "x"}).encode()
    )
    assert find_primary(str(node.net_d)) == "10-a.conf"

    manager = managed(node.conf())

    async def body() -> None:
        await manager.start()
        await manager.stop()

    run(body)
    assert manager.primary_path == str(node.net_d / "10-a.conf")
    primary = (node.net_d / "10-a.conf").read_bytes()
    expected = generate_shim_config(primary, node.conf(), primary_path=manager.primary_path)
    assert node.out.read_bytes() == expected
    assert node.output()["clusterNetwork"] == str(node.net_d / "10-a.conf")
    assert stat.S_IMODE(node.out.stat().st_mode) == 0o600
    assert [p.name for p in node.net_d.iterdir() if p.name.endswith(".tmp")] == []


def test_discovery_waits_for_the_primary(node: Node) -> None:
    manager = managed(node.conf())

    async def body() -> None:
        asyncio.get_running_loop().call_later(
            0.2, (node.net_d / "10-late.conflist").write_bytes, conflist()
        )
        await manager.start()
        await manager.stop()

    run(body)
    assert node.output()["clusterNetwork"].endswith("10-late.conflist")


def test_discovery_gives_up(node: Node) -> None:
    manager = ConfigManager(
        node.conf(), timing=ManagerTiming(discover_timeout=0.1, discover_interval=0.02)
    )
    with pytest.raises(IOFailure, match="could not find a plugin configuration in"):
        run(manager.start)
    assert not node.out.exists()


def test_pinned_primary(node: Node) -> None:
    (node.net_d / "10-a.conflist").write_bytes(conflist("a"))
    (node.net_d / "90-z.conflist").write_bytes(conflist("z"))
    manager = managed(node.conf(multusMasterCNI="90-z.conflist"))
    run(manager.start)
    assert node.output()["clusterNetwork"] == str(node.net_d / "90-z.conflist")


def test_refuses_its_own_output_as_primary(node: Node) -> None:
    node.out.write_bytes(conflist())
    manager = managed(node.conf(multusMasterCNI="00-multus.conf"))
    with pytest.raises(InvalidConfigError) as err:
        run(manager.start)
    assert err.value.field == "multusMasterCNI"


def test_auto_mode_needs_the_autoconfig_dir(node: Node) -> None:
    with pytest.raises(InvalidConfigError) as err:
        ConfigManager(node.conf(multusAutoconfigDir=""))
    assert err.value.field == "multusAutoconfigDir"


def test_capabilities_of_the_primary_are_merged(node: Node) -> None:
    (node.net_d / "10-p.conflist").write_bytes(
        conflist(portMappings=True, bandwidth=True, mac=False)
    )
    run(managed(node.conf(capabilities={"ips": True})).start)
    assert node.output()["capabilities"] == {"bandwidth": True, "ips": True, "portMappings": True}


# --- versions and names ------------------------------------------------------------------


def test_primary_older_than_0_4_0_is_refused(node: Node) -> None:
    (node.net_d / "10-p.conflist").write_bytes(conflist(version="0.3.1"))
    manager = managed(node.conf(cniVersion="0.4.0"))
    with pytest.raises(IncompatibleVersionError, match=r"delegate cni version is 0\.3\.1"):
        run(manager.prepare)
    assert not node.out.exists()


def test_force_cni_version_rewrites_the_primary(node: Node) -> None:
    primary = node.net_d / "10-p.conflist"
    primary.write_bytes(conflist(version="0.3.1"))
    primary.chmod(0o640)
    run(managed(node.conf(cniVersion="1.0.0", forceCNIVersion=True)).start)
    assert json.loads(primary.read_bytes())["cniVersion"] == "1.0.0"
    assert primary.read_bytes().startswith(b'{"cniVersion":"1.0.0","name":"primary"')  # Go's map
    assert stat.S_IMODE(primary.stat().st_mode) == 0o640
    assert node.output()["cniVersion"] == "1.0.0"


def test_override_network_name(node: Node) -> None:
    (node.net_d / "10-p.conflist").write_bytes(conflist(name="flannel"))
    run(managed(node.conf(overrideNetworkName=True)).start)
    assert node.output()["name"] == "flannel"


# --- watching ----------------------------------------------------------------------------


@pytest.mark.parametrize("use_inotify", [True, False], ids=["inotify", "polling"])
def test_regenerated_when_the_primary_changes(node: Node, use_inotify: bool) -> None:
    primary = node.net_d / "10-p.conflist"
    primary.write_bytes(conflist())
    manager = managed(node.conf(), use_inotify=use_inotify)

    async def body() -> None:
        await manager.start()
        assert manager.watch_mode == ("inotify" if use_inotify else "polling")
        assert "capabilities" not in node.output()
        primary.write_bytes(conflist(portMappings=True))  # in place
        await until(lambda: "portMappings" in node.output().get("capabilities", {}))
        tmp = node.net_d / ".10-p.conflist.new"
        tmp.write_bytes(conflist(bandwidth=True))
        os.replace(tmp, primary)  # replaced atomically, as installers do
        await until(lambda: "bandwidth" in node.output().get("capabilities", {}))
        await manager.stop()

    run(body)
    assert manager.writes == 3


def test_invalid_primary_keeps_the_last_good_config(node: Node) -> None:
    primary = node.net_d / "10-p.conflist"
    primary.write_bytes(conflist(portMappings=True))
    manager = managed(node.conf())

    async def body() -> None:
        await manager.start()
        good = node.out.read_bytes()
        primary.write_bytes(b'{"cniVersion": "1.0.0", "plugins": [')  # half written
        await asyncio.sleep(0.2)
        assert node.out.read_bytes() == good
        primary.write_bytes(conflist(bandwidth=True))
        await until(lambda: "bandwidth" in node.output().get("capabilities", {}))
        await manager.stop()

    run(body)


def test_a_primary_that_goes_away_is_replaced_by_the_next(node: Node) -> None:
    (node.net_d / "10-old.conflist").write_bytes(conflist("old"))
    manager = managed(node.conf())

    async def body() -> None:
        await manager.start()
        (node.net_d / "10-old.conflist").unlink()
        await asyncio.sleep(0.1)
        assert node.output()["clusterNetwork"].endswith("10-old.conflist")  # kept meanwhile
        (node.net_d / "20-new.conflist").write_bytes(conflist("new", portMappings=True))
        await until(lambda: node.output()["clusterNetwork"].endswith("20-new.conflist"))
        await manager.stop()

    run(body)


def test_our_own_write_does_not_loop(node: Node) -> None:
    (node.net_d / "10-p.conflist").write_bytes(conflist())
    manager = managed(node.conf())

    async def body() -> None:
        await manager.start()
        await asyncio.sleep(0.3)
        await manager.stop()

    run(body)
    assert manager.writes == 1


# --- restart, uninstall, readiness --------------------------------------------------------


def test_survives_a_restart_and_only_uninstall_removes_it(node: Node) -> None:
    (node.net_d / "10-p.conflist").write_bytes(conflist(portMappings=True))
    first = managed(node.conf())

    async def first_run() -> None:
        await first.start()
        await first.stop()

    run(first_run)
    assert node.out.exists()  # Go deletes it here (issue #1527)
    before = node.out.stat()
    second = managed(node.conf())

    async def second_run() -> None:
        await second.start()
        await second.stop()

    run(second_run)
    after = node.out.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # untouched
    assert second.writes == 0
    assert second.uninstall() is True
    assert not node.out.exists()
    assert second.uninstall() is False


def test_readiness_file_removed_takes_the_config_away(node: Node, tmp_path: Path) -> None:
    (node.net_d / "10-p.conflist").write_bytes(conflist())
    ready_dir = tmp_path / "run-flannel"
    ready_dir.mkdir()
    ready = ready_dir / "subnet.env"
    ready.write_text("FLANNEL_NETWORK=198.18.0.0/16\n")
    lost: list[bool] = []
    manager = managed(
        node.conf(readinessindicatorfile=str(ready)), on_readiness_lost=lambda: lost.append(True)
    )

    async def body() -> None:
        await manager.start()
        assert node.out.exists()
        ready.unlink()
        await until(lambda: bool(lost))
        await until(lambda: not manager.running)

    run(body)
    assert not node.out.exists()
    assert lost == [True]


def test_wait_for_file(tmp_path: Path) -> None:
    path = tmp_path / "ready"

    async def body() -> None:
        assert not await wait_for_file(str(path), timeout=0.05, interval=0.01)
        asyncio.get_running_loop().call_later(0.05, path.write_text, "")
        assert await wait_for_file(str(path), timeout=2, interval=0.01)

    run(body)


# --- non-auto mode -------------------------------------------------------------------------


def test_user_config_is_copied_under_its_own_name(node: Node, tmp_path: Path) -> None:
    user = tmp_path / "70-multus.conf"
    user.write_bytes(b'{"cniVersion":"0.4.0","name":"multus-cni-network","type":"multus-shim"}')
    manager = managed(node.conf(multusConfigFile=str(user)))
    run(manager.start)
    copied = node.net_d / "70-multus.conf"
    assert copied.read_bytes() == user.read_bytes()
    assert manager.output_path == str(copied)
    assert not manager.running
    assert manager.uninstall() is True
    assert user.exists()
