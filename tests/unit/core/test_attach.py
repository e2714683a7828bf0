"""Hot-plug's plan (``core.attach``): identity, names of unnamed elements, what is invalid."""

from __future__ import annotations

import msgspec
import pytest

from pymultus.cni.errors import InvalidConfigError
from pymultus.core.attach import plan
from pymultus.core.record import (
    ANNOTATION,
    CLUSTER,
    DEFAULT_NETWORKS,
    PENDING,
    Attachment,
    SandboxRecord,
)
from pymultus.k8s.selection import parse_networks_annotation

NS = "default"


def attached(nad: str, ifname: str, *, auto: bool = True, origin: str = ANNOTATION) -> Attachment:
    ns, name = (NS, nad) if origin == ANNOTATION else ("", "")
    return Attachment(
        network=f"{NS}/{nad}",
        ifname=ifname,
        origin=origin,
        config=b"{}",
        nad_namespace=ns,
        nad_name=name,
        auto_named=auto,
    )


def sandbox(*attachments: Attachment) -> SandboxRecord:
    cluster = Attachment(network="cluster", ifname="eth0", origin=CLUSTER, config=b"{}")
    return SandboxRecord(container_id="c1", netns="/x", attachments=[cluster, *attachments])


def run(annotation: str, rec: SandboxRecord, links: frozenset[str] = frozenset()) -> tuple:
    the_plan = plan(parse_networks_annotation(annotation, NS), rec, lambda n: n in links)
    return (
        [a.ifname for a in the_plan.keep],
        [(w.selection.name, w.ifname) for w in the_plan.add],
        [a.ifname for a in the_plan.remove],
    )


def test_nothing_changes_when_the_selection_is_the_record() -> None:
    rec = sandbox(attached("a", "net1"), attached("b", "net2"))
    assert run("a,b", rec) == (["net1", "net2"], [], [])


def test_reorder_changes_nothing() -> None:
    rec = sandbox(attached("a", "net1"), attached("b", "net2"))
    assert run("b,a", rec) == (["net1", "net2"], [], [])


def test_new_unnamed_gets_the_lowest_free_name_skipping_links_and_requests() -> None:
    rec = sandbox(attached("a", "net1"))
    assert run("a,b,c@net3,d", rec, frozenset({"net2"})) == (
        ["net1"],
        [("b", "net4"), ("c", "net3"), ("d", "net5")],
        [],
    )


def test_removed_names_stay_taken_in_their_pass() -> None:
    rec = sandbox(attached("a", "net1"))
    assert run("b", rec) == ([], [("b", "net2")], ["net1"])


def test_unnamed_pairs_per_nad_in_record_order() -> None:
    rec = sandbox(attached("a", "net1"), attached("a", "net2"), attached("b", "net3"))
    assert run("b,a", rec) == (["net1", "net3"], [], ["net2"])
    assert run("a,a,a", rec) == (["net1", "net2"], [("a", "net4")], ["net3"])


def test_named_element_matches_by_identity_only() -> None:
    rec = sandbox(attached("a", "blue", auto=False))
    assert run("a@blue", rec) == (["blue"], [], [])
    assert run("b@blue", rec) == ([], [("b", "blue")], ["blue"])
    assert run("a@green", rec) == ([], [("a", "green")], ["blue"])


def test_an_unnamed_attachment_may_be_named_explicitly_later() -> None:
    rec = sandbox(attached("a", "net1"))
    assert run("a@net1", rec) == (["net1"], [], [])


def test_other_origins_are_never_touched() -> None:
    rec = sandbox(attached("dn", "net1", origin=DEFAULT_NETWORKS), attached("a", "net2"))
    assert run("", rec) == ([], [], ["net2"])


@pytest.mark.parametrize("annotation", ["a@eth0", "a@net1"])
def test_a_name_held_by_another_origin_is_refused(annotation: str) -> None:
    rec = sandbox(attached("dn", "net1", origin=DEFAULT_NETWORKS))
    with pytest.raises(InvalidConfigError) as err:
        run(annotation, rec)
    assert err.value.field == "k8s.v1.cni.cncf.io/networks[0].interface"


def test_a_half_added_attachment_is_not_kept_and_its_name_stays_taken() -> None:
    half = msgspec.structs.replace(attached("a", "net1"), state=PENDING)
    assert run("a", sandbox(half)) == ([], [("a", "net2")], [])
