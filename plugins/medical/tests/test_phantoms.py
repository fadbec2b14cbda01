from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from aigc_medical.loaders import load
from aigc_medical.phantoms import CLASSES, render, render_with_lungs
from aigc_run import DataError, DataRequest, Sample


def request(seed: int = 0, **options: object) -> DataRequest:
    return DataRequest(path=None, options=options, image_size=32, channels=1, seed=seed)


def arrays(seed: int, count: int) -> list[tuple[np.ndarray, str]]:
    items = list(load(request(seed, demo_count=count)))
    assert all(isinstance(item, Sample) for item in items)
    return [(np.asarray(item.image), item.label) for item in items]


def test_phantoms_are_deterministic_per_seed_and_prefix_stable() -> None:
    first, again, longer = arrays(7, 6), arrays(7, 6), arrays(7, 9)
    for (a, la), (b, lb), (c, lc) in zip(first, again, longer, strict=False):
        assert la == lb == lc
        assert np.array_equal(a, b) and np.array_equal(a, c)
    other = arrays(8, 6)
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other, strict=True))


def test_phantoms_are_grayscale_varied_and_in_two_classes() -> None:
    items = list(load(request(0, demo_count=10)))
    assert {item.label for item in items} == set(CLASSES) == {"normal", "lesion"}
    assert all(item.image.mode == "L" and item.image.size == (64, 64) for item in items)
    images = [np.asarray(item.image) for item in items]
    assert len({image.tobytes() for image in images}) == 10
    means = [image.mean() for image in images]
    assert np.std(means) > 2  # exposure varies from scan to scan


def test_demo_count_option_is_honoured_and_checked() -> None:
    assert len(list(load(request(0, demo_count=5)))) == 5
    with pytest.raises(DataError, match="demo_count"):
        load(request(0, demo_count=0))
    with pytest.raises(DataError, match="demo_count"):
        load(request(0, demo_count="many"))


def test_phantoms_look_like_chests() -> None:
    # Lungs (left and right of the centre, mid height) are darker than the mediastinum
    # between them and than the soft tissue at the sides.
    for index in range(8):
        img = render(3, index, label=0, size=64)
        lungs = np.r_[img[20:40, 12:24].ravel(), img[20:40, 40:52].ravel()].mean()
        mediastinum = img[20:40, 29:35].mean()
        assert lungs + 0.1 < mediastinum, index


def test_lesions_are_bright_opacities_in_the_lung_fields() -> None:
    # The same index drawn as normal and as lesion shares its anatomy and noise, so the
    # difference is the lesions alone: bright, and inside the (slightly widened) lungs.
    for index in range(12):
        normal, lungs = render_with_lungs(5, index, label=0)
        lesion, _ = render_with_lungs(5, index, label=1)
        difference = lesion - normal
        assert difference.max() > 0.1, index
        near_lungs = (
            np.asarray(
                Image.fromarray((lungs * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(5))
            )
            > 64
        )
        assert difference[near_lungs].clip(0).sum() > 0.95 * np.abs(difference).sum(), index
    # Across a set, the lung fields of lesion scans are brighter than those of normal ones.
    lung_means = []
    for index in range(40):
        image, lungs = render_with_lungs(1, index, index % 2)
        lung_means.append(image[lungs > 0.9].mean())
    assert np.mean(lung_means[1::2]) > np.mean(lung_means[0::2]) + 0.02
