"""The ecommerce loader on broken files, in each of its layouts: class subfolders, a flat
folder with a CSV, JSON lines and a product feed. Each broken input is skipped with its own
counted reason while good ones remain; when none remain, a DataError with a hint."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigc_ecommerce.folder import load_folder
from aigc_run import DataError, Sample, Skipped

OUTSIDE = "path outside data folder"


def _load(root: Path, **options: object) -> tuple[list[Sample], Counter[str]]:
    items = list(load_folder(root, options, image_size=16))
    samples = [x for x in items if isinstance(x, Sample)]
    return samples, Counter(x.reason for x in items if isinstance(x, Skipped))


def _secret(broken, tmp_path: Path) -> Path:
    """A good image outside the data folder: the target of escaping symlinks."""
    return broken.good(tmp_path / "elsewhere" / "secret.png")


def test_class_subfolders(broken, tmp_path: Path, tally: Counter[str]) -> None:
    root = tmp_path / "data"
    expected = Counter(broken.broken_images(root / "Shoes").values())
    broken.unusual_images(root / "Shoes")
    for i in range(2):
        broken.good(root / "Dress" / f"{i}.png", seed=i)
    (root / "Shoes" / "escape.png").symlink_to(_secret(broken, tmp_path))
    (root / "Linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    expected[OUTSIDE] += 2
    (root / "Shoes" / "alias.png").symlink_to(root / "Dress" / "0.png")  # inside: fine

    samples, reasons = _load(root)
    assert reasons == expected
    assert Counter(s.label for s in samples) == {"Shoes": 5, "Dress": 2}
    _count(tally, "class subfolders", expected)


def _rows(broken, tmp_path: Path) -> tuple[Path, list[tuple[str, str]], Counter[str]]:
    """A data folder with images/ and the (image, label) rows that index it, and the
    reasons the loader must give for the rows and files it skips."""
    root = tmp_path / "data"
    images = root / "images"
    broken_names = broken.broken_images(images)
    expected = Counter(broken_names.values())
    rows = [(name, "Shoes") for name in broken_names]
    rows += [(name, "Dress") for name in broken.unusual_images(images)]
    (images / "escape.png").symlink_to(_secret(broken, tmp_path))
    rows += [
        ("escape.png", "Shoes"),  # a symlink out of the folder
        ("../elsewhere/secret.png", "Shoes"),
        (str(tmp_path / "elsewhere" / "secret.png"), "Shoes"),
        ("C:\\Windows\\secret.png", "Shoes"),
        ("ghost.png", "Shoes"),
        ("good.png", "Spaceship"),  # not among data.options.classes
    ]
    broken.good(images / "good.png")
    broken.good(images / "unlisted.png")
    expected.update({OUTSIDE: 4, "file missing": 1, "label not in classes": 1,
                     "no row in CSV": 1})  # fmt: skip
    return root, rows, expected


@pytest.mark.parametrize("layout", ["csv", "jsonl", "feed"])
def test_index_tables(broken, tmp_path: Path, tally: Counter[str], layout: str) -> None:
    root, rows, expected = _rows(broken, tmp_path)
    if layout == "csv":
        lines = ["image,label", *(f'"{image}",{label}' for image, label in rows)]
        lines += ["good.png"]  # a short row: no label
        expected["no label"] += 1
        (root / "images.csv").write_text("\n".join(lines) + "\n")
    elif layout == "jsonl":
        lines = [json.dumps({"file": image, "category": label}) for image, label in rows]
        lines += ['{"file": "good.png", "categ', "[1, 2]"]  # a cut line, not an object
        expected["bad JSON line"] += 2
        (root / "products.jsonl").write_text("\n".join(lines) + "\n")
    else:  # a Google Merchant feed: the label is the last level of product_type
        lines = ["id,title,image_link,product_type"]
        lines += [f'{i},x,"{image}",Apparel > {label}' for i, (image, label) in enumerate(rows)]
        lines += ["99,x,https://example.com/a.jpg,Apparel > Shoes"]
        expected["image URL (not downloaded)"] += 1
        (root / "feed.csv").write_text("\n".join(lines) + "\n")
    options = {"classes": ["Shoes", "Dress"]}
    if layout == "feed":
        options["category_level"] = -1
    samples, reasons = _load(root, **options)
    assert reasons == expected
    assert Counter(s.label for s in samples) == {"Dress": 4}
    _count(tally, f"index table ({layout})", expected)


def test_unusual_images_load_upright_in_their_colours(broken, tmp_path: Path) -> None:
    names = broken.unusual_images(tmp_path)
    samples, reasons = _load(tmp_path)  # flat: sorted by name
    assert not reasons
    got = {name: s.image for name, s in zip(sorted(names), samples, strict=True)}
    assert all(image.mode == "RGB" for image in got.values())

    cmyk = got["cmyk.jpg"]
    assert cmyk.size == (32, 16)
    assert _near(cmyk.getpixel((4, 8)), (255, 0, 0)) and _near(cmyk.getpixel((28, 8)), (0, 0, 255))
    ramp = np.asarray(got["16bit.png"])[8, :, 0].astype(int)
    assert got["16bit.png"].size == (32, 16) and ramp[0] == 0 and ramp[-1] == 255
    assert (np.diff(ramp) > 0).all()  # scaled down from 16 bits, not clipped at 255
    palette = got["palette.png"]  # the transparent half on the catalogue's white
    assert palette.getpixel((4, 8)) == (255, 255, 255) and palette.getpixel((28, 8)) == (255, 0, 0)
    exif = got["exif.jpg"]  # stored 48 x 24 lying down, shown upright
    assert exif.size == (24, 48)
    assert _near(exif.getpixel((12, 6)), (255, 0, 0)) and _near(
        exif.getpixel((12, 42)), (0, 0, 255)
    )


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_malformed_exif_loads_as_stored(broken, tmp_path: Path, tally: Counter[str]) -> None:
    files = broken.malformed_exif_jpegs(tmp_path)
    samples, reasons = _load(tmp_path)
    assert not reasons and [s.image.size for s in samples] == [(40, 20)] * len(files)
    _count(tally, "malformed EXIF", Counter(f.name for f in files))


def test_csv_with_missing_columns_is_a_clear_error(tmp_path: Path, tally: Counter[str]) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    for header, missing in (("image", "label"), ("label", "image"), ("colour,price", "image")):
        (tmp_path / "images.csv").write_text(f"{header}\na.png\n")
        with pytest.raises(DataError, match=f"no {missing} column") as caught:
            _load(tmp_path)
        assert f"data.options.{missing}_column" in caught.value.hint
    tally["bad inputs tried"] += 3
    tally["bad inputs tried: ecommerce index table (missing columns)"] += 3


@pytest.mark.parametrize("layout", ["class subfolders", "flat", "csv"])
def test_nothing_usable_is_a_data_error_naming_the_reasons(
    broken, tmp_path: Path, tally: Counter[str], layout: str
) -> None:
    root = tmp_path / "data"
    folder = root / "Shoes" if layout == "class subfolders" else root / "images"
    if layout == "flat":
        folder = root
    expected = broken.broken_images(folder)
    if layout == "csv":
        rows = [f"{name},Shoes" for name in expected] + ["../x.png,Shoes"]
        (root / "images.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as caught:
        _load(root)
    message = caught.value.message
    assert str(root) in message and caught.value.hint
    for reason, n in Counter(expected.values()).items():
        assert f"{n} {reason}" in message
    _count(tally, f"all broken ({layout})", expected)


def _near(pixel: object, colour: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))  # type: ignore[call-overload]


def _count(tally: Counter[str], loader: str, inputs: Counter[str] | dict[str, str]) -> None:
    n = sum(inputs.values()) if isinstance(inputs, Counter) else len(inputs)
    tally["bad inputs tried"] += n
    tally[f"bad inputs tried: ecommerce {loader}"] += n
