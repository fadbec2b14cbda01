from __future__ import annotations

import math

import pytest
import torch

from aigc_ecommerce import filters
from aigc_ecommerce.plugin import load_products, register_quality_filters
from aigc_run import DataRequest, FilterContext

CONTEXT = FilterContext(
    labels=torch.zeros(0, dtype=torch.int64),
    reference=torch.zeros(0, 3, 32, 32),
    reference_labels=torch.zeros(0, dtype=torch.int64),
    class_names=(),
)


def _framed(border: float, n: int = 1) -> torch.Tensor:
    images = torch.full((n, 3, 32, 32), border)
    images[:, :, 6:26, 6:26] = torch.tensor([0.8, 0.1, 0.1])[:, None, None]
    return images


def _demo_batch(count: int) -> torch.Tensor:
    request = DataRequest(
        path=None, options={"demo_count": count}, image_size=32, channels=3, seed=3
    )
    images = [s.image.resize((32, 32)) for s in load_products(request)]
    data = torch.stack(
        [torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8) for im in images]
    )
    return data.view(count, 32, 32, 3).permute(0, 3, 1, 2).float() / 255


def _by_name() -> dict[str, object]:
    return {f.name: f for f in register_quality_filters()}


def test_white_border_scores_higher_than_a_dark_one() -> None:
    (bg,) = [f for f in register_quality_filters() if f.name == "background-clean"]
    scores = bg.score(torch.cat([_framed(1.0), _framed(0.3), _framed(0.93)]), CONTEXT)
    assert scores.shape == (3,) and scores.dtype == torch.float32
    assert scores[0] == 1.0 and scores[1] == 0.0 and scores[2] == 1.0
    assert bg.passes(float(scores[0]), bg.threshold)
    assert not bg.passes(float(scores[1]), bg.threshold)
    pale_pink = torch.full((1, 3, 32, 32), 0.95)
    pale_pink[:, 1:] = 0.8  # bright but coloured: not a white background
    assert bg.score(pale_pink, CONTEXT)[0] == 0.0


def test_demo_products_pass_background_clean() -> None:
    scores = filters.background_clean(_demo_batch(24), CONTEXT)
    assert (scores >= filters.BACKGROUND_CLEAN_THRESHOLD).all()


def test_a_duplicate_in_the_batch_fails_and_its_first_copy_passes() -> None:
    (nd,) = [f for f in register_quality_filters() if f.name == "near-duplicate"]
    batch = _demo_batch(12)
    noisy_copy = (batch[4] + 0.01 * torch.randn_like(batch[4])).clamp(0, 1)
    batch = torch.cat([batch, noisy_copy[None], batch[7:8]])  # indices 12 and 13 are copies
    scores = nd.score(batch, CONTEXT)
    assert scores.shape == (14,) and torch.isfinite(scores).all()
    passed = [nd.passes(float(s), nd.threshold) for s in scores]
    assert passed == [True] * 12 + [False, False]
    assert scores[0] == filters.FIRST_SCORE
    assert scores[13] == 0.0


def test_near_duplicate_scores_do_not_depend_on_the_batch_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Compared within fixed blocks: a batch of 4 blocks scores as 4 batches of one block
    # (how a big GPU batch and the CPU's batches of 256 see the same samples).
    monkeypatch.setattr(filters, "BLOCK", 6)
    batch = _demo_batch(24)
    batch[9] = batch[7]  # a copy inside the second block
    whole = filters.near_duplicate(batch, CONTEXT)
    parts = torch.cat([filters.near_duplicate(part, CONTEXT) for part in batch.split(6)])
    assert torch.equal(whole, parts)
    assert whole[9] == 0.0 and (whole[::6] == filters.FIRST_SCORE).all()


def test_filters_take_any_batch_size_and_channels() -> None:
    for n in (0, 1):
        for score in (filters.background_clean, filters.near_duplicate):
            out = score(torch.ones(n, 1, 16, 16), CONTEXT)
            assert out.shape == (n,) and torch.isfinite(out).all()
    grey = filters.near_duplicate(torch.rand(5, 1, 28, 28), CONTEXT)
    assert grey.shape == (5,) and grey[0] == filters.FIRST_SCORE
    assert not math.isinf(float(grey.min()))


def _blurred(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    import torch.nn.functional as F

    k = torch.exp(-(torch.arange(-3, 4).float() ** 2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, 7).repeat(3, 1, 1, 1)
    rows = F.conv2d(F.pad(images, (3, 3, 0, 0), mode="replicate"), k, groups=3)
    return F.conv2d(F.pad(rows, (0, 0, 3, 3), mode="replicate"), k.transpose(2, 3), groups=3)


def _one(name: str):  # type: ignore[no-untyped-def]
    return _by_name()[name]


def test_object_margin_knows_centred_cut_off_shifted_and_empty() -> None:
    om = _one("object-margin")
    white = torch.ones(4, 3, 32, 32)
    red = torch.tensor([0.8, 0.1, 0.1])[:, None, None]
    images = white.clone()
    images[0, :, 8:24, 8:24] = red  # centred, 8 px of margin: 0.25
    images[1, :, 0:16, 8:24] = red  # touches the top edge: 0
    images[2, :, 10:22, 1:13] = red  # pushed to the left: 1 px
    scores = om.score(images, CONTEXT)  # images[3] is blank: no product
    assert torch.allclose(scores, torch.tensor([0.25, 0.0, 1 / 32, 0.0]))
    assert [om.passes(float(s), om.threshold) for s in scores] == [True, False, True, False]
    assert (filters.object_margin(_demo_batch(24), CONTEXT) >= om.threshold).all()


def test_sharpness_tells_demo_products_from_their_blurred_copies() -> None:
    sh = _one("sharpness")
    batch = _demo_batch(24)
    sharp, blurred = sh.score(batch, CONTEXT), sh.score(_blurred(batch), CONTEXT)
    assert all(sh.passes(float(s), sh.threshold) for s in sharp)
    assert not any(sh.passes(float(s), sh.threshold) for s in blurred)
    assert sh.score(torch.ones(1, 3, 16, 16), CONTEXT)[0] == 0.0


def test_colour_cast_flags_a_tinted_page_not_a_coloured_product() -> None:
    cc = _one("colour-cast")
    batch = _demo_batch(24)  # coloured products on white: neutral highlights
    yellow = batch.clone()
    yellow[:, 2] *= 0.9  # 10% less blue: a yellowish page
    assert all(cc.passes(float(s), cc.threshold) for s in cc.score(batch, CONTEXT))
    assert not any(cc.passes(float(s), cc.threshold) for s in cc.score(yellow, CONTEXT))
    assert cc.score(torch.rand(3, 1, 8, 8), CONTEXT).eq(0).all()  # grey images have no cast


def test_catalogue_copy_fails_copies_of_training_photos_only() -> None:
    cp = _one("catalogue-copy")
    training = _demo_batch(40)
    context = FilterContext(CONTEXT.labels, training, torch.zeros(40, dtype=torch.int64), ())
    copies = (training[:5] + 0.01 * torch.randn(5, 3, 32, 32)).clamp(0, 1)
    fresh = _demo_batch(48)[40:]  # same seed, later indices: not in the training set
    scores = cp.score(torch.cat([copies, fresh]), context)
    assert [cp.passes(float(s), cp.threshold) for s in scores] == [False] * 5 + [True] * 8
    assert cp.score(copies, CONTEXT).eq(filters.FIRST_SCORE).all()  # no reference: all pass
