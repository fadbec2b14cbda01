"""The quality benchmark runs end to end on a tiny budget (figures need a quiet machine)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.mark.slow
def test_quality_vs_dcgan_writes_both_scores_and_the_ratio(tmp_path: Path):
    if not (DATA / "pneumoniamnist" / "pneumoniamnist.npz").exists():
        pytest.skip(f"no PneumoniaMNIST under {DATA} (set AIGC_TEST_DATA)")
    spec = importlib.util.spec_from_file_location(
        "quality_vs_dcgan", REPO / "benchmarks" / "quality_vs_dcgan.py"
    )
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    out = tmp_path / "result.json"
    args = ["--data", "pneumoniamnist", "--data-dir", str(DATA), "--minutes", "0.05"]
    args += [
        "--samples",
        "200",
        "--cache",
        str(tmp_path),
        "--out",
        str(out),
        "--inception-samples",
        "0",
    ]
    benchmark.main(args)
    result = json.loads(out.read_text())
    assert result["budget_minutes"] == 0.05 and result["image_size"] == 32
    for recipe in ("dcgan", "scenario"):
        assert result[recipe]["steps"] >= 1
        assert result[recipe]["fid_domain"] > 0
    modes = result["dcgan"]["sampling"]  # the baseline is the better of its two sampling modes
    assert set(modes) == {"running_stats", "batch_stats"}
    assert result["dcgan"]["fid_domain"] == min(m["fid_domain"] for m in modes.values())
    assert result["ratio"]["fid_domain"] == pytest.approx(
        result["scenario"]["fid_domain"] / result["dcgan"]["fid_domain"]
    )
