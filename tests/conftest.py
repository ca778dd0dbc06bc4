"""Shared test fixtures. Tests run on CPU in float32 unless they say otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "fixtures"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture
def golden_dir():
    """Folder of the golden fixtures copied from shared/golden/public (never edited)."""
    return GOLDEN
