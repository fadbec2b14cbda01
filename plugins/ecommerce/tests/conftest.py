from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def pytest_configure(config: pytest.Config) -> None:
    # registered here too, so the plugin's tests also run outside the aigc-run repository
    config.addinivalue_line("markers", "slow: real data or real training (seconds or more)")
    # In the repository, its conftest.py skips a realdata test whose files are missing, or
    # fails it under CI.
    config.addinivalue_line("markers", "realdata(*paths): reads these files under shared_data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder: AIGC_TEST_DATA, else <repo>/../shared/data."""
    return Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))
