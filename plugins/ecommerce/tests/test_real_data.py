"""The real clothing dataset (4,683 phone photos, images.csv): the layout the loader targets."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from aigc_ecommerce.plugin import load_products
from aigc_run import DataRequest, Sample, Skipped

USABLE_LABELS = {
    "T-Shirt",
    "Longsleeve",
    "Pants",
    "Shoes",
    "Shirt",
    "Dress",
    "Outwear",
    "Shorts",
    "Hat",
    "Skirt",
    "Polo",
    "Undershirt",
    "Blazer",
    "Hoodie",
    "Body",
    "Top",
    "Blouse",
}


@pytest.mark.slow
@pytest.mark.realdata("clothing/images.csv")
def test_the_clothing_dataset_loads_fast_with_its_17_labels(shared_data: Path) -> None:
    folder = shared_data / "clothing"
    request = DataRequest(path=folder, options={}, image_size=32, channels=3, seed=0)
    start = time.perf_counter()
    items = list(load_products(request))
    seconds = time.perf_counter() - start
    samples = [x for x in items if isinstance(x, Sample)]
    reasons = Counter(x.reason for x in items if isinstance(x, Skipped))
    assert len(samples) > 3000
    assert {s.label for s in samples} == USABLE_LABELS
    assert reasons["excluded label"] > 0 and reasons["no row in CSV"] > 0  # both are in the data
    assert not reasons["unreadable image"]
    assert all(s.image.mode == "RGB" and min(s.image.size) >= 64 for s in samples)
    assert seconds < 60, f"loading took {seconds:.1f}s"


@pytest.mark.realdata("clothing/images.csv")
def test_a_capped_sample_of_the_clothing_dataset_loads_every_usable_label(
    shared_data: Path,
) -> None:
    folder = shared_data / "clothing"
    options = {"max_per_class": 2}  # 34 decodes: the rest is skipped before decoding
    request = DataRequest(path=folder, options=options, image_size=32, channels=3, seed=0)
    items = list(load_products(request))
    samples = [x for x in items if isinstance(x, Sample)]
    reasons = Counter(x.reason for x in items if isinstance(x, Skipped))
    assert Counter(s.label for s in samples) == dict.fromkeys(USABLE_LABELS, 2)
    assert {"excluded label", "no row in CSV", "over max_per_class"} <= set(reasons)
    assert all(s.image.mode == "RGB" for s in samples)
