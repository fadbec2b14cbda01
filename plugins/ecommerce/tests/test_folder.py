from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigc_ecommerce.plugin import load_products
from aigc_run import ConfigError, DataError, DataRequest, Sample, Skipped

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


def _jpeg(
    path: Path, colour: tuple[int, int, int] = GREEN, size: tuple[int, int] = (48, 64)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG", quality=95)
    return path


def _corrupt_jpeg(path: Path) -> Path:
    """A real JPEG cut off halfway: the header reads, the pixels do not."""
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def _load(path: Path | None, image_size: int = 16, **options: object) -> list[Sample | Skipped]:
    request = DataRequest(path=path, options=options, image_size=image_size, channels=3, seed=0)
    return list(load_products(request))


def _split(items: list[Sample | Skipped]) -> tuple[list[Sample], Counter[str]]:
    samples = [x for x in items if isinstance(x, Sample)]
    reasons = Counter(x.reason for x in items if isinstance(x, Skipped))
    return samples, reasons


def _rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    return image.convert("RGB").getpixel(xy)  # type: ignore[return-value]


def _close(a: tuple[int, int, int], b: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


@pytest.fixture()
def class_folder(tmp_path: Path) -> Path:
    _jpeg(tmp_path / "Shoes" / "a.jpg", RED)
    _jpeg(tmp_path / "Shoes" / "nested" / "b.jpg", BLUE)
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # transparent red: must become white
    rgba.paste((0, 0, 255, 255), (5, 5, 15, 15))
    (tmp_path / "Dress").mkdir()
    rgba.save(tmp_path / "Dress" / "c.png")
    _corrupt_jpeg(tmp_path / "Dress" / "broken.jpg")
    (tmp_path / "Dress" / "notes.png").write_text("this is not a picture\n")
    (tmp_path / "Dress" / "readme.txt").write_text("hello\n")
    _jpeg(tmp_path / "Other" / "x.jpg")  # an excluded label by default
    (tmp_path / ".hidden").mkdir()
    _jpeg(tmp_path / ".hidden" / "y.jpg")
    return tmp_path


def test_class_subfolders_load_and_count_what_they_skip(class_folder: Path) -> None:
    samples, reasons = _split(_load(class_folder))
    assert sorted(s.label for s in samples) == ["Dress", "Shoes", "Shoes"]
    assert reasons == {"unreadable image": 2, "excluded label": 1, "not an image file": 1}
    assert all(s.image.mode == "RGB" for s in samples)


def test_transparent_png_is_composited_on_white(class_folder: Path) -> None:
    (dress,) = [s for s in _split(_load(class_folder))[0] if s.label == "Dress"]
    assert _rgb(dress.image, (1, 1)) == (255, 255, 255)
    assert _rgb(dress.image, (10, 10)) == (0, 0, 255)


def test_exif_rotated_jpeg_comes_out_upright(tmp_path: Path) -> None:
    stored = Image.new("RGB", (60, 30), RED)  # landscape as stored: red left, blue right
    stored.paste(BLUE, (30, 0, 60, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    (tmp_path / "Shirts").mkdir()
    stored.save(tmp_path / "Shirts" / "phone.jpg", "JPEG", exif=exif, quality=95)
    (sample,) = _split(_load(tmp_path))[0]
    assert sample.image.size == (30, 60)  # portrait, as the camera was held
    assert _close(_rgb(sample.image, (15, 5)), RED)  # the stored left side is now on top
    assert _close(_rgb(sample.image, (15, 55)), BLUE)


def test_other_modes_become_rgb(tmp_path: Path) -> None:
    (tmp_path / "Mixed").mkdir()
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(tmp_path / "Mixed" / "cmyk.jpg")
    Image.new("L", (20, 20), 128).save(tmp_path / "Mixed" / "grey.png")
    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 0  # colour 0 is transparent
    palette.save(tmp_path / "Mixed" / "palette.png", transparency=0)
    wide = Image.fromarray(np.full((20, 20), 65535, dtype=np.uint16))
    wide.save(tmp_path / "Mixed" / "sixteen.png")
    samples, reasons = _split(_load(tmp_path))
    assert not reasons
    by_item = dict(zip(["cmyk", "grey", "palette", "sixteen"], samples, strict=True))
    assert all(s.image.mode == "RGB" for s in samples)
    assert _close(_rgb(by_item["cmyk"].image, (10, 10)), (255, 0, 0))
    assert _rgb(by_item["grey"].image, (10, 10)) == (128, 128, 128)
    assert _rgb(by_item["palette"].image, (10, 10)) == (255, 255, 255)
    assert _rgb(by_item["sixteen"].image, (10, 10)) == (255, 255, 255)


def test_large_jpegs_are_decoded_at_reduced_scale(tmp_path: Path) -> None:
    _jpeg(tmp_path / "Big" / "a.jpg", size=(800, 1064))
    (sample,) = _split(_load(tmp_path, image_size=32))[0]
    assert sample.image.size == (100, 133)  # 1/8 scale: still >= 2 x 32 on the short side


def _csv_folder(root: Path, rows: list[str], files: dict[str, tuple[int, int, int]]) -> Path:
    for name, colour in files.items():
        _jpeg(root / "images" / name, colour)
    (root / "images.csv").write_text("image,sender_id,label,kids\n" + "\n".join(rows) + "\n")
    return root


def test_csv_layout_like_the_clothing_dataset(tmp_path: Path) -> None:
    _jpeg(tmp_path / "x.jpg")  # a real file just outside images/: still refused by "../"
    _csv_folder(
        tmp_path,
        rows=[
            "id1,1,T-Shirt,False",
            "id2,1,Not sure,False",
            "id3,2,Shoes,False",  # no file
            "../x.jpg,2,Shoes,False",
            "../../etc/passwd,2,Shoes,False",
            "id5,3,Dress,True",  # corrupt
            "id7.jpg,3,Shoes,False",  # with its extension
            "id1,1,T-Shirt,False",  # the same photo twice
            "id8,4,,False",  # no label
        ],
        files={"id1.jpg": RED, "id2.jpg": BLUE, "id6.jpg": RED, "id7.jpg": BLUE},
    )
    _corrupt_jpeg(tmp_path / "images" / "id5.jpg")
    _jpeg(tmp_path / "images" / "id8.jpg")
    items = _load(tmp_path)
    samples, reasons = _split(items)
    assert [s.label for s in samples] == ["T-Shirt", "Shoes"]
    assert _close(_rgb(samples[0].image, (5, 5)), RED)
    assert reasons == {
        "excluded label": 1,
        "file missing": 1,
        "path outside data folder": 2,
        "unreadable image": 1,
        "duplicate row": 1,
        "no label": 1,
        "no row in CSV": 1,  # id6.jpg
    }
    skipped = {x.item: x.reason for x in items if isinstance(x, Skipped)}
    assert skipped["images/id6.jpg"] == "no row in CSV"
    assert skipped["images.csv line 5: ../x.jpg"] == "path outside data folder"


def test_csv_options_override_the_guesses(tmp_path: Path) -> None:
    _jpeg(tmp_path / "pics" / "a.jpg", RED)
    _jpeg(tmp_path / "pics" / "b.jpg", BLUE)
    (tmp_path / "meta.csv").write_text("file;kind\na.jpg;Hat\nb.jpg;Other\n")
    (tmp_path / "notes.csv").write_text("nothing here\n")
    with pytest.raises(DataError, match="several index tables"):
        _load(tmp_path)
    samples, reasons = _split(
        _load(
            tmp_path,
            csv="meta.csv",
            image_column="file",
            label_column="kind",
            image_dir="pics",
            exclude_labels=[],
        )
    )
    assert [s.label for s in samples] == ["Hat", "Other"]
    assert not reasons
    with pytest.raises(DataError, match="no column 'label'"):
        _load(tmp_path, csv="meta.csv", label_column="label")


def test_a_csv_file_may_be_given_as_the_path(tmp_path: Path) -> None:
    _csv_folder(tmp_path, ["a,1,Hat,False"], {"a.jpg": RED})
    assert [s.label for s in _split(_load(tmp_path / "images.csv"))[0]] == ["Hat"]


def test_max_per_class_caps_each_label_in_order(tmp_path: Path) -> None:
    for i in range(5):
        _jpeg(tmp_path / "Hat" / f"{i}.jpg")
    _jpeg(tmp_path / "Cap" / "0.jpg")
    samples, reasons = _split(_load(tmp_path, max_per_class=2))
    assert Counter(s.label for s in samples) == {"Hat": 2, "Cap": 1}
    assert reasons == {"over max_per_class": 3}


def test_flat_folder_without_csv_is_unlabelled(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg")
    _jpeg(tmp_path / "b.jpg")
    assert [s.label for s in _split(_load(tmp_path))[0]] == ["", ""]


def test_loading_is_deterministic(class_folder: Path) -> None:
    def order() -> list[str]:
        return [x.item if isinstance(x, Skipped) else x.label for x in _load(class_folder)]

    assert order() == order()


def test_missing_or_empty_folders_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as missing:
        _load(tmp_path / "nope")
    assert "nope" in missing.value.message and missing.value.hint
    with pytest.raises(DataError, match="it is empty") as empty:
        _load(tmp_path)
    assert str(tmp_path) in empty.value.message and "class subfolders" in empty.value.hint


def test_a_folder_of_unusable_files_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "Shoes").mkdir()
    (tmp_path / "Shoes" / "a.png").write_text("not an image")
    (tmp_path / "Shoes" / "b.heic").write_bytes(b"\0" * 10)
    with pytest.raises(DataError, match="1 unreadable image") as err:
        _load(tmp_path)
    assert "1 not an image file" in err.value.message
    with pytest.raises(DataError, match="excluded label"):
        _csv_folder(tmp_path / "c", ["a,1,Other,False"], {"a.jpg": RED})
        _load(tmp_path / "c")


def test_unknown_or_bad_options_are_config_errors(tmp_path: Path) -> None:
    _jpeg(tmp_path / "Hat" / "a.jpg")
    with pytest.raises(ConfigError, match="max_per_clas"):
        _load(tmp_path, max_per_clas=3)
    with pytest.raises(ConfigError, match="exclude_labels"):
        _load(tmp_path, exclude_labels="Other")


def test_json_lines_with_attributes_and_label_spellings(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg", RED)
    _jpeg(tmp_path / "b.jpg", BLUE)
    _jpeg(tmp_path / "c.png", GREEN)
    _jpeg(tmp_path / "d.jpg", GREEN)
    lines = [
        '{"image": "a.jpg", "label": "T-Shirt", "colour": "red"}',
        '{"image": "b", "label": "  t-shirt ", "colour": "blue", "price": 9.5}',
        "not json at all",
        '{"image": "c.png", "label": "Dress\\u00a0 Long"}',
        '{"image": "/etc/passwd", "label": "Hat"}',
        '{"image": "d.jpg", "label": "OTHER"}',
        "",
    ]
    (tmp_path / "products.jsonl").write_text("\n".join(lines))
    items = _load(tmp_path)
    samples, reasons = _split(items)
    assert [s.label for s in samples] == ["T-Shirt", "T-Shirt", "Dress Long"]
    assert reasons == {"bad JSON line": 1, "path outside data folder": 1, "excluded label": 1}
    assert _close(_rgb(samples[1].image, (5, 5)), BLUE)


def test_product_feed_with_image_paths_urls_and_category_levels(tmp_path: Path) -> None:
    _jpeg(tmp_path / "img" / "sku1.jpg", RED)
    _jpeg(tmp_path / "img" / "sku2.jpg", BLUE)
    (tmp_path / "feed.csv").write_text(
        "id\ttitle\timage_link\tproduct_type\tcolor\n"
        "1\tRunner\timg/sku1.jpg\tApparel > Shoes > Sneakers\tred\n"
        "2\tSlacks\timg/sku2.jpg\tApparel > Pants\tblue\n"
        "3\tCap\thttps://shop.example/cap.jpg\tApparel > Hats\tgreen\n"
    )
    samples, reasons = _split(_load(tmp_path))
    assert [s.label for s in samples] == ["Apparel > Shoes > Sneakers", "Apparel > Pants"]
    assert reasons == {"image URL (not downloaded)": 1}
    leaf, _ = _split(_load(tmp_path / "feed.csv", category_level=-1))
    assert [s.label for s in leaf] == ["Sneakers", "Pants"]
    top, _ = _split(_load(tmp_path, category_level=1))
    assert [s.label for s in top] == ["Shoes", "Pants"]
    with pytest.raises(ConfigError, match="category_level"):
        _load(tmp_path, category_level="last")


def test_class_folder_names_are_normalised_and_merged(tmp_path: Path) -> None:
    _jpeg(tmp_path / "Shoes" / "a.jpg")
    _jpeg(tmp_path / "shoes " / "b.jpg")
    _jpeg(tmp_path / "not sure" / "c.jpg")  # excluded whatever its case
    samples, reasons = _split(_load(tmp_path))
    assert [s.label for s in samples] == ["Shoes", "Shoes"]
    assert reasons == {"excluded label": 1}


def test_grey_with_alpha_and_16_bit_rgb_sources(tmp_path: Path) -> None:
    (tmp_path / "Mixed").mkdir()
    la = Image.new("LA", (20, 20), (0, 0))  # black, fully transparent: white on the page
    la.paste((0, 255), (5, 5, 15, 15))  # an opaque black square
    la.save(tmp_path / "Mixed" / "la.png")
    deep = np.zeros((20, 20), dtype=np.uint16)
    deep[:, 10:] = 4000  # a 12-bit scan in a 16-bit file: stretched, not clipped at 255
    Image.fromarray(deep).save(tmp_path / "Mixed" / "deep.tif")
    samples, reasons = _split(_load(tmp_path))
    assert not reasons
    deep_rgb, la_rgb = samples
    assert _rgb(la_rgb.image, (1, 1)) == (255, 255, 255)
    assert _rgb(la_rgb.image, (10, 10)) == (0, 0, 0)
    assert _rgb(deep_rgb.image, (15, 5))[0] > 200 and _rgb(deep_rgb.image, (2, 5)) == (0, 0, 0)


def test_classes_keeps_only_the_named_labels(tmp_path: Path) -> None:
    _csv_folder(
        tmp_path,
        ["a,1,Shoes,False", "b,1,pants,False", "c,2,Hat,False", "d,2,Other,False"],
        {"a.jpg": RED, "b.jpg": BLUE, "c.jpg": GREEN, "d.jpg": GREEN},
    )
    samples, reasons = _split(_load(tmp_path, classes=["shoes", "Pants"]))
    assert [s.label for s in samples] == ["Shoes", "pants"]  # the data's own spelling
    assert reasons == {"label not in classes": 1, "excluded label": 1}
    with pytest.raises(ConfigError, match="classes"):
        _load(tmp_path, classes="Shoes")
    with pytest.raises(DataError, match="label not in classes"):
        _load(tmp_path, classes=["Socks"])
