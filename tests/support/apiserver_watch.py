"""Selectors and watch streams of the stand-in API server.

Field and label selectors as the API parses them (unsupported field labels are a 400), and the
event stream of one watch: the starting state, later changes filtered the way the watch cache
does it (an object moving into the selection is ADDED, out of it DELETED), bookmarks on
request, the ``timeoutSeconds`` deadline, and a 410 Expired ERROR event for a resourceVersion
older than the compaction.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.apiserver_store import ApiStatus, Change, Kind, Obj, Store

# --- selectors ---------------------------------------------------------------------------------


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _field_terms(kind: Kind, fsel: str) -> list[tuple[str, str, bool]]:
    terms = []
    for raw in filter(None, fsel.split(",")):
        neg = "!=" in raw
        key, _, value = raw.partition("!=" if neg else "=")
        key, value = key.strip(), value.lstrip("=").strip()
        if key not in kind.field_labels:
            raise ApiStatus(400, "BadRequest", f"field label not supported: {key}")
        terms.append((key, value, neg))
    return terms


_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _label_terms(lsel: str) -> list[tuple[str, str, set[str]]]:
    terms: list[tuple[str, str, set[str]]] = []
    for raw in filter(None, (t.strip() for t in re.split(r",(?![^()]*\))", lsel))):
        if m := _SET_RE.match(raw):
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            terms.append((m.group(1), m.group(2), values))
        elif "!=" in raw:
            k, _, v = raw.partition("!=")
            terms.append((k.strip(), "notin", {v.strip()}))
        elif "=" in raw:
            k, _, v = raw.partition("=")
            terms.append((k.strip(), "in", {v.lstrip("=").strip()}))
        elif raw.startswith("!"):
            terms.append((raw[1:].strip(), "absent", set()))
        else:
            terms.append((raw, "exists", set()))
    return terms


def _label_ok(labels: dict[str, str], key: str, op: str, values: set[str]) -> bool:
    if op == "exists":
        return key in labels
    if op == "absent":
        return key not in labels
    if op == "in":
        return key in labels and labels[key] in values
    return labels.get(key) not in values  # notin / != match objects without the label too


def selector(kind: Kind, fsel: str, lsel: str) -> Callable[[Obj], bool]:
    """A predicate for the selectors; bad selectors fail now, with the API's 400."""
    fterms = _field_terms(kind, fsel)
    lterms = _label_terms(lsel)

    def match(obj: Obj) -> bool:
        for key, value, neg in fterms:
            if (_field_value(obj, key) == value) == neg:
                return False
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(_label_ok(labels, *t) for t in lterms)

    return match


def watch_event(
    change: Change, ns: str | None, match: Callable[[Obj], bool]
) -> tuple[str, Obj] | None:
    """How a change shows in a filtered watch: moving into the selection is ADDED, out DELETED."""
    if ns is not None and change.obj["metadata"].get("namespace", "") != ns:
        return None
    now_in = match(change.obj)
    was_in = change.old is not None and match(change.old)
    if change.type == "MODIFIED":
        if now_in and not was_in:
            return "ADDED", change.obj
        if was_in and not now_in:
            return "DELETED", change.obj
    if change.type == "DELETED":
        return ("DELETED", change.obj) if was_in else None
    return (change.type, change.obj) if now_in else None


def list_items(kind: Kind, items: Iterable[Obj]) -> list[Obj]:
    """List items as the API sends them: built-in types without kind/apiVersion."""
    if kind.typed_list_items:
        return list(items)
    return [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]


@dataclass(frozen=True)
class WatchSpec:
    kind: Kind
    ns: str | None
    rv: str
    match: Callable[[Obj], bool]
    deadline: float
    bookmarks: bool


def watch_events(store: Store, stopping: threading.Event, w: WatchSpec) -> Iterator[Obj]:
    """The events of one watch, until the deadline, a stop, or a 410.

    The starting point is taken now, before the caller sends the headers, so a client that
    got the response has a watch that sees every later write.
    """
    with store.cond:
        if w.rv in ("", "0"):
            # No version, or "any": the current state as ADDED events, then changes.
            last = store.rv
            items, _ = store.select(w.kind, w.ns, w.match)
            initial = [{"type": "ADDED", "object": o} for o in items]
        else:
            last, initial = int(w.rv), []
        seen_bookmarks = store.bookmarks
    return itertools.chain(initial, _follow(store, stopping, w, last, seen_bookmarks))


def _follow(
    store: Store, stopping: threading.Event, w: WatchSpec, last: int, seen_bookmarks: int
) -> Iterator[Obj]:
    while not stopping.is_set():
        with store.cond:
            if last < store.compacted_rv:
                yield expired(last, store.compacted_rv)
                return
            changes = store.changes_after(last)
            if not changes and seen_bookmarks == store.bookmarks:
                remaining = w.deadline - time.monotonic()
                if remaining <= 0:
                    return
                store.cond.wait(timeout=min(remaining, 0.5))
                continue
            send_bookmark = w.bookmarks and seen_bookmarks != store.bookmarks
            seen_bookmarks, now_rv = store.bookmarks, store.rv
        for change in changes:
            last = change.rv
            if change.kind is w.kind and (shown := watch_event(change, w.ns, w.match)):
                yield {"type": shown[0], "object": shown[1]}
        if send_bookmark:
            mark = {"resourceVersion": str(now_rv), "creationTimestamp": None}
            obj = {"kind": w.kind.kind, "apiVersion": w.kind.api_version, "metadata": mark}
            yield {"type": "BOOKMARK", "object": obj}


def expired(rv: int, oldest: int) -> Obj:
    status = ApiStatus(410, "Expired", f"too old resource version: {rv} ({oldest})")
    return {"type": "ERROR", "object": status.body()}
