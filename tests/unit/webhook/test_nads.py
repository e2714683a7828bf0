"""NADs found are remembered for a while; NADs not found never are."""

from __future__ import annotations

from pymultus.webhook.nads import RememberFound


class Counting:
    def __init__(self, existing: set[tuple[str, str]]) -> None:
        self.existing = existing
        self.calls: list[tuple[str, str]] = []

    def get_nad(self, namespace: str, name: str) -> object | None:
        self.calls.append((namespace, name))
        return {"name": name} if (namespace, name) in self.existing else None


def test_found_is_remembered_until_the_ttl_ends() -> None:
    now = [100.0]
    api = Counting({("ns", "a")})
    nads = RememberFound(api, ttl=30.0, clock=lambda: now[0])
    assert nads.get_nad("ns", "a") is not None
    now[0] += 29.0
    assert nads.get_nad("ns", "a") is not None
    assert api.calls == [("ns", "a")]
    now[0] += 2.0
    assert nads.get_nad("ns", "a") is not None
    assert api.calls == [("ns", "a")] * 2


def test_not_found_is_asked_again_and_seen_once_created() -> None:
    api = Counting(set())
    nads = RememberFound(api)
    assert nads.get_nad("ns", "b") is None
    api.existing.add(("ns", "b"))
    assert nads.get_nad("ns", "b") is not None
    assert api.calls == [("ns", "b")] * 2
