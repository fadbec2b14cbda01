"""The domain classifier as a filter: ecommerce's class-consistency and medical's
anatomical-plausibility flag images that do not look like the class they were drawn for."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from aigc_ecommerce.filters import class_consistency
from aigc_medical.filters import anatomical_plausibility
from aigc_run import FilterContext
from aigc_run.testing import filter_context

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))


def _squares_and_discs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a bright square; class 1: a bright disc; on a dark ground, jittered."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    images = torch.zeros(n, 1, 16, 16)
    for i in range(n):
        cy, cx = 8 + torch.randint(-2, 3, (2,), generator=g)
        if labels[i] == 0:
            shape = ((ys - cy).abs() <= 4) & ((xs - cx).abs() <= 4)
        else:
            shape = (ys - cy) ** 2 + (xs - cx) ** 2 <= 16
        images[i, 0] = shape.float() * 0.9 + 0.05 * torch.rand(16, 16, generator=g)
    return images, labels


@pytest.mark.parametrize("score", [class_consistency, anatomical_plausibility])
def test_images_asked_for_the_wrong_class_score_low(score) -> None:
    reference, reference_labels = _squares_and_discs(400, seed=0)
    images, labels = _squares_and_discs(40, seed=1)
    names = ["square", "disc"]
    right = score(images, filter_context(labels, reference, reference_labels, names))
    wrong = score(images, filter_context(1 - labels, reference, reference_labels, names))
    assert right.shape == wrong.shape == (40,)
    assert (right > 0.5).float().mean() >= 0.9
    assert (wrong < 0.5).float().mean() >= 0.9
    assert torch.allclose(right + wrong, torch.ones(40), atol=1e-4)  # two classes


def test_unlabelled_data_passes_everything_rather_than_guessing() -> None:
    reference, _ = _squares_and_discs(50, seed=0)
    images = torch.rand(5, 1, 16, 16)
    context = FilterContext(torch.zeros(5, dtype=torch.int64), reference, torch.zeros(50), [])
    assert torch.equal(class_consistency(images, context), torch.ones(5))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "wrong_at_least", "right_at_most"),
    [
        pytest.param("ecommerce", 0.6, 0.15, marks=pytest.mark.realdata("clothing/images.csv")),
        pytest.param(
            "medical", 0.9, 0.1, marks=pytest.mark.realdata("pneumoniamnist/pneumoniamnist.npz")
        ),
    ],
)
def test_on_real_data_wrong_class_images_are_flagged(
    scenario: str, wrong_at_least: float, right_at_most: float
) -> None:
    spec = importlib.util.spec_from_file_location(
        "class_consistency_benchmark", REPO / "benchmarks" / "class_consistency.py"
    )
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    rates = benchmark.flag_rates(scenario, DATA)
    print(rates)
    assert rates["flagged_wrong_class"] >= wrong_at_least
    assert rates["flagged_right_class"] <= right_at_most
