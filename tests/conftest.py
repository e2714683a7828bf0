"""Every test run refuses commands that ``make deps`` does not install (``deps/commands.tsv``)."""

from __future__ import annotations

import sys

from tests.support.commands import guard, registry

sys.addaudithook(guard(registry()))
