"""libcni's result cache: the exact bytes of the golden files, atomic writes, tolerant scans."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pymultus.cni import cache
from pymultus.cni.convert import parse_result, result_version
from pymultus.cni.errors import DecodeError, InvalidConfigError

GOLDEN = Path("/work/shared/reference/golden")
GOLDEN_FILES = sorted(GOLDEN.glob("**/results/*"))
CID = "0000000000000000000000000000000000000000000000000000000000000001"
RESULT_100 = (
    b'{"cniVersion":"1.0.0","interfaces":[{"name":"net1","mac":"02:00:00:00:00:01",'
    b'"sandbox":"/var/run/netns/x"}],"ips":[{"interface":0,"address":"198.18.1.2/24",'
    b'"gateway":"198.18.1.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}'
)


def entry(**kw: object) -> cache.CacheEntry:
    fields: dict[str, object] = {
        "container_id": "cid-1",
        "ifname": "net1",
        "network_name": "br-a",
        "config": b'{"type":"bridge"}',
    }
    fields.update(kw)
    return cache.CacheEntry(**fields)  # type: ignore[arg-type]


def test_golden_files_exist() -> None:
    assert len(GOLDEN_FILES) >= 20


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: str(p.relative_to(GOLDEN)))
def test_golden_file_reencodes_to_the_same_bytes(path: Path) -> None:
    data = path.read_bytes()
    # Files whose routes Go Multus edited went through a Go map: every key sorted.
    rewritten = not data.startswith(b'{"kind":')
    assert cache.encode(cache.decode(data), sort_keys=rewritten) == data


def test_golden_entry_fields() -> None:
    path = GOLDEN / "01-thin-comma-annotation/results" / f"br-a-{CID}-net1"
    got = cache.decode(path.read_bytes())
    assert (got.container_id, got.ifname, got.network_name) == (CID, "net1", "br-a")
    assert got.netns == "/var/run/netns/golden-01"
    assert got.config.startswith(b'{"cniVersion":"1.0.0","name":"br-a","type":"bridge"')
    assert got.cni_args[0] == ("IgnoreUnknown", "true")
    assert len(got.cni_args) == 10
    assert got.capability_args == {}
    typed = got.typed_result()
    assert typed is not None
    assert result_version(typed) == "1.0.0"
    assert json.loads(got.result)["ips"][0]["address"] == "198.18.1.2/24"


def test_golden_capability_args_are_read() -> None:
    path = next((GOLDEN / "02-thin-json-static-ips-mac-default-route/results").glob("static-c-*"))
    got = cache.decode(path.read_bytes())
    assert got.capability_args == {"ips": ["198.18.3.7/24"], "mac": "c2:ac:c0:00:03:07"}
    assert got.cni_args[-2:] == (("MAC", "c2:ac:c0:00:03:07"), ("IP", "198.18.3.7/24"))


def test_for_result_writes_libcni_order_with_sorted_maps() -> None:
    result = parse_result(RESULT_100)
    got = cache.CacheEntry.for_result(
        result,
        container_id="cid-1",
        ifname="net1",
        network_name="br-a",
        config=b"{}",
        netns="/var/run/netns/x",
        cni_args=(("K", "v"),),
        capability_args={"mac": "02:00:00:00:00:02", "ips": ["198.18.1.9/24"]},
    )
    assert cache.encode(got) == (
        b'{"kind":"cniCacheV1","containerId":"cid-1","config":"e30=","ifName":"net1",'
        b'"networkName":"br-a","netns":"/var/run/netns/x","cniArgs":[["K","v"]],'
        b'"capabilityArgs":{"ips":["198.18.1.9/24"],"mac":"02:00:00:00:00:02"},'
        b'"result":{"cniVersion":"1.0.0","interfaces":[{"mac":"02:00:00:00:00:01",'
        b'"name":"net1","sandbox":"/var/run/netns/x"}],"ips":[{"address":"198.18.1.2/24",'
        b'"gateway":"198.18.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}}'
    )


def test_empty_optional_fields_are_omitted() -> None:
    assert cache.encode(entry()) == (
        b'{"kind":"cniCacheV1","containerId":"cid-1","config":"eyJ0eXBlIjoiYnJpZGdlIn0=",'
        b'"ifName":"net1","networkName":"br-a"}'
    )


def test_write_is_atomic_private_and_readable_back(tmp_path: Path) -> None:
    first = entry(result=b'{"cniVersion":"0.4.0"}', cni_args=(("A", "1"),))
    path = cache.write(str(tmp_path), first)
    assert path == str(tmp_path / "results" / "br-a-cid-1-net1")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "results").st_mode) == 0o700
    assert cache.read(str(tmp_path), "br-a", "cid-1", "net1") == first
    second = entry(netns="/var/run/netns/y")
    cache.write(str(tmp_path), second)
    assert cache.read(str(tmp_path), "br-a", "cid-1", "net1") == second
    assert os.listdir(tmp_path / "results") == ["br-a-cid-1-net1"]  # no temp file left


def test_read_missing_is_none_and_bad_files_are_decode_errors(tmp_path: Path) -> None:
    assert cache.read(str(tmp_path), "br-a", "cid-1", "net1") is None
    results = tmp_path / "results"
    results.mkdir()
    (results / "br-a-cid-1-net1").write_bytes(b"not json")
    with pytest.raises(DecodeError):
        cache.read(str(tmp_path), "br-a", "cid-1", "net1")
    (results / "br-a-cid-1-net1").write_bytes(b'{"kind":"cniCacheV2","containerId":"cid-1"}')
    with pytest.raises(DecodeError, match="wrong kind"):
        cache.read(str(tmp_path), "br-a", "cid-1", "net1")
    (results / "br-a-cid-1-net1").write_bytes(b'{"kind":"cniCacheV1","config":"***"}')
    with pytest.raises(DecodeError):
        cache.read(str(tmp_path), "br-a", "cid-1", "net1")


def test_read_result_handles_v1_entries_and_legacy_bare_results(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry(result=b'{"cniVersion":"0.4.0","ips":[]}'))
    assert cache.read_result(str(tmp_path), "br-a", "cid-1", "net1") == (
        b'{"cniVersion":"0.4.0","ips":[]}'
    )
    legacy = tmp_path / "results" / "br-a-cid-2-net1"
    legacy.write_bytes(b'{"cniVersion":"0.3.1","ips":[]}')
    assert cache.read_result(str(tmp_path), "br-a", "cid-2", "net1") == legacy.read_bytes()
    assert cache.read_result(str(tmp_path), "br-a", "cid-3", "net1") is None
    cache.write(str(tmp_path), entry(container_id="cid-4"))  # an entry without a result
    assert cache.read_result(str(tmp_path), "br-a", "cid-4", "net1") is None


def test_fields_are_read_ignoring_case_as_go_does(tmp_path: Path) -> None:
    data = b'{"KIND":"cniCacheV1","ContainerID":"c","ifname":"eth0","NetworkName":"n"}'
    got = cache.decode(data)
    assert (got.container_id, got.ifname, got.network_name) == ("c", "eth0", "n")


def test_delete_is_idempotent(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry())
    cache.delete(str(tmp_path), "br-a", "cid-1", "net1")
    assert cache.read(str(tmp_path), "br-a", "cid-1", "net1") is None
    cache.delete(str(tmp_path), "br-a", "cid-1", "net1")
    cache.delete(str(tmp_path / "never"), "br-a", "cid-1", "net1")


@pytest.mark.parametrize(
    ("network", "cid", "ifname", "field"),
    [
        ("", "c", "eth0", "name"),
        ("n", "", "eth0", "containerID"),
        ("n", "c", "", "ifname"),
        ("../n", "c", "eth0", "name"),
        ("n", "c", "a/b", "ifname"),
    ],
)
def test_cache_path_refuses_empty_or_escaping_names(
    network: str, cid: str, ifname: str, field: str
) -> None:
    with pytest.raises(InvalidConfigError) as info:
        cache.cache_path("/var/lib/cni", network, cid, ifname)
    assert info.value.field == field


def test_list_attachments_filters_sorts_and_skips_what_it_cannot_read(tmp_path: Path) -> None:
    assert cache.list_attachments(str(tmp_path)) == []
    for net, cid, ifname in [("b", "c2", "eth0"), ("a", "c1", "net1"), ("b", "c1", "eth0")]:
        cache.write(str(tmp_path), entry(network_name=net, container_id=cid, ifname=ifname))
    results = tmp_path / "results"
    (results / "garbage").write_bytes(b"{")
    (results / "b-legacy-eth0").write_bytes(b'{"cniVersion":"0.3.1"}')
    (results / "b-noif-x").write_bytes(b'{"kind":"cniCacheV1","networkName":"b"}')
    (results / ".tmp-123").write_bytes(cache.encode(entry(network_name="b")))
    (results / "subdir").mkdir()
    every = cache.list_attachments(str(tmp_path))
    assert [(e.network_name, e.container_id) for e in every] == [
        ("a", "c1"),
        ("b", "c1"),
        ("b", "c2"),
    ]
    assert [e.container_id for e in cache.list_attachments(str(tmp_path), "b")] == ["c1", "c2"]
    only = cache.list_attachments(str(tmp_path), container_id="c1")
    assert [e.network_name for e in only] == ["a", "b"]


def test_list_attachments_reads_only_files_whose_name_can_match(tmp_path: Path) -> None:
    """libcni names every entry ``<network>-<id>-<ifname>``: a filtered listing (every DEL
    makes one) must not read the other pods' files, whose count grows with the node."""
    cache.write(str(tmp_path), entry(network_name="b", container_id="c1", ifname="eth0"))
    results = tmp_path / "results"
    # The same entry under a name that cannot belong to container c1 or network b.
    copy = (results / "b-c1-eth0").read_bytes()
    (results / "x-c9-eth0").write_bytes(copy)
    assert len(cache.list_attachments(str(tmp_path))) == 2
    assert [e.container_id for e in cache.list_attachments(str(tmp_path), "b")] == ["c1"]
    assert len(cache.list_attachments(str(tmp_path), container_id="c1")) == 1
    assert cache.list_attachments(str(tmp_path), "x", container_id="c1") == []
