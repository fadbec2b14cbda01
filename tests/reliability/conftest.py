"""Counts what the reliability tests put the engine through, printed after the run."""

from __future__ import annotations

from collections import Counter

import pytest

TALLY: Counter[str] = Counter()


@pytest.fixture
def tally() -> Counter[str]:
    """Add to it: ``tally["SIGKILLs survived"] += 1``."""
    return TALLY


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist a worker hands its counts to the controller, which prints them."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["aigc_tally"] = dict(TALLY)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: called on the controller
def pytest_testnodedown(node: object, error: object) -> None:
    TALLY.update(getattr(node, "workeroutput", {}).get("aigc_tally", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY:
        terminalreporter.section("reliability")
        for what, count in sorted(TALLY.items()):
            terminalreporter.write_line(f"{what}: {count}")
