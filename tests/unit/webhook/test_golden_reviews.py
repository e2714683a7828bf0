"""Golden AdmissionReviews over real TLS: every rule, allowed, denied and warned.

``golden/<case>.request.json`` is what the API server sends, ``<case>.response.json`` the
exact answer. The webhook runs with namespace isolation on (``globalNamespaces: shared,
default``) and the stand-in API server holds team-a/macvlan-a, team-a/bridge-a and
shared/common. ``PYMULTUS_WRITE_GOLDEN=1`` writes missing answers and fails, so a new case
is always read by a person before it counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.unit.webhook.conftest import Running

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name.removesuffix(".request.json") for p in GOLDEN.glob("*.request.json"))


def test_every_kind_of_verdict_has_cases() -> None:
    prefixes = {case.rsplit("-", 2)[0] for case in CASES}
    for kind in ("nad", "pod"):
        for verdict in ("allowed", "denied"):
            assert any(c.startswith(f"{kind}-{verdict}-") for c in CASES), (kind, verdict)
    assert any(c.startswith("pod-warned-") for c in CASES), prefixes


@pytest.mark.parametrize("case", CASES)
def test_golden_review(webhook: Running, case: str) -> None:
    request = json.loads((GOLDEN / f"{case}.request.json").read_text())
    status, body = webhook.post(json.dumps(request).encode())
    assert status == 200, body
    answer = json.loads(body)
    expected_file = GOLDEN / f"{case}.response.json"
    if not expected_file.exists():
        if os.environ.get("PYMULTUS_WRITE_GOLDEN") == "1":
            expected_file.write_text(json.dumps(answer, indent=2) + "\n")
        pytest.fail(f"no golden answer for {case} (PYMULTUS_WRITE_GOLDEN=1 writes one)")
    assert answer == json.loads(expected_file.read_text())
    assert answer["response"]["uid"] == request["request"]["uid"]
    verdict = case.split("-")[1]
    assert answer["response"]["allowed"] is (verdict != "denied")
    assert bool(answer["response"].get("warnings")) is (verdict == "warned")
