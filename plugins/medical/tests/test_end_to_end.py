"""A tiny medical run from a real NIfTI volume to DICOM files, through the aigc-run CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pydicom

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")
ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"


def test_nifti_volume_in_synthetic_dicom_out(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_HOME"] = str(tmp_path / "home")
    out = tmp_path / "out"
    sets = ["train.steps=2", "train.batch_size=4", "model.width=8", "sample.count=4",
            "data.image_size=16", "data.holdout=0", "output.writer=dicom",
            f"output.folder={out}", "data.options.slice_axis=coronal"]  # fmt: skip
    args = [AIGC_RUN, "scenario", "medical", "--quiet", "--data", str(ANATOMICAL)]
    for s in sets:
        args += ["--set", s]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "data: 41 images 1x16x16" in done.stdout  # 41 coronal slices, none empty
    written = sorted(out.rglob("*.dcm"))
    assert len(written) >= 4
    for path in written:
        ds = pydicom.dcmread(path)
        assert "SYNTHETIC" in ds.ImageType and not str(ds.PatientName)
        assert ds.pixel_array.shape == (16, 16)


# pydicom's own sample files: two CTs (128 and 512 px) and MRs of 64 and 300 x 484 px in
# five encodings, each copied three times (a run holds out images only from 20 on). A run
# at 64 px resizes every one of them.
DICOM_FOLDER = {
    "ct": ["CT_small.dcm", "image_dfl.dcm"],
    "mr": ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
           "MR_small_expb.dcm", "MR_small_RLE.dcm", "examples_overlay.dcm"],
}  # fmt: skip


def test_a_dicom_folder_at_64_px_goes_end_to_end(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    for label, names in DICOM_FOLDER.items():
        (tmp_path / "scans" / label).mkdir(parents=True)
        for name in names:
            for copy in "abc":
                target = tmp_path / "scans" / label / f"{copy}-{name}"
                shutil.copy(str(get_testdata_file(name)), target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_HOME"] = str(tmp_path / "home")
    out = tmp_path / "out"
    sets = ["data.image_size=64", "data.holdout=0.3", "train.steps=3", "train.batch_size=4",
            "sample.count=4", "evaluate.samples=8", "output.writer=dicom",
            f"output.folder={out}"]  # fmt: skip
    args = [AIGC_RUN, "scenario", "medical", "--quiet", "--data", str(tmp_path / "scans")]
    for s in sets:
        args += ["--set", s]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "data: 24 images 1x64x64" in done.stdout
    assert "evaluation: " in done.stdout and "fid:domain" in done.stdout
    written = sorted(out.rglob("*.dcm"))  # accepted in samples/, the rest in rejected/
    assert len(written) >= 4
    for path in written:
        ds = pydicom.dcmread(path)
        assert "SYNTHETIC" in ds.ImageType
        assert ds.pixel_array.shape == (64, 64)  # the generated size, kept
    assert (out / "report.html").is_file()
