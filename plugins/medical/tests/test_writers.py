"""The dicom writer: written files read back with pydicom carry nothing from any patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.data import get_testdata_file

from aigc_medical.loaders import load
from aigc_medical.plugin import register_sample_writers
from aigc_run import DataRequest, Sample

IDENTIFIERS = ("PatientName", "PatientID", "PatientBirthDate")
UIDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")


def _writer():  # type: ignore[no-untyped-def]
    (writer,) = [w for w in register_sample_writers() if w.name == "dicom"]
    return writer


def test_written_dicom_has_no_patient_data_fresh_uids_and_says_synthetic(tmp_path: Path) -> None:
    source_path = Path(str(get_testdata_file("examples_overlay.dcm")))
    source = pydicom.dcmread(source_path)
    assert all(str(source.get(k, "")) for k in IDENTIFIERS)  # the source does carry them
    request = DataRequest(path=source_path, options={}, image_size=32, channels=1, seed=0)
    (scan,) = [x for x in load(request) if isinstance(x, Sample)]
    pixels = torch.from_numpy(np.asarray(scan.image.resize((32, 32))).copy())[None]
    batch = torch.stack([pixels, 255 - pixels])  # 2 x 1 x 32 x 32 uint8
    names = _writer().write(tmp_path, ["pneumonia/0000007", "normal/0000008"], batch)
    assert names == ["pneumonia/0000007.dcm", "normal/0000008.dcm"]

    written = [pydicom.dcmread(tmp_path / name) for name in names]
    raw = b"".join((tmp_path / name).read_bytes() for name in names)
    for ds, expected in zip(written, batch, strict=True):
        assert not any(str(ds.get(k, "")) for k in IDENTIFIERS)
        for keyword in UIDS:
            if keyword in source:
                assert str(source[keyword].value).encode() not in raw
        for keyword in (*IDENTIFIERS, "InstitutionName", "StudyDescription"):
            value = str(source.get(keyword, "")).encode()
            assert not value or value not in raw
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "SYNTHETIC"]
        assert ds.ConversionType == "SYN" and "SYNTHETIC" in ds.ImageComments
        assert ds.BurnedInAnnotation == "NO" and ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethod
        assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert np.array_equal(ds.pixel_array, expected[0].numpy())
    first, second = written
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID  # one series per output folder
    assert first.InstanceNumber == 7


def test_rgb_samples_are_written_as_rgb(tmp_path: Path) -> None:
    image = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    image[0, 0] = 200  # red
    (name,) = _writer().write(tmp_path, ["samples/0000000"], image)
    ds = pydicom.dcmread(tmp_path / name)
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.pixel_array[0, 0].tolist() == [200, 0, 0]
