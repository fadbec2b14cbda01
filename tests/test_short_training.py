"""The shipped ecommerce recipe learns the catalogue's white background in a short run:
a real training run through the CLI, in a file of its own so that the test processes can
run it beside the other CLI tests."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_run.registry import Registry
from aigc_run.settings import Settings

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIGC_RUN, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_short_real_training_learns_the_white_background():
    # The shipped recipe on the demo catalogue: an untrained generator draws grey noise that
    # the background filter rejects; one trained 300 steps draws products on white that it
    # keeps. Only the background is judged here (class-consistency has its own tests), and
    # nothing is evaluated; no time cap, so a busy machine trains as far as a quiet one.
    result = run_cli(
        "scenario",
        "ecommerce",
        "--quiet",
        "--set",
        "train.steps=300",
        "--set",
        "train.max_minutes=60",
        "--set",
        "data.options.demo_count=600",
        "--set",
        "sample.count=32",
        "--set",
        "filters.background-clean=0.75",
        "--set",
        "filters.class-consistency=off",
        "--set",
        "sample.max_tries=1",
        "--set",
        "evaluate.metrics=[]",
    )
    assert result.returncode == 0, result.stderr
    registry = Registry(Settings().registry_url)
    detail = registry.get_run(registry.list_runs()[0].id)
    assert detail.samples.total >= 32
    assert detail.samples.accepted / detail.samples.total > 0.5, detail.samples
    assert math.isfinite(detail.metrics["loss_d"])  # recorded, and neither NaN nor infinite
