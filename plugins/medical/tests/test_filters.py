from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aigc_medical import filters
from aigc_medical.phantoms import phantoms
from aigc_medical.plugin import register_quality_filters
from aigc_medical.preprocess import normalize_intensity
from aigc_run import FilterContext, QualityFilter
from aigc_run.testing import filter_context

FILTERS = {f.name: f for f in register_quality_filters()}


def as_tensor(images: list[Image.Image], size: int = 32) -> torch.Tensor:
    """What the engine caches: grayscale, resized, float in [0, 1], N x 1 x H x W."""
    arrays = [
        np.asarray(image.convert("L").resize((size, size), Image.BICUBIC)) for image in images
    ]
    return torch.from_numpy(np.stack(arrays)[:, None]).float() / 255.0


def context(reference: torch.Tensor, n: int = 1) -> FilterContext:
    """A context as the engine makes one, its domain classifier included."""
    m = reference.shape[0]
    return filter_context(
        torch.zeros(n, dtype=torch.long),
        reference,
        torch.zeros(m, dtype=torch.long),
        ["normal", "lesion"],
    )


def pass_rate(f: QualityFilter, images: torch.Tensor, ctx: FilterContext) -> float:
    scores = f.score(images, ctx)
    assert scores.shape == (images.shape[0],) and torch.isfinite(scores).all()
    return float(np.mean([f.passes(float(s), f.threshold) for s in scores]))


@pytest.fixture(scope="module")
def phantom_split() -> tuple[torch.Tensor, torch.Tensor]:
    images = as_tensor([image for image, _ in phantoms(0, 360)])
    return images[:300], images[300:]  # training reference, held-out


def test_filters_are_registered_with_directions() -> None:
    assert FILTERS["intensity-plausibility"].higher_is_better is False
    assert FILTERS["intensity-plausibility"].threshold == filters.PLAUSIBILITY_THRESHOLD
    assert FILTERS["memorisation"].higher_is_better is True
    assert FILTERS["memorisation"].threshold == filters.MEMORISATION_THRESHOLD


def test_blank_and_saturated_images_fail_plausibility(phantom_split) -> None:
    train, held_out = phantom_split
    plausibility = FILTERS["intensity-plausibility"]
    blanks = torch.stack(
        [torch.full((1, 32, 32), value) for value in (0.0, train.mean().item(), 1.0)]
        + [torch.rand(1, 32, 32)]  # uniform noise: no chest has this histogram
    )
    assert pass_rate(plausibility, blanks, context(train)) == 0.0
    assert pass_rate(plausibility, held_out, context(train)) >= 0.9


def test_memorisation_catches_copies_and_passes_new_scans(phantom_split) -> None:
    train, held_out = phantom_split
    memorisation = FILTERS["memorisation"]
    copies = train[::10]
    noisy = (copies + 0.03 * torch.randn_like(copies)).clamp(0, 1)
    assert pass_rate(memorisation, copies, context(train)) == 0.0
    assert pass_rate(memorisation, noisy, context(train)) == 0.0
    assert pass_rate(memorisation, held_out, context(train)) >= 0.9


def test_memorisation_matches_brute_force_across_chunks() -> None:
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(filters.CHUNK + 300, 1, 16, 16, generator=generator)
    samples = torch.rand(7, 1, 16, 16, generator=generator)
    samples[3] = reference[filters.CHUNK + 5]  # a copy in the second chunk
    scores = filters.nearest_training_distance(samples, context(reference, 7))
    # exact distances. The filter uses the faster matrix-product form: in float32 its
    # squared distances (sums of terms near 85) carry 1e-5 to 1e-4 of rounding, up to ~6e-4
    # once divided by the 256 pixels and rooted (a copy scored 3.5e-4 in CI); a sample
    # matched against the wrong chunk would be off by ~0.1.
    exact = "donot_use_mm_for_euclid_dist"
    distances = torch.cdist(samples.flatten(1), reference.flatten(1), compute_mode=exact)
    expected = distances.min(dim=1).values / 16
    assert torch.allclose(scores, expected, atol=1e-3)
    assert scores[3] < 1e-3


def test_colour_and_odd_sizes_score() -> None:
    reference = torch.rand(20, 3, 12, 12)
    samples = torch.rand(4, 3, 12, 12)
    for f in FILTERS.values():
        scores = f.score(samples, context(reference, 4))
        assert scores.shape == (4,) and torch.isfinite(scores).all()
    one = FILTERS["intensity-plausibility"].score(samples, context(reference[:1], 4))
    assert torch.isfinite(one).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_filters_run_on_the_gpu(phantom_split) -> None:
    train, held_out = phantom_split
    n = len(held_out)
    for f in FILTERS.values():
        scores = f.score(held_out.cuda(), context(train.cuda(), n))
        assert scores.shape == (n,) and scores.device.type == "cuda"
        assert torch.isfinite(scores).all()
        assert torch.allclose(scores.cpu(), f.score(held_out, context(train, n)), atol=1e-3)


@pytest.mark.realdata("pneumoniamnist/pneumoniamnist.npz")
def test_default_thresholds_on_real_pneumoniamnist(pneumonia_npz: Path) -> None:
    # As the medical scenario prepares it: normalize-intensity, 32 x 32; 10% held out.
    with np.load(pneumonia_npz) as npz:
        raw = npz["train_images"]
    images = as_tensor([normalize_intensity(Image.fromarray(a), 32) for a in raw])
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    held_out, train = images[order[:470]], images[order[470:]]
    ctx = context(train)
    plausibility, memorisation = FILTERS["intensity-plausibility"], FILTERS["memorisation"]
    assert pass_rate(plausibility, held_out, ctx) >= 0.95
    assert pass_rate(memorisation, held_out, ctx) >= 0.95  # ~1% are duplicates in the data
    assert pass_rate(memorisation, train[:500], ctx) == 0.0  # exact copies
    blanks = torch.stack([torch.full((1, 32, 32), v) for v in (0.0, 0.5, 1.0)])
    assert pass_rate(plausibility, blanks, ctx) == 0.0
