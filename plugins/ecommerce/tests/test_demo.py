from __future__ import annotations

from collections import Counter

import numpy as np

from aigc_ecommerce import demo
from aigc_ecommerce.plugin import load_products
from aigc_run import DataRequest, Sample


def _request(**options: object) -> DataRequest:
    return DataRequest(path=None, options=options, image_size=32, channels=3, seed=7)


def test_demo_catalogue_has_the_six_categories_balanced() -> None:
    samples = list(load_products(_request(demo_count=60)))
    assert all(isinstance(s, Sample) for s in samples)
    assert Counter(s.label for s in samples) == {c: 10 for c in demo.CATEGORIES}
    assert set(demo.CATEGORIES) == {"T-Shirt", "Trousers", "Dress", "Shoe", "Handbag", "Cap"}
    for s in samples:
        assert s.image.mode == "RGB"
        assert s.image.size == (64, 64)  # drawn at twice the training size


def test_demo_catalogue_is_deterministic_and_seeded() -> None:
    first = [np.asarray(s.image) for s in load_products(_request(demo_count=12))]
    again = [np.asarray(s.image) for s in load_products(_request(demo_count=12))]
    other = DataRequest(path=None, options={"demo_count": 12}, image_size=32, channels=3, seed=8)
    different = [np.asarray(s.image) for s in load_products(other)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, different, strict=True))


def test_demo_products_sit_centred_on_white() -> None:
    for s in load_products(_request(demo_count=12)):
        a = np.asarray(s.image).astype(int)
        corners = np.concatenate([a[:3, :3], a[:3, -3:], a[-3:, :3], a[-3:, -3:]]).reshape(-1, 3)
        assert corners.min() >= 235, s.label  # white (a shadow may touch a corner softly)
        centre = a[24:40, 24:40].reshape(-1, 3)
        assert (centre.min(axis=1) < 200).mean() > 0.3, s.label  # the product is in the middle


def test_demo_default_count_and_size_follow_the_request() -> None:
    request = DataRequest(path=None, options={"demo_count": 2}, image_size=64, channels=3, seed=0)
    assert [s.image.size for s in load_products(request)] == [(128, 128)] * 2
    assert sum(1 for _ in demo.catalogue(5, 0, 32)) == 5
