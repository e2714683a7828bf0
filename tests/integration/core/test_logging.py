"""Thin plugin logging (row 51): ``logLevel``, ``logFile``, ``logToStderr``, Go's line format,
and one verbose line per delegate ADD and DEL naming the container, the pod and the network."""

from __future__ import annotations

import re

import pytest
from tests.support.multus import NETWORKS, Cluster

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[(panic|error|verbose|debug)\] .+")


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_verbose_log_file_has_a_line_per_delegate(cluster: Cluster) -> None:
    log_file = cluster.tmp / "logs" / "multus.log"  # the directory is created
    conf = cluster.multus_conf(logLevel="verbose", logFile=str(log_file), logToStderr=False)
    cluster.put_nad("default", "br-a", cluster.bridge_nad("br-a", "pmbra", 1))
    pod = cluster.put_pod("default", "logged", {NETWORKS: "br-a"})

    add = cluster.add(pod, conf).check_ok()
    cluster.delete(pod, conf).check_ok()

    assert add.stderr == b""
    found = lines(log_file.read_text())
    assert found and all(LINE.fullmatch(line) for line in found), found
    who = f"containerID={pod.container_id} pod=default/logged"  # fields on every line
    expected = [
        f"[verbose] ADD of network pm-cluster (pm-cluster) on eth0 succeeded command=ADD {who}",
        f"[verbose] ADD of network br-a (default/br-a) on net1 succeeded command=ADD {who}",
        f"[verbose] DEL of network br-a (default/br-a) on net1 succeeded command=DEL {who}",
        f"[verbose] DEL of network pm-cluster (pm-cluster) on eth0 succeeded command=DEL {who}",
    ]
    assert [line.split(" ", 1)[1] for line in found] == expected


@pytest.mark.parametrize(
    ("level", "shown"), [(None, False), ("panic", False), ("error", True), ("ERROR", True)]
)
def test_errors_reach_stderr_only_from_level_error(
    cluster: Cluster, level: str | None, shown: bool
) -> None:
    pod = cluster.put_pod("default", "bad", {NETWORKS: "no-such-nad"})

    out = cluster.add(pod, cluster.multus_conf(logLevel=level))

    assert out.error()["code"] == 7
    if not shown:
        assert out.stderr == b""  # Go's default level, panic, is silent
        return
    [line] = lines(out.stderr.decode())
    assert LINE.fullmatch(line) and "[error] ADD failed: Multus: [default/bad/" in line, line


def test_unknown_level_is_reported_and_ignored(cluster: Cluster) -> None:
    pod = cluster.put_pod("default", "odd")

    out = cluster.add(pod, cluster.multus_conf(logLevel="chatty")).check_ok()

    assert out.stderr.decode() == "multus logging: cannot set logging level to chatty\n"
    cluster.delete(pod).check_ok()
