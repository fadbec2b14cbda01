"""Counts what the reliability tests put the engine through, printed after the run."""

from __future__ import annotations

from collections import Counter

import pytest

TALLY: Counter[str] = Counter()


@pytest.fixture
def tally() -> Counter[str]:
    """Add to it: ``tally["SIGKILLs survived"] += 1``."""
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY:
        terminalreporter.section("reliability")
        for what, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{what}: {count}")
