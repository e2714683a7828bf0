"""Fixtures of the thick-mode end-to-end tests: ``thick`` (see ``tests.support.thick``)."""

from __future__ import annotations

from tests.support.thick import thick

__all__ = ["thick"]
