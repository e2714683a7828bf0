"""The attachment record (``core.record``): round trip, atomic file, idempotent removal."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pymultus.cni.errors import DecodeError
from pymultus.core import record
from pymultus.core.delegate import Delegate
from pymultus.core.reconcile import delegates_of
from pymultus.core.record import Attachment, SandboxRecord


def sample(cid: str = "c0ffee01") -> SandboxRecord:
    return SandboxRecord(
        container_id=cid,
        netns="/var/run/netns/x",
        pod_namespace="default",
        pod_name="web",
        pod_uid="u1",
        cni_args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
        cni_path=["/opt/cni/bin"],
        multus_conf=b'{"name":"multus"}',
        attachments=[
            Attachment(
                network="default/a",
                ifname="net1",
                origin=record.ANNOTATION,
                config=b'{"type":"bridge"}',
                nad_namespace="default",
                nad_name="a",
                auto_named=True,
                runtime_args=[("K8S_POD_NAME", "web")],
                capability_args={"mac": "02:00:00:00:00:01"},
                result={"cniVersion": "1.0.0"},
            )
        ],
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    record.save(str(tmp_path), sample())
    assert record.load(str(tmp_path), "c0ffee01") == sample()
    mode = os.stat(record.record_path(str(tmp_path), "c0ffee01")).st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_missing_is_none_and_remove_is_idempotent(tmp_path: Path) -> None:
    assert record.load(str(tmp_path), "c0ffee01") is None
    record.save(str(tmp_path), sample())
    record.remove(str(tmp_path), "c0ffee01")
    record.remove(str(tmp_path), "c0ffee01")
    assert record.load(str(tmp_path), "c0ffee01") is None


def test_corrupt_record_is_a_decode_error_and_skipped_by_load_all(tmp_path: Path) -> None:
    record.save(str(tmp_path), sample("c0ffee02"))
    Path(record.record_path(str(tmp_path), "c0ffee01")).write_bytes(b"{not json")
    with pytest.raises(DecodeError):
        record.load(str(tmp_path), "c0ffee01")
    assert [r.container_id for r in record.load_all(str(tmp_path))] == ["c0ffee02"]


def test_cached_result_of_any_version_becomes_1x() -> None:
    old = b'{"cniVersion":"0.3.1","ips":[{"version":"4","address":"198.18.0.2/24"}]}'
    converted = record.result_of_cache(old)
    assert converted is not None
    assert converted["cniVersion"] == "1.0.0"
    assert converted["ips"][0]["address"] == "198.18.0.2/24"
    assert record.result_of_cache(b"") is None
    assert record.result_of_cache(b"garbage") is None


def test_delegate_cache_follows_the_record_and_keeps_what_add_cached() -> None:
    cluster = Delegate(raw=b'{"type":"bridge"}', name="cluster", is_list=False)
    cold_a = Delegate(raw=b"{}", name="default/a", is_list=False, device_id="0000:01:00.1")
    cold_b = Delegate(raw=b"{}", name="default/b", is_list=False, mac_request="02:00:00:00:00:02")
    rec = SandboxRecord(
        container_id="c1",
        netns="/x",
        attachments=[
            Attachment(network="cluster", ifname="eth0", origin=record.CLUSTER, config=b"{}"),
            # net1 (default/a) was hot-unplugged; net3 (default/c) hot-plugged
            Attachment(network="default/b", ifname="net2", origin=record.ANNOTATION, config=b"{}"),
            Attachment(
                network="default/c", ifname="net3", origin=record.ANNOTATION, config=b'{"c":1}'
            ),
        ],
    )
    out = delegates_of(rec, [cluster, cold_a, cold_b])
    assert [(d.name, d.ifname_request) for d in out] == [
        ("cluster", ""),
        ("default/b", "net2"),
        ("default/c", "net3"),
    ]
    assert out[0] is cluster
    assert out[1].mac_request == "02:00:00:00:00:02"
    assert out[2].raw == b'{"c":1}'
