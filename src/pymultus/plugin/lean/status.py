"""What an ADD reports of its delegates' results besides the answer: the network-status
entries and annotation (``k8s.status``), the pod UID the status write is conditioned on, and
the ``AddedInterface`` event message (``core.add.emit_added``).
"""

from __future__ import annotations

from pymultus.plugin.lean import js
from pymultus.plugin.lean.errors import Unhandled
from pymultus.plugin.lean.results import put, to_current

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    Result = dict[str, Any]

NIL_IP = "<nil>"  # Go's text of a nil net.IP (a default route without a gateway)


def status_entries(result: Result, name: str, is_default: bool) -> list[Result]:
    """``k8s.status.statuses_for_result(to_current(result), name, is_default)`` without
    device-info, each entry a dict in ``NetworkStatus`` order with its defaults left out."""
    current = to_current(result)
    interfaces = current.get("interfaces", [])
    dns = dict(current.get("dns") or {})
    gateways = [
        r.get("gw") or NIL_IP
        for r in current.get("routes", [])
        if r["dst"].partition("/")[0] in ("0.0.0.0", "::")
    ]
    if len(interfaces) == 1:
        iface = interfaces[0] if interfaces[0].get("sandbox") else {}
        ips = [ip["address"].partition("/")[0] for ip in current.get("ips", [])]
        return [_status(name, iface, ips, is_default=is_default, dns=dns, gateways=gateways)]
    return _per_interface(current, name, is_default, dns, gateways)


def _per_interface(
    current: Result, name: str, is_default: bool, dns: Result, gateways: list[str]
) -> list[Result]:
    """One entry per sandbox interface, IPs by interface index, unindexed IPs on the last."""
    gw_index = -1
    if is_default:
        gw_index = next(
            (
                ip["interface"]
                for ip in current.get("ips", [])
                if ip.get("gateway") and "interface" in ip
            ),
            -1,
        )
    ips_of: dict[int, list[str]] = {}
    order: list[int] = []
    marks: list[bool] = []
    marked = False
    for i, iface in enumerate(current.get("interfaces", [])):
        if iface.get("sandbox"):
            mark = is_default and not marked and gw_index in (i, -1)
            marked = marked or mark
            ips_of[i] = []
            order.append(i)
            marks.append(mark)
    for ip in current.get("ips", []):
        index = ip.get("interface", order[-1] if order else None)
        if index in ips_of:
            ips_of[index].append(ip["address"].partition("/")[0])
    interfaces = current["interfaces"] if order else []
    return [
        _status(name, interfaces[i], ips_of[i], is_default=mark, dns=dns, gateways=gateways)
        for i, mark in zip(order, marks, strict=True)
    ]


def _status(
    name: str, iface: Result, ips: list[str], *, is_default: bool, dns: Result, gateways: list[str]
) -> Result:
    entry: Result = {"name": name}
    put(entry, "interface", iface.get("name", ""))
    put(entry, "ips", ips)
    put(entry, "mac", iface.get("mac", ""))
    if iface.get("mtu", 0):
        entry["mtu"] = iface["mtu"]
    if is_default:
        entry["default"] = True
    entry["dns"] = dict(dns)
    put(entry, "gateway", list(gateways))
    return entry


def render_network_status(entries: Sequence[Result]) -> str:
    """``k8s.status.render_network_status``: each entry indented by 4 spaces, joined with
    "," inside [ ]."""
    return "[" + ",".join(js.marshal_indent(e).decode() for e in entries) + "]"


def status_uid(pod: dict[str, Any]) -> str:
    """The pod's ``metadata.uid`` as the status write uses it (``Pod.from_dict``);
    ``Unhandled`` for a pod object the lean path does not read (call before any delegate)."""
    meta = pod.get("metadata") or {}
    uid = meta.get("uid", "") if isinstance(meta, dict) else None
    if not isinstance(uid, str):
        raise Unhandled("a pod whose metadata.uid is not a string")
    return uid


def added_message(result: Result, ifname: str, name: str) -> str | None:
    """``core.add.emit_added``'s ``AddedInterface`` message; None for a result without
    interfaces or IPs (no event)."""
    current = to_current(result)
    if not (current.get("interfaces") or current.get("ips")):
        return None
    ips = " ".join(ip.get("address", "") for ip in current.get("ips", []))
    return f"Add {ifname} [{ips}] from {name}"
