"""Shared fixtures: the real PneumoniaMNIST file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def pytest_configure(config: pytest.Config) -> None:
    # registered here too, so the plugin's tests also run outside the aigc-run repository
    config.addinivalue_line("markers", "realdata(*paths): reads these files under the data")


@pytest.fixture(scope="session")
def pneumonia_npz() -> Path:
    """The real pneumoniamnist.npz under $AIGC_TEST_DATA (default <repo>/../shared/data).

    A test using it is marked ``realdata("pneumoniamnist/pneumoniamnist.npz")``: the
    repository's conftest.py skips it when the file is missing, or fails it under CI.
    """
    root = Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))
    return root / "pneumoniamnist" / "pneumoniamnist.npz"
