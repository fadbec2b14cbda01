from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aigc_medical.loaders import load
from aigc_run import DataError, DataRequest, Sample


def request(path: Path, **options: object) -> DataRequest:
    return DataRequest(path=path, options=options, image_size=32, channels=1, seed=0)


def make_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def medmnist(path: Path, sizes: dict[str, int], shape: tuple[int, ...] = (28, 28)) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in sizes.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(n, 1).astype(np.uint8)
    return make_npz(path, **arrays)


def test_labels_are_mapped_to_digits_by_default(tmp_path: Path) -> None:
    path = medmnist(tmp_path / "scans.npz", {"train": 6, "val": 3, "test": 2})
    items = list(load(request(path)))
    assert all(isinstance(item, Sample) for item in items)
    assert [item.label for item in items] == ["0", "1", "2"] * 2
    assert items[0].image.mode == "L" and items[0].image.size == (28, 28)
    stored = np.load(path)["train_images"][0]
    assert np.array_equal(np.asarray(items[0].image), stored)


def test_splits_and_class_names(tmp_path: Path) -> None:
    path = medmnist(tmp_path / "scans.npz", {"train": 6, "val": 3, "test": 2})
    names = ["a", "b", "c"]
    assert len(list(load(request(path, split="val")))) == 3
    assert len(list(load(request(path, split="test")))) == 2
    every = list(load(request(path, split="all", class_names=names)))
    assert len(every) == 11
    assert Counter(item.label for item in every) == {"a": 4, "b": 4, "c": 3}


def test_all_takes_the_splits_present(tmp_path: Path) -> None:
    path = medmnist(tmp_path / "scans.npz", {"train": 4, "test": 2})
    assert len(list(load(request(path, split="all")))) == 6


def test_medmnist_names_are_recognised_from_the_file_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = make_npz(
        tmp_path / "pneumoniamnist_64.npz",
        train_images=rng.integers(0, 256, (4, 64, 64), dtype=np.uint8),
        train_labels=np.array([[0], [1], [1], [0]], dtype=np.uint8),
    )
    assert [item.label for item in load(request(path))] == [
        "normal", "pneumonia", "pneumonia", "normal",
    ]  # fmt: skip


def test_colour_and_single_channel_images(tmp_path: Path) -> None:
    path = medmnist(tmp_path / "rgb.npz", {"train": 2}, shape=(28, 28, 3))
    assert next(iter(load(request(path)))).image.mode == "RGB"
    path = medmnist(tmp_path / "one.npz", {"train": 2}, shape=(28, 28, 1))
    assert next(iter(load(request(path)))).image.mode == "L"


def test_missing_keys_are_listed(tmp_path: Path) -> None:
    path = make_npz(tmp_path / "odd.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.zeros(2))
    with pytest.raises(DataError) as caught:
        load(request(path))
    message = str(caught.value.message)
    assert "x, y" in message and "train_images" in message and "train_labels" in message
    assert "MedMNIST layout" in caught.value.hint
    path = medmnist(tmp_path / "train_only.npz", {"train": 2})
    with pytest.raises(DataError, match="val_images"):
        load(request(path, split="val"))


@pytest.mark.parametrize(
    ("images", "labels", "problem"),
    [
        (np.zeros((2, 8, 8), np.float32), np.zeros((2, 1), np.uint8), "dtype float32"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 1), np.uint8), "shape"),
        (np.zeros((2, 8, 8, 5), np.uint8), np.zeros((2, 1), np.uint8), "shape"),
        (np.zeros((2, 8, 8), np.uint8), np.zeros((3, 1), np.uint8), "for 2 images"),
        (np.zeros((2, 8, 8), np.uint8), np.zeros((2, 14), np.uint8), "multi-label"),
        (np.zeros((2, 8, 8), np.uint8), np.zeros((2, 1), np.float64), "integers"),
        (np.zeros((2, 8, 8), np.uint8), -np.ones((2, 1), np.int64), "negative"),
    ],
)
def test_wrong_arrays_are_data_errors(
    tmp_path: Path, images: np.ndarray, labels: np.ndarray, problem: str
) -> None:
    path = make_npz(tmp_path / "bad.npz", train_images=images, train_labels=labels)
    with pytest.raises(DataError, match=problem):
        load(request(path))


def test_bad_options_are_data_errors(tmp_path: Path) -> None:
    path = medmnist(tmp_path / "scans.npz", {"train": 3})
    with pytest.raises(DataError, match="split"):
        load(request(path, split="training"))
    with pytest.raises(DataError, match="names only 2 classes"):
        load(request(path, class_names=["a", "b"]))
    with pytest.raises(DataError, match="list of strings"):
        load(request(path, class_names="a,b,c"))


def test_files_that_are_not_npz(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("not a zip archive")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load(request(text))
    single = tmp_path / "single.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros((2, 8, 8), np.uint8))  # an .npy under an .npz name
    with pytest.raises(DataError, match="single array"):
        load(request(single))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, train_images=np.array([{"a": 1}], dtype=object), train_labels=[[0]])
    with pytest.raises(DataError, match="cannot be read"):
        load(request(pickled))
    other = tmp_path / "scan.csv"
    other.write_text("1,2")
    with pytest.raises(DataError, match=r"not a folder, an \.npz, a DICOM or a NIfTI"):
        load(request(other))
    with pytest.raises(DataError, match="does not exist"):
        load(request(tmp_path / "missing.npz"))


@pytest.mark.realdata("pneumoniamnist/pneumoniamnist.npz")
def test_real_pneumoniamnist(pneumonia_npz: Path) -> None:
    items = list(load(request(pneumonia_npz)))
    assert len(items) == 4708
    assert all(isinstance(item, Sample) for item in items)
    assert Counter(item.label for item in items) == {"normal": 1214, "pneumonia": 3494}
    assert items[0].image.size == (28, 28) and items[0].image.mode == "L"
    assert len(list(load(request(pneumonia_npz, split="val")))) == 524
    assert len(list(load(request(pneumonia_npz, split="all")))) == 4708 + 524 + 624
