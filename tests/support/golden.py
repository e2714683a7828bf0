"""Where the golden vectors captured from Go Multus live (``shared/reference/golden``).

CI clones the project next to ``shared/``; ``PYMULTUS_GOLDEN`` points elsewhere. A missing
folder fails the test that needs it: a byte-exact test must never pass by being skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]


def find_golden_dir() -> Path | None:
    for candidate in (
        os.environ.get("PYMULTUS_GOLDEN", ""),
        str(_ROOT.parent / "shared" / "reference" / "golden"),
        "/work/shared/reference/golden",
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def golden_dir() -> Path:
    found = find_golden_dir()
    if found is None:
        pytest.fail("golden vectors not found: set PYMULTUS_GOLDEN to shared/reference/golden")
    return found
