"""Integration tests run as root with real network namespaces and Debian's CNI plugins.

They are never skipped: without root, or without ``ip`` or the plugins, every test fails with a
message saying what is missing, so a green run always means the tests really ran.
"""

from __future__ import annotations

import os
import shutil

import pytest
from tests.support.netns import bare_netns_pair, netns_pair

__all__ = ["bare_netns_pair", "netns_pair"]

CNI_BIN = "/usr/lib/cni"


def _missing_prerequisites() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (they create network namespaces): run them with sudo or as root")
    if shutil.which("ip") is None:
        missing.append("the `ip` command (Debian package iproute2)")
    if not os.path.isfile(os.path.join(CNI_BIN, "bridge")):
        missing.append(f"the CNI plugins in {CNI_BIN} (Debian package containernetworking-plugins)")
    return missing


@pytest.fixture(autouse=True, scope="session")
def _require_integration_prerequisites() -> None:
    missing = _missing_prerequisites()
    if missing:
        pytest.fail(
            "integration tests need " + "; ".join(missing) + ". They are not skipped on "
            "purpose: run `make test-unit` for the tests that need none of this.",
            pytrace=False,
        )
