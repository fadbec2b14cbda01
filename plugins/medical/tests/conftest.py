"""Shared fixtures: the real PneumoniaMNIST file, when the machine has it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def pneumonia_npz() -> Path:
    """The real pneumoniamnist.npz under $AIGC_TEST_DATA (default <repo>/../shared/data)."""
    root = Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))
    path = root / "pneumoniamnist" / "pneumoniamnist.npz"
    if not path.is_file():
        pytest.skip(f"real data absent: {path} not found (set AIGC_TEST_DATA to its folder)")
    return path
