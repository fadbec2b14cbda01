"""The sampler's batch size and memory bounds."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aigc_run import FilterContext, ModelSpec, QualityFilter, SampleWriter
from aigc_run.contract.images import write_png
from aigc_run.models.gan import create
from aigc_run.plugins import Contribution
from aigc_run.run import generation, sampling
from aigc_run.run.filtering import score_filter
from aigc_run.scenario import resolve


def _sample(model, count: int, folder: Path, **sample: object) -> sampling.SamplingResult:
    """``count`` samples of classes "a" and "b", no filters, written as PNG to ``folder``."""
    scenario = resolve(
        {"name": "t", "data": {"source": "none"}, "sample": {"count": count, **sample}},
        environ={},
    )
    writer = Contribution("aigc-run", SampleWriter("png", "png", write_png))
    empty = torch.zeros(0, 3, 1, 1)
    context = FilterContext(torch.zeros(0, dtype=torch.int64), empty, torch.zeros(0), ["a", "b"])
    return sampling.sample(
        model, scenario, [], writer, context, "cpu", folder, lambda batch, rows: None
    )


def test_an_auto_batch_is_the_largest_power_of_two_in_half_the_free_memory():
    gib = 2**30
    assert generation.batch_for_memory(8 * gib, gib / 1000) == 2048  # 4,096 fit; 2^11 <= that
    assert generation.batch_for_memory(8 * gib, gib / 1024) == 4096  # exactly a power of two
    assert generation.batch_for_memory(100 * gib, 1000) == 65536  # capped
    assert generation.batch_for_memory(gib, 4 * gib) == 1  # not even one: try one, fail clearly


def test_auto_batch_on_a_cpu_is_the_documented_default():
    model = create(ModelSpec(3, 16, 2, True, {"width": 8, "latent_dim": 8}, {}, "cpu"))
    assert generation.pick_batch_size(model, "auto", "cpu") == generation.AUTO_BATCH
    assert generation.pick_batch_size(model, 12, "cpu") == 12


def test_a_large_run_keeps_only_the_contact_sheets_images_in_memory(tmp_path: Path):
    torch.manual_seed(0)
    model = create(ModelSpec(3, 16, 2, True, {"width": 8, "latent_dim": 8}, {}, "cpu"))
    count = 2 * sampling.SHEET_PER_CLASS + 150
    result = _sample(model, count, tmp_path, batch_size=64)
    assert result.accepted == count == len(list(tmp_path.glob("samples/*/*.png")))
    kept = torch.cat(result.accepted_labels)
    assert torch.bincount(kept).tolist() == [sampling.SHEET_PER_CLASS] * 2
    assert sum(len(images) for images in result.accepted_images) == len(kept)


@pytest.mark.slow
def test_compiled_sampling_draws_the_eager_images_to_a_grey_level(tmp_path: Path):
    torch.manual_seed(0)
    model = create(ModelSpec(3, 16, 2, True, {"width": 8, "latent_dim": 8}, {}, "cpu"))
    written = {}
    for compiled in (False, True):
        _sample(model, 40, tmp_path / str(compiled), batch_size=16, compile=compiled)
        files = sorted((tmp_path / str(compiled)).glob("samples/*/*.png"))
        written[compiled] = np.stack([np.asarray(Image.open(f), dtype=np.int16) for f in files])
    assert written[True].shape == written[False].shape == (40, 16, 16, 3)
    assert np.abs(written[True] - written[False]).max() <= 1


def test_the_contact_sheet_names_each_row_and_says_when_a_class_has_none(tmp_path: Path):
    images = torch.full((6, 3, 32, 32), 40, dtype=torch.uint8)  # dark samples
    labels = torch.tensor([0, 0, 0, 1, 1, 1])  # class 2 ("Hats") has none
    path = tmp_path / "sheet.png"
    sampling.contact_sheet(path, images, labels, 3, class_names=["Shoes", "Pants", "Hats"])
    with Image.open(path) as sheet:
        pixels = np.asarray(sheet.convert("L"))
    grid_width = (8 * (32 + 2) + 2) * 3  # 32-px samples drawn at 96
    margin = sheet.width - grid_width
    assert margin > 20  # room for the names
    row = sheet.height // 3
    for r in range(3):  # each name is drawn in black in its row of the margin
        assert (pixels[r * row : (r + 1) * row, :margin] < 50).any(), r
    empty = pixels[2 * row : 3 * row, margin:]
    grey = (empty > 100) & (empty < 160)
    assert grey.any()  # "none accepted", in grey
    assert not (empty == 40).any()  # and no sample

    # with what rejected the class's samples, the grey line runs on ("none accepted:
    # rejected by background-clean 12, near-duplicate 2")
    reasons = {2: {"near-duplicate": 2, "background-clean": 12}, 0: {"background-clean": 1}}
    names = ["Shoes", "Pants", "Hats"]
    sampling.contact_sheet(path, images, labels, 3, class_names=names, rejected_by_class=reasons)
    with Image.open(path) as sheet:
        explained = np.asarray(sheet.convert("L"))[2 * row : 3 * row, margin:]
    wider = (explained > 100) & (explained < 160)
    assert np.flatnonzero(wider.any(0)).max() > np.flatnonzero(grey.any(0)).max() + 100


def test_an_auto_threshold_loosened_ten_fold_is_flagged() -> None:
    from aigc_run import QualityFilter
    from aigc_run.run import filtering
    from aigc_run.testing import filter_context

    real = torch.rand(50, 3, 8, 8)
    labels = torch.zeros(50, dtype=torch.long)
    context = filter_context(labels, real, labels, ["one"])

    def calibrated(score: float, higher_is_better: bool) -> filtering.ActiveFilter:
        quality = QualityFilter(
            "steady", "the same score for every image", lambda images, ctx: torch.full(
                (len(images),), score), threshold=0.5, higher_is_better=higher_is_better,
        )  # fmt: skip
        (active,) = filtering.calibrate([(Contribution("p", quality), "auto")], real, context)
        return active

    assert calibrated(0.3, True).threshold == pytest.approx(0.3)  # loosened, within 10x
    assert not calibrated(0.3, True).loosened_too_far()
    assert calibrated(0.01, True).loosened_too_far()  # 50x looser: rejects next to nothing
    assert not calibrated(0.9, True).loosened_too_far()  # the default holds
    assert calibrated(6.0, False).loosened_too_far()  # lower is better: 12x the default
    assert not calibrated(4.0, False).loosened_too_far()


def _score_with_a_critic_on_the_filter_thread() -> weakref.ref[torch.nn.Module]:
    critic = torch.nn.Linear(3, 1)
    context = FilterContext(
        torch.zeros(2, dtype=torch.int64),
        torch.zeros(0, 3, 4, 4),
        torch.zeros(0),
        ["a"],
        realness=lambda images, labels: critic(images.mean(dim=(2, 3)))[:, 0],
    )
    realness = QualityFilter("realness", "by the critic", lambda i, c: c.model_realness(i), 0.0)
    scores = score_filter("test", realness, torch.rand(2, 3, 4, 4), context, timeout=60.0)
    assert scores.shape == (2,)
    return weakref.ref(critic)


def test_the_filter_thread_keeps_nothing_of_a_finished_call():
    # The run's model, and in a run over several processes the process group its networks
    # hold, must go with the run, not linger on the idle filter thread until exit.
    critic = _score_with_a_critic_on_the_filter_thread()
    gc.collect()
    assert critic() is None
