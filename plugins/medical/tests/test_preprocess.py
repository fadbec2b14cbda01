from __future__ import annotations

import numpy as np
from PIL import Image

from aigc_medical.preprocess import normalize_intensity


def test_normalize_stretches_the_percentiles() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(80, 140, (64, 64)).astype(np.uint8)
    pixels[0, :5] = 255  # a few burnt-in pixels must not set the scale
    out = np.asarray(normalize_intensity(Image.fromarray(pixels), 32))
    assert out.shape == (64, 64) and out.dtype == np.uint8
    assert np.percentile(out, 1) <= 3 and np.percentile(out, 99) >= 252
    assert out.std() > 2.5 * pixels[1:].std()


def test_normalize_is_robust_to_flat_images() -> None:
    flat = Image.new("L", (16, 16), 90)
    assert np.array_equal(np.asarray(normalize_intensity(flat, 32)), np.full((16, 16), 90))
    almost = np.full((16, 16), 90, np.uint8)
    almost[0, 0] = 200  # percentiles coincide: falls back to min and max
    out = np.asarray(normalize_intensity(Image.fromarray(almost), 32))
    assert out[0, 0] == 255 and out[1, 1] == 0
    assert np.isfinite(out).all()


def test_normalize_handles_16_bit_and_colour() -> None:
    deep = Image.fromarray(np.linspace(500, 3000, 256).reshape(16, 16).astype(np.uint16))
    out = normalize_intensity(deep, 32)
    assert out.mode == "L" and np.asarray(out).max() == 255
    colour = Image.fromarray(np.dstack([np.full((8, 8), v, np.uint8) for v in (10, 50, 90)]))
    out = normalize_intensity(colour, 32)
    assert out.mode == "RGB"
    assert tuple(np.asarray(out)[0, 0]) == (0, 128, 255)
