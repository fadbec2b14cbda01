"""The training-overhead benchmark runs both arms on a tiny budget (figures need a quiet
machine: see benchmarks/train_overhead.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_overhead_times_both_arms_and_reports_the_ratio(tmp_path: Path):
    spec = importlib.util.spec_from_file_location(
        "train_overhead", REPO / "benchmarks" / "train_overhead.py"
    )
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    out = tmp_path / "result.json"
    sizes = ["--image-size", "16", "--width", "8", "--batch-size", "4", "--steps", "6"]
    every = ["--log-every", "2", "--checkpoint-every", "3", "--rounds", "2"]
    benchmark.main([*sizes, *every, "--device", "cpu", "--json", str(out)])
    result = json.loads(out.read_text())
    assert len(result["rates"]["engine"]) == len(result["rates"]["plain"]) == 2
    assert all(rate > 0 for rates in result["rates"].values() for rate in rates)
    assert result["ratio"] == pytest.approx(result["median"]["engine"] / result["median"]["plain"])
