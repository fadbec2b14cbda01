"""The real clothing dataset (4,683 phone photos, images.csv): the layout the loader targets."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from aigc_ecommerce.plugin import load_products
from aigc_run.components import DataRequest, Sample, Skipped

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
def test_the_clothing_dataset_loads_fast_with_its_17_labels(shared_data: Path) -> None:
    folder = shared_data / "clothing"
    if not (folder / "images.csv").is_file():
        pytest.skip(
            f"real data absent: no {folder}/images.csv (set AIGC_TEST_DATA to the "
            "folder that holds clothing/)"
        )
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
