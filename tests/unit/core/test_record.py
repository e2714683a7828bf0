"""The attachment record (``core.record``): round trip, atomic file, idempotent removal."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pymultus.cni.errors import DecodeError
from pymultus.core import record
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
