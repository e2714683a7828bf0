"""network-status rebuilt from Go Multus's own delegate results must be byte-identical.

Every golden case with a ``network-status.txt`` is replayed: the delegates (names, order, the
master first) come from the case's ``delegate-cache.json``, each delegate's result from its libcni
cache file in ``results/``, and the entries go through ``statuses_for_result`` and
``render_network_status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.golden import golden_dir

from pymultus.cni.convert import parse_result, to_current
from pymultus.cni.result import Result
from pymultus.k8s.status import (
    parse_network_status,
    render_network_status,
    statuses_for_result,
)

_ROOT = Path(__file__).resolve().parents[3]


def _golden_dir() -> Path:
    return golden_dir()


def _cases() -> list[Any]:
    root = _golden_dir()
    found = sorted(p.parent for p in root.rglob("network-status.txt"))
    return [pytest.param(case, id=str(case.relative_to(root))) for case in found]


def _delegate_result(
    case: Path, index: int, delegate: dict[str, Any], env: dict[str, str]
) -> Result:
    """The in-memory result Go Multus built this delegate's status entry from.

    That is the libcni cache's ``result``, except where Multus's default-route step (§5.3) later
    rewrote the cache: it strips the master's default routes there and appends the requested
    gateway to the requesting delegate's. The status was built before that step, so the master's
    result is taken from ADD's stdout (the thin plugin prints it unchanged) and the routes
    Multus appended are dropped again.
    """
    ifname = env["CNI_IFNAME"] if index == 0 else delegate.get("ifnameRequest") or f"net{index}"
    suffix = f"-{env['CNI_CONTAINERID']}-{ifname}"
    [cache_file] = [p for p in (case / "results").iterdir() if p.name.endswith(suffix)]
    raw = json.dumps(json.loads(cache_file.read_bytes())["result"]).encode()
    rewritten = any(
        "default-route" in d for d in json.loads((case / "delegate-cache.json").read_bytes())
    )
    if index == 0 and rewritten:
        raw = (case / "add.stdout").read_bytes()
    result = to_current(parse_result(raw))
    requested = delegate.get("default-route") or []
    result.routes = [r for r in result.routes if r.gw not in requested]
    return result


@pytest.mark.parametrize("case", _cases())
def test_status_is_byte_identical_to_go(case: Path) -> None:
    env = json.loads((case / "env.json").read_bytes())
    delegates = json.loads((case / "delegate-cache.json").read_bytes())
    entries = []
    for index, delegate in enumerate(delegates):
        result = _delegate_result(case, index, delegate, env)
        entries += statuses_for_result(result, delegate["Name"], index == 0)

    assert render_network_status(entries) == (case / "network-status.txt").read_text()


@pytest.mark.parametrize("case", _cases())
def test_go_status_parses_and_renders_back_unchanged(case: Path) -> None:
    text = (case / "network-status.txt").read_text()

    parsed = parse_network_status(text)

    assert render_network_status(parsed) == text
    assert [e.default for e in parsed].count(True) == 1
