"""Fixtures of the acceptance-audit regression tests: ``thick`` (see ``tests.support.thick``)."""

from __future__ import annotations

from tests.support.thick import thick

__all__ = ["thick"]
