"""Hot-plug's plan: which annotation attachments a sandbox keeps, gets and loses (issue #12).

Desired = the pod's networks annotation, parsed and checked exactly as for ADD; current = the
``annotation``-origin attachments of the sandbox's record (``core.record``). Identity is
(NAD namespace, NAD name, interface name):

- an element naming its interface matches the attachment with that identity;
- the unnamed elements of a NAD are paired, in order, with that NAD's attachments whose name
  Multus chose (``net<N>``), in record order; so reordering the annotation changes nothing
  and an existing interface is never renamed;
- a new unnamed element gets the lowest free ``net<K>`` (K >= 1): not in the record (those
  being removed and half-added ones included: their DEL may fail), not requested by another
  element, not a link in the netns;
- a changed ``ips``/``mac``/``cni-args`` on a matched element changes nothing.

An explicit name that another origin's attachment (the cluster network, ``defaultNetworks``,
static delegates) holds is a bad desired set: nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymultus.cni.errors import InvalidConfigError
from pymultus.core.record import ANNOTATION, PENDING, Attachment, SandboxRecord
from pymultus.k8s.objects import NETWORKS_ANNOTATION, Pod
from pymultus.k8s.selection import NetworkSelection, check_gateways, parse_networks_annotation

Identity = tuple[str, str, str]


@dataclass(frozen=True)
class Wanted:
    """A desired element with the interface name it has or gets."""

    selection: NetworkSelection
    ifname: str

    @property
    def identity(self) -> Identity:
        return (self.selection.namespace, self.selection.name, self.ifname)

    @property
    def auto_named(self) -> bool:
        return not self.selection.interface


@dataclass(frozen=True)
class Plan:
    keep: list[Attachment]
    add: list[Wanted]  # in annotation order
    remove: list[Attachment]  # in record order


def desired(pod: Pod) -> list[NetworkSelection]:
    """The annotation as ADD parses it; ``InvalidConfigError`` naming the field when bad."""
    selections = parse_networks_annotation(
        pod.annotations.get(NETWORKS_ANNOTATION, ""), pod.namespace
    )
    check_gateways(selections)
    return selections


def plan(
    selections: Sequence[NetworkSelection],
    rec: SandboxRecord,
    link_exists: Callable[[str], bool],
) -> Plan:
    """What one pass does; raises ``InvalidConfigError`` for a desired set it cannot take."""
    current = [a for a in rec.attachments if a.origin == ANNOTATION and a.state != PENDING]
    fixed = {a.ifname for a in rec.attachments if a.origin != ANNOTATION}
    explicit = {s.interface for s in selections if s.interface}
    for i, sel in enumerate(selections):
        if sel.interface in fixed:
            raise InvalidConfigError(
                f"interface {sel.interface} of {sel.namespace}/{sel.name} is taken by a "
                "network the annotation does not manage",
                field=f"{NETWORKS_ANNOTATION}[{i}].interface",
                network=f"{sel.namespace}/{sel.name}",
            )
    matched: dict[int, Attachment] = {}  # selection index -> kept attachment
    free = list(current)
    for i, sel in enumerate(selections):
        if sel.interface:
            found = _take(free, _named(sel))
            if found is not None:
                matched[i] = found
    for i, sel in enumerate(selections):
        if not sel.interface:
            found = _take(free, _unnamed(sel, explicit))
            if found is not None:
                matched[i] = found
    # Names of attachments being removed stay taken in this pass: their DEL may fail.
    used = explicit | {a.ifname for a in rec.attachments}
    add: list[Wanted] = []
    for i, sel in enumerate(selections):
        if i in matched:
            continue
        name = sel.interface or _lowest_free(used, link_exists)
        used.add(name)
        add.append(Wanted(sel, name))
    kept = [id(a) for a in matched.values()]
    keep = [a for a in current if id(a) in kept]
    return Plan(keep=keep, add=add, remove=free)


def _named(sel: NetworkSelection) -> Callable[[Attachment], bool]:
    return lambda a: a.identity == (sel.namespace, sel.name, sel.interface)


def _unnamed(sel: NetworkSelection, explicit: set[str]) -> Callable[[Attachment], bool]:
    """A Multus-named attachment of the same NAD whose name no element asks for."""

    def match(a: Attachment) -> bool:
        same = (a.nad_namespace, a.nad_name) == (sel.namespace, sel.name)
        return a.auto_named and same and a.ifname not in explicit

    return match


def _take(items: list[Attachment], match: Callable[[Attachment], bool]) -> Attachment | None:
    for index, item in enumerate(items):
        if match(item):
            return items.pop(index)
    return None


def _lowest_free(used: set[str], in_netns: Callable[[str], bool]) -> str:
    k = 1
    while f"net{k}" in used or in_netns(f"net{k}"):
        k += 1
    return f"net{k}"
