"""The medical loader on broken files: images, DICOM, NIfTI and MedMNIST .npz. In a folder
each broken file is skipped with its own counted reason while good ones remain; a broken
.npz (one file, nothing else to use) is a DataError with a hint."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from aigc_medical.loaders import load
from aigc_run import DataError, DataRequest, Sample, Skipped

JPEG_LS = "1.2.840.10008.1.2.4.80"  # no decoder without pylibjpeg-libjpeg or pyjpegls
PRIVATE_SYNTAX = "1.2.3.4.5.6"  # a transfer syntax pydicom has never heard of


def _load(path: Path, **options: object) -> tuple[list[Sample], Counter[str]]:
    request = DataRequest(path=path, options=options, image_size=16, channels=1, seed=0)
    items = list(load(request))
    samples = [x for x in items if isinstance(x, Sample)]
    return samples, Counter(x.reason for x in items if isinstance(x, Skipped))


def _broken_scans(broken, folder: Path) -> dict[str, str]:
    """Every broken image, DICOM and NIfTI file in ``folder``: name -> reason."""
    expected = broken.broken_images(folder)
    for name in ("empty.dcm", "empty.nii", "empty.nii.gz"):
        broken.zero_bytes(folder / name)
        expected[name] = "empty file"
    broken.text_as_image(folder / "text.dcm")
    broken.dicom(folder / "no-pixels.dcm", pixels=False)
    broken.dicom(folder / "jpeg-ls.dcm", transfer_syntax=JPEG_LS)
    broken.dicom(folder / "private.dcm", transfer_syntax=PRIVATE_SYNTAX)
    broken.nifti(folder / "5d.nii.gz", (4, 4, 3, 2, 2))
    broken.nifti_bomb(folder / "bomb.nii")
    broken.dicom_bomb(folder / "bomb.dcm")
    truncated = broken.nifti(folder / "truncated.nii", (8, 8, 4))
    truncated.write_bytes(truncated.read_bytes()[:-100])
    return expected | {
        "text.dcm": "unreadable image",
        "no-pixels.dcm": "DICOM without pixel data",
        "jpeg-ls.dcm": "DICOM compression without a decoder",
        "private.dcm": "DICOM compression without a decoder",
        "5d.nii.gz": "NIfTI not 2-D, 3-D or 4-D",
        "bomb.nii": "image too large",
        "bomb.dcm": "unreadable image",  # pydicom checks the data's length first
        "truncated.nii": "unreadable image",
    }


def test_folder_of_scans(broken, tmp_path: Path, tally: Counter[str]) -> None:
    root = tmp_path / "data"
    expected = Counter(_broken_scans(broken, root / "normal").values())
    broken.unusual_images(root / "normal")
    broken.good(root / "lesion" / "a.png")
    broken.dicom(root / "lesion" / "b.dcm")
    broken.nifti(root / "lesion" / "4d.nii.gz", (8, 8, 3, 2))  # a time series: 2 x 3 slices
    (root / "normal" / "escape.png").symlink_to(broken.good(tmp_path / "elsewhere" / "x.png"))
    expected["path outside data folder"] += 1
    (root / "normal" / "alias.png").symlink_to(root / "lesion" / "a.png")  # inside: fine
    # a linked folder is not even walked into (Path.rglob does not follow links to folders)
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    samples, reasons = _load(root)
    assert reasons == expected
    assert Counter(s.label for s in samples) == {"normal": 5, "lesion": 1 + 1 + 6}
    tally["bad inputs tried"] += expected.total()
    tally["bad inputs tried: medical folder (images, DICOM, NIfTI)"] += expected.total()


def test_unusual_images_load_upright_in_grey(broken, tmp_path: Path) -> None:
    names = broken.unusual_images(tmp_path)
    samples, reasons = _load(tmp_path)  # flat: sorted by name
    assert not reasons
    got = {
        name: np.asarray(s.image, dtype=int) for name, s in zip(sorted(names), samples, strict=True)
    }
    red, blue = 76, 29  # their luminance (ITU-R 601-2)

    assert got["cmyk.jpg"].shape == (16, 32)
    assert abs(got["cmyk.jpg"][8, 4] - red) < 12 and abs(got["cmyk.jpg"][8, 28] - blue) < 12
    ramp = got["16bit.png"][8]
    assert ramp[0] == 0 and ramp[-1] == 255 and (np.diff(ramp) > 0).all()
    palette = got["palette.png"]  # the transparent half is background: black, as in a scan
    assert palette[8, 4] == 0 and palette[8, 28] == red
    exif = got["exif.jpg"]  # stored 48 x 24 lying down, shown upright
    assert exif.shape == (48, 24)
    assert abs(exif[6, 12] - red) < 12 and abs(exif[42, 12] - blue) < 12


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_malformed_exif_loads_as_stored(broken, tmp_path: Path, tally: Counter[str]) -> None:
    files = broken.malformed_exif_jpegs(tmp_path)
    samples, reasons = _load(tmp_path)
    assert not reasons and [s.image.size for s in samples] == [(40, 20)] * len(files)
    tally["bad inputs tried"] += len(files)
    tally["bad inputs tried: medical malformed EXIF"] += len(files)


@pytest.mark.parametrize(
    "name",
    [
        "empty.dcm",
        "no-pixels.dcm",
        "jpeg-ls.dcm",
        "private.dcm",
        "5d.nii.gz",
        "bomb.nii",
        "empty.nii",
    ],
)
def test_a_lone_broken_file_is_a_data_error(broken, tmp_path: Path, tally, name: str) -> None:
    _broken_scans(broken, tmp_path)
    with pytest.raises(DataError, match="none of the 1 scans") as caught:
        _load(tmp_path / name)
    assert caught.value.hint
    tally["bad inputs tried"] += 1
    tally["bad inputs tried: medical single DICOM / NIfTI file"] += 1


def test_folder_of_broken_scans_is_a_data_error(broken, tmp_path: Path, tally) -> None:
    expected = _broken_scans(broken, tmp_path)
    with pytest.raises(DataError, match=f"none of the {len(expected)} scans") as caught:
        _load(tmp_path)
    assert str(tmp_path) in caught.value.message and "class subfolders" in caught.value.hint
    tally["bad inputs tried"] += len(expected)
    tally["bad inputs tried: medical folder, all broken"] += len(expected)


IMAGES = np.zeros((4, 8, 8), np.uint8)
LABELS = np.zeros((4, 1), np.int64)
BAD_NPZ = {
    "float images": ({"train_images": IMAGES.astype(np.float32), "train_labels": LABELS},
                     "dtype float32, expected uint8"),
    "flat images": ({"train_images": IMAGES.reshape(4, 64), "train_labels": LABELS},
                    "expected N x H x W"),
    "5 channels": ({"train_images": np.zeros((4, 8, 8, 5), np.uint8), "train_labels": LABELS},
                   "expected N x H x W"),
    "no images": ({"train_images": IMAGES[:0], "train_labels": LABELS[:0]}, "expected N x H x W"),
    "float labels": ({"train_images": IMAGES, "train_labels": LABELS.astype(float)},
                     "expected integers"),
    "too few labels": ({"train_images": IMAGES, "train_labels": LABELS[:3]}, "for 4 images"),
    "multi-label": ({"train_images": IMAGES, "train_labels": np.zeros((4, 3), int)},
                    "multi-label"),
    "negative label": ({"train_images": IMAGES, "train_labels": -LABELS - 1}, "negative"),
    "no labels": ({"train_images": IMAGES}, "needs train_images and train_labels"),
    "pickled objects": ({"train_images": np.array([None] * 4), "train_labels": LABELS},
                        "cannot be read"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_npz_with_wrong_shapes_or_dtypes_is_a_data_error(
    broken, tmp_path: Path, tally: Counter[str], case: str
) -> None:
    arrays, says = BAD_NPZ[case]
    path = broken.npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=says) as caught:
        _load(path)
    assert caught.value.hint
    tally["bad inputs tried"] += 1
    tally["bad inputs tried: medical npz"] += 1


@pytest.mark.parametrize("kind", ["empty", "text", "bomb"])
def test_npz_that_is_no_archive_or_a_bomb_is_a_data_error(
    broken, tmp_path: Path, tally: Counter[str], kind: str
) -> None:
    path = tmp_path / "bad.npz"
    {"empty": broken.zero_bytes, "text": broken.text_as_image, "bomb": broken.npz_bomb}[kind](path)
    with pytest.raises(DataError, match=r"bad\.npz") as caught:
        _load(path)
    assert caught.value.hint
    tally["bad inputs tried"] += 1
    tally["bad inputs tried: medical npz"] += 1
