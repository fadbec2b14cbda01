"""The training-overhead benchmark runs both arms on a tiny budget (figures need a quiet
machine: see benchmarks/train_overhead.py)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
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
    sizes = ["--recipe", "none", "--image-size", "16", "--width", "8", "--batch-size", "4"]
    sizes += ["--steps", "6", "--runs", "2"]
    every = ["--log-every", "2", "--checkpoint-every", "3", "--rounds", "2"]
    benchmark.main([*sizes, *every, "--device", "cpu", "--results", str(tmp_path)])
    record = json.loads((tmp_path / "train_overhead-none-16.json").read_text())
    runs = record["figures"]["runs"]
    assert len(runs) == 2 and record["budget"]["runs"] == 2
    for result in runs:
        assert len(result["rates"]["engine"]) == len(result["rates"]["plain"]) == 2
        assert all(rate > 0 for rates in result["rates"].values() for rate in rates)
        ratio = result["median"]["engine"] / result["median"]["plain"]
        assert result["ratio"] == pytest.approx(ratio)
    ratios = [r["ratio"] for r in runs]
    assert record["figures"]["ratio"]["median"] == pytest.approx(statistics.median(ratios))


def _adam_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports train_overhead
    spec = importlib.util.spec_from_file_location(
        "adam_fused", REPO / "benchmarks" / "adam_fused.py"
    )
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gan", "vae"])
def test_adam_fused_times_both_arms_and_reports_the_ratio(tmp_path: Path, monkeypatch, family):
    benchmark = _adam_benchmark(monkeypatch)
    out = tmp_path / "result.json"
    sizes = ["--width", "8", "--batch-size", "4", "--steps", "4", "--rounds", "2"]
    benchmark.main([*sizes, "--family", family, "--device", "cpu", "--json", str(out)])
    result = json.loads(out.read_text())
    assert len(result["rates"]["fused"]) == len(result["rates"]["loop"]) == 2
    assert result["ratio"] == pytest.approx(result["median"]["fused"] / result["median"]["loop"])


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_fused_adam_trains_as_the_loop_does(monkeypatch, family):
    """The fused kernel is the same algorithm: a few steps from one seed end within
    rounding of the per-tensor loop's weights (and the benchmark's loop arm really is one)."""
    import torch

    benchmark = _adam_benchmark(monkeypatch)
    from train_overhead import new_model

    from aigc_run.plugins import load_plugins
    from aigc_run.scenario import resolve

    model = {"family": family, "width": 8, "latent_dim": 8}
    content = {"name": "adam", "data": {"source": "x", "image_size": 16}, "model": model}
    scenario = resolve(content, environ={})
    args = argparse.Namespace(family=family, image_size=16, device="cpu")
    plugins = load_plugins(set())
    fused, loop = new_model(plugins, scenario, args), new_model(plugins, scenario, args)
    benchmark.loop_adam(loop)
    optimisers = [v for v in vars(loop).values() if isinstance(v, torch.optim.Adam)]
    assert optimisers and not any(o.defaults["fused"] for o in optimisers)
    images = torch.rand(4, 3, 16, 16) * 2 - 1
    labels = torch.tensor([0, 1, 2, 3])
    for model_ in (fused, loop):
        torch.manual_seed(1)
        for _ in range(5):
            model_.train_step(images, labels)
    a, b = fused.state_dict(), loop.state_dict()
    start = new_model(plugins, scenario, args).state_dict()
    assert a.keys() == b.keys()
    weights = [k for k in a if "optimizer" not in k and a[k].is_floating_point()]
    assert any(not torch.equal(a[k], start[k]) for k in weights)  # they did train
    for key in weights:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
