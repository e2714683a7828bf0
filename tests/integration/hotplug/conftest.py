"""Fixtures of the hot-plug tests: ``hot``, a ``ThickCluster`` whose daemon has ``hotPlug`` on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.support.thick import ThickCluster, thick

__all__ = ["hot", "thick"]


@pytest.fixture
def hot(thick: ThickCluster) -> Iterator[ThickCluster]:
    conf = {**thick.daemon_config(), "hotPlug": True}
    thick.daemon_config_path.write_text(json.dumps(conf, indent=2))
    yield thick
