"""DICOM and NIfTI loading, on the real files pydicom and nibabel ship in their wheels."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from aigc_medical.dicom import series_order
from aigc_medical.loaders import load
from aigc_run import DataError, DataRequest, Sample, Skipped

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"


def _testfile(name: str) -> Path:
    found = get_testdata_file(name)
    assert found is not None, f"pydicom no longer ships {name}"
    return Path(str(found))


def _load(path: Path, **options: object) -> tuple[list[Sample], Counter[str]]:
    request = DataRequest(path=path, options=options, image_size=32, channels=1, seed=0)
    items = list(load(request))
    samples = [x for x in items if isinstance(x, Sample)]
    return samples, Counter(x.reason for x in items if isinstance(x, Skipped))


def _pixels(sample: Sample) -> np.ndarray:
    return np.asarray(sample.image, dtype=np.float64)


def test_ct_is_rescaled_to_hounsfield_units_and_windowed() -> None:
    path = _testfile("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    (soft,), _ = _load(path)  # no window in the file: CT's default, soft tissue 40 / 400
    assert soft.image.mode == "L" and soft.image.size == (128, 128)
    expected = ((hu - (40 - 200)) / 400 * 255).clip(0, 255)
    assert np.abs(_pixels(soft) - expected).max() <= 1
    (lung,), _ = _load(path, window="lung")
    assert not np.array_equal(_pixels(lung), _pixels(soft))
    (custom,), _ = _load(path, window=[0, 2000])
    assert np.abs(_pixels(custom) - ((hu + 1000) / 2000 * 255).clip(0, 255)).max() <= 1


def test_mr_uses_the_files_own_window() -> None:
    path = _testfile("MR_small.dcm")
    ds = pydicom.dcmread(path)
    centre, width = float(ds.WindowCenter), float(ds.WindowWidth)
    (mr,), _ = _load(path)
    expected = ((ds.pixel_array - (centre - width / 2)) / width * 255).clip(0, 255)
    assert np.abs(_pixels(mr) - expected).max() <= 1
    (minmax,), _ = _load(path, window="minmax")
    assert _pixels(minmax).min() == 0 and _pixels(minmax).max() == 255


def test_monochrome1_is_inverted() -> None:
    path = _testfile("6154")  # a CR image stored as MONOCHROME1 (high value = dark)
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    (scan,), _ = _load(path, window="minmax")
    raw = ds.pixel_array
    assert _pixels(scan)[np.unravel_index(raw.argmax(), raw.shape)] == 0  # highest is black
    assert _pixels(scan)[np.unravel_index(raw.argmin(), raw.shape)] == 255


def test_multi_frame_file_gives_one_image_per_frame() -> None:
    path = _testfile("rtdose.dcm")
    frames, _ = _load(path, window="minmax")
    assert len(frames) == pydicom.dcmread(path).NumberOfFrames == 15
    assert all(f.image.size == (10, 10) for f in frames)


def test_dicom_series_in_class_folders_and_unreadable_files(tmp_path: Path) -> None:
    series = Path(_testfile("6154")).parents[2] / "98892001" / "CT5N"  # 5 slices, no suffix
    shutil.copytree(series, tmp_path / "ct")
    (tmp_path / "ct" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"junk")
    (tmp_path / "mr").mkdir()
    shutil.copy(_testfile("MR_small.dcm"), tmp_path / "mr" / "a.dcm")
    samples, reasons = _load(tmp_path)
    assert Counter(s.label for s in samples) == {"ct": 5, "mr": 1}
    assert reasons == {"unreadable image": 1}
    ordered = series_order(sorted(series.iterdir(), reverse=True))
    numbers = [int(pydicom.dcmread(p).InstanceNumber) for p in ordered]
    assert numbers == sorted(numbers)  # slices come in their order in the series
    flat, _ = _load(tmp_path, class_folders=False)
    assert {s.label for s in flat} == {""}


def test_nifti_volume_is_sliced_along_the_chosen_axis() -> None:
    assert ANATOMICAL.is_file(), "nibabel no longer ships tests/data/anatomical.nii"
    shape = nib.as_closest_canonical(nib.load(ANATOMICAL)).shape  # RAS: 33 x 41 x 25
    for axis, count, size in (("axial", shape[2], (shape[0], shape[1])),
                              ("sagittal", shape[0], (shape[1], shape[2])),
                              (1, shape[1], (shape[0], shape[2]))):  # fmt: skip
        samples, reasons = _load(ANATOMICAL, slice_axis=axis)
        assert len(samples) + reasons["empty slice"] == count
        assert all(s.image.size == (size[0], size[1]) for s in samples)
    samples, _ = _load(ANATOMICAL)
    everything = np.stack([_pixels(s) for s in samples])
    assert everything.max() == 255 and np.percentile(everything, 99.9) >= 250


def test_empty_slices_are_skipped_and_counted(tmp_path: Path) -> None:
    volume = np.zeros((16, 16, 10), dtype=np.float32)
    volume[4:12, 4:12, 3:7] = np.random.default_rng(0).uniform(100, 200, (8, 8, 4))
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "v.nii.gz")
    samples, reasons = _load(tmp_path / "v.nii.gz")
    assert len(samples) == 4 and reasons == {"empty slice": 6}
    everything = np.stack([_pixels(s) for s in samples])
    assert everything.min() == 0 and everything.max() == 255  # percentile-stretched
    samples, reasons = _load(tmp_path / "v.nii.gz", min_foreground=0)
    assert len(samples) == 4  # all-zero slices stay empty even at 0


def test_bad_options_and_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="window"):
        _load(_testfile("CT_small.dcm"), window="lungs")
    with pytest.raises(DataError, match="slice_axis"):
        _load(ANATOMICAL, slice_axis="up")
    (tmp_path / "bad.nii").write_bytes(b"not a nifti file at all")
    with pytest.raises(DataError, match="none of the 1 scans"):
        _load(tmp_path / "bad.nii")


def test_colour_and_palette_dicom_become_luminance() -> None:
    for name in ("examples_rgb_color.dcm", "examples_palette.dcm"):
        path = _testfile(name)
        ds = pydicom.dcmread(path)
        (scan,), _ = _load(path, window="minmax")
        assert scan.image.mode == "L" and scan.image.size == (ds.Columns, ds.Rows)
        assert _pixels(scan).std() > 10  # a picture, not a flat or index image
