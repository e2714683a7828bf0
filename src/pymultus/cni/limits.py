"""Bounds on untrusted input, checked before a parser sees it.

JSON and YAML decoders recurse once per nesting level: ``[[[[…`` a thousand deep exhausts the
interpreter's stack (``RecursionError``), and a megabyte of it costs real time. Every parser of
input that comes from outside (annotations, NADs, CNI configs and ``prevResult``, ``CNI_ARGS``,
socket bodies, kubeconfig files, PodResources replies, standalone files) first calls
``check_json`` (or ``check_size``), which fails with ``InvalidConfigError`` (code 7) naming the
field: "nested too deep" or "too large".

The limits are far above anything real: a CNI conflist nests about 6 levels, a Pod object about
12, and Kubernetes caps all annotations of an object at 256 KiB together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pymultus.cni.errors import CniError, InvalidConfigError

#: Deepest nesting of arrays and objects accepted anywhere (JSON and YAML).
MAX_DEPTH = 64
#: An annotation value: Kubernetes' limit for all annotations of one object together.
MAX_ANNOTATION_BYTES = 256 * 1024
#: A CNI config, conflist, NAD config, ``prevResult`` or result read back: etcd stores objects
#: up to 1.5 MiB; 4 MiB leaves room for a generated conflist and still bounds the parse time.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: ``CNI_ARGS`` (an environment variable: Linux allows 128 KiB per string).
MAX_ARGS_BYTES = 128 * 1024
#: A local file parsed as YAML or JSON (kubeconfig, standalone NAD or pod, status record).
MAX_FILE_BYTES = 4 * 1024 * 1024

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def check_size(
    data: bytes | str,
    *,
    field: str,
    max_bytes: int,
    error: type[CniError] = InvalidConfigError,
) -> None:
    """Fail when ``data`` is longer than ``max_bytes`` (characters for a ``str``)."""
    if len(data) > max_bytes:
        raise error(f"{field}: too large ({len(data)} bytes, at most {max_bytes})", field=field)


def depth(data: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` outside JSON strings (YAML flow style too)."""
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    deepest = level = 0
    for byte in brackets:
        level = level + 1 if byte in _OPEN else level - 1
        deepest = max(deepest, level)
    return deepest


def check_depth(
    data: bytes | str,
    *,
    field: str,
    max_depth: int = MAX_DEPTH,
    error: type[CniError] = InvalidConfigError,
) -> None:
    """Fail when arrays and objects in ``data`` nest deeper than ``max_depth``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return  # cannot nest deeper than it has brackets: the common case costs two counts
    found = depth(raw)
    if found > max_depth:
        raise error(f"{field}: nested too deep ({found} levels, at most {max_depth})", field=field)


def check_json(
    data: bytes | str,
    *,
    field: str,
    max_bytes: int = MAX_CONFIG_BYTES,
    max_depth: int = MAX_DEPTH,
    error: type[CniError] = InvalidConfigError,
) -> None:
    """Both bounds, size first (so a huge input is refused before it is scanned)."""
    check_size(data, field=field, max_bytes=max_bytes, error=error)
    check_depth(data, field=field, max_depth=max_depth, error=error)


#: Nodes a YAML stream may expand to once its aliases are followed (an "alias bomb" of nine
#: levels of ten aliases each is a billion nodes in a few hundred bytes).
MAX_YAML_NODES = 100_000


def load_yaml(data: bytes | str, *, field: str, max_bytes: int = MAX_FILE_BYTES) -> list[Any]:
    """Every non-empty document of a YAML stream, safely: size, nesting depth (block style too)
    and the expanded node count (aliases counted each time they are used) are bounded before
    the documents are built. Raises ``yaml.YAMLError`` for text that is not YAML."""
    import yaml  # noqa: PLC0415  (only the few callers that read YAML pay for it)

    check_json(data, field=field, max_bytes=max_bytes)  # flow style nests like JSON
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when it is there
    _check_events(yaml.parse(data, Loader=loader), field, yaml)
    return [doc for doc in yaml.load_all(data, Loader=loader) if doc is not None]


def _check_events(events: Iterable[Any], field: str, yaml: Any) -> None:
    """One pass over the parser's events (no recursion): depth and expanded size."""
    open_counts: list[int] = []  # nodes inside each collection still open
    open_anchors: list[str | None] = []
    anchored: dict[str, int] = {}
    total = 0
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            open_counts.append(1)
            open_anchors.append(event.anchor)
            if len(open_counts) > MAX_DEPTH:
                raise InvalidConfigError(f"{field}: nested too deep (more than {MAX_DEPTH} levels)")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            size, anchor = open_counts.pop(), open_anchors.pop()
        elif isinstance(event, yaml.AliasEvent):
            size, anchor = anchored.get(event.anchor, 1), None
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        else:
            continue
        if anchor is not None:
            anchored[anchor] = size
        if open_counts:
            open_counts[-1] += size
        else:
            total += size
        if total + sum(open_counts) > MAX_YAML_NODES:
            raise InvalidConfigError(
                f"{field}: too large once its aliases are expanded "
                f"(more than {MAX_YAML_NODES} nodes)"
            )
