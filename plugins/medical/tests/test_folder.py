from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigc_medical.loaders import load
from aigc_run import DataError, DataRequest, Sample, Skipped


def request(path: Path) -> DataRequest:
    return DataRequest(path=path, options={}, image_size=32, channels=1, seed=0)


def scan(seed: int = 0, size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8))


def test_class_subfolders_with_broken_files(tmp_path: Path) -> None:
    (tmp_path / "normal").mkdir()
    (tmp_path / "pneumonia" / "ward2").mkdir(parents=True)
    scan(1).save(tmp_path / "normal" / "a.png")
    scan(2).convert("RGB").save(tmp_path / "normal" / "b.JPG")
    scan(3).save(tmp_path / "pneumonia" / "ward2" / "c.png")  # deeper: still "pneumonia"
    good = tmp_path / "pneumonia" / "d.png"
    scan(4).save(good)
    (tmp_path / "pneumonia" / "corrupt.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "pneumonia" / "notes.png").write_text("this is not an image")
    (tmp_path / "normal" / "README.txt").write_text("ignored: not an image extension")
    (tmp_path / "normal" / ".hidden.png").write_text("ignored: hidden")
    scan(5).save(tmp_path / "stray.png")  # outside any class folder

    items = list(load(request(tmp_path)))
    samples = [item for item in items if isinstance(item, Sample)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    assert Counter(s.label for s in samples) == {"normal": 2, "pneumonia": 2}
    assert all(s.image.mode == "L" for s in samples)
    assert Counter(s.reason for s in skipped) == {
        "unreadable image": 2,
        "outside a class folder": 1,
    }
    assert {s.item for s in skipped if s.reason == "unreadable image"} == {
        str(Path("pneumonia") / "corrupt.png"),
        str(Path("pneumonia") / "notes.png"),
    }


def test_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    for i in range(3):
        scan(i).save(tmp_path / f"{i}.png")
    items = list(load(request(tmp_path)))
    assert [item.label for item in items] == ["", "", ""]
    assert np.array_equal(np.asarray(items[0].image), np.asarray(scan(0)))


def test_16_bit_png_is_stretched_by_its_own_range(tmp_path: Path) -> None:
    # A 12-bit detector range stored in 16 bits: clipping at 255 would make it white.
    values = np.linspace(1000, 4000, 64 * 48).reshape(48, 64).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode in ("I;16", "I")
    (item,) = load(request(tmp_path))
    pixels = np.asarray(item.image)
    assert item.image.mode == "L" and item.image.size == (64, 48)
    assert pixels.min() == 0 and pixels.max() == 255
    assert abs(float(pixels.mean()) - 127.5) < 2  # a linear ramp stays linear


def test_flat_16_bit_png_does_not_divide_by_zero(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 3000, np.uint16)).save(tmp_path / "flat.png")
    (item,) = load(request(tmp_path))
    assert np.asarray(item.image).max() == 0


def test_empty_or_unusable_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load(request(tmp_path))
    assert str(tmp_path) in caught.value.message and "class subfolders" in caught.value.hint
    (tmp_path / "notes.txt").write_text("no scans here")
    with pytest.raises(DataError, match="no PNG/JPEG"):
        load(request(tmp_path))
    (tmp_path / "a.png").write_text("not an image")
    items = load(request(tmp_path))
    with pytest.raises(DataError, match="none of the 1 scans"):
        list(items)


def test_decompression_bomb_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow refuses images over twice MAX_IMAGE_PIXELS; lower the limit to make one.
    scan(0, (200, 200)).save(tmp_path / "big.png")
    scan(1, (10, 10)).save(tmp_path / "small.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    items = list(load(request(tmp_path)))
    assert Skipped("big.png", "image too large") in items
    assert sum(isinstance(item, Sample) for item in items) == 1
