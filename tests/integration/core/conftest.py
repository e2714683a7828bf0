"""Fixtures of the Multus core's integration tests (see ``tests.support.multus``)."""

from __future__ import annotations

from tests.support.multus import cluster

__all__ = ["cluster"]
