"""A tiny medical run from a real NIfTI volume to DICOM files, through the aigc-run CLI."""

from __future__ import annotations

import os
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
