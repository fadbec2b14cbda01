"""A corpus of broken and unusual image files, made by the tests themselves.

``broken`` writes one file per call into any folder and returns its path. Nothing here is
downloaded: each file is the smallest one that shows the problem. The decompression bombs
only *declare* 50,000 x 50,000 pixels; their data is a few bytes, so making them is cheap
and a loader that decodes them anyway fails loudly (a truncated image) instead of quietly.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BOMB_SIDE = 50_000
RED, BLUE = (255, 0, 0), (0, 0, 255)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


#: The broken image files every image loader meets, and the reason each is skipped with.
BROKEN_IMAGES = {
    "empty.jpg": "empty file",
    "empty.png": "empty file",
    "text.jpg": "unreadable image",
    "text.png": "unreadable image",
    "truncated.jpg": "unreadable image",
    "truncated.png": "unreadable image",
    "bomb.png": "image too large",
    "bomb.jpg": "image too large",
}
UNUSUAL_IMAGES = ("cmyk.jpg", "16bit.png", "palette.png", "exif.jpg")


class BrokenFiles:
    """Writers of broken and of valid-but-unusual inputs. Each returns the path written."""

    def broken_images(self, folder: Path) -> dict[str, str]:
        """Write every file of BROKEN_IMAGES into ``folder``; returns BROKEN_IMAGES."""
        makers = {"empty": self.zero_bytes, "text": self.text_as_image,
                  "truncated.jpg": self.truncated_jpeg, "truncated.png": self.truncated_png,
                  "bomb.png": self.bomb_png, "bomb.jpg": self.bomb_jpeg}  # fmt: skip
        for name in BROKEN_IMAGES:
            (makers.get(name) or makers[name.split(".")[0]])(folder / name)
        return dict(BROKEN_IMAGES)

    def unusual_images(self, folder: Path) -> tuple[str, ...]:
        """Write the valid-but-unusual images of UNUSUAL_IMAGES into ``folder``."""
        makers = (self.cmyk_jpeg, self.png_16bit, self.palette_transparent_png,
                  self.exif_rotated_jpeg)  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        for name, make in zip(UNUSUAL_IMAGES, makers, strict=True):
            make(folder / name)
        return UNUSUAL_IMAGES

    # -- broken: must be skipped, or a clear error when nothing else is left ---------------

    def zero_bytes(self, path: Path) -> Path:
        return _write(path, b"")

    def text_as_image(self, path: Path) -> Path:
        return _write(path, b"this is not an image, whatever its name says\n" * 20)

    def truncated_jpeg(self, path: Path) -> Path:
        whole = _encode(_noise(64, 48), "JPEG", quality=95)
        return _write(path, whole[: len(whole) // 2])

    def truncated_png(self, path: Path) -> Path:
        whole = _encode(_noise(64, 48), "PNG")
        return _write(path, whole[: len(whole) // 2])

    def bomb_png(self, path: Path, side: int = BOMB_SIDE) -> Path:
        """A PNG whose header says side x side RGB, with a few compressed rows of data."""
        header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
        rows = zlib.compress(b"\x00" * (1 + 3 * side) * 4, 9)
        body = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")
        return _write(path, b"\x89PNG\r\n\x1a\n" + body)

    def bomb_jpeg(self, path: Path, side: int = BOMB_SIDE) -> Path:
        """A small JPEG whose frame header (SOF0) is rewritten to say side x side."""
        data = bytearray(_encode(_noise(16, 16), "JPEG"))
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)  # height, width
        return _write(path, bytes(data))

    def named_pipe(self, path: Path) -> Path:
        """A FIFO: opening it for reading blocks until someone writes, that is, forever."""
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        return path

    # -- valid but unusual: must load, upright and in the right colours ---------------------

    def cmyk_jpeg(self, path: Path) -> Path:
        """Red (0 cyan, full magenta and yellow) on the left half, blue on the right."""
        image = Image.new("CMYK", (32, 16), (0, 255, 255, 0))
        image.paste((255, 255, 0, 0), (16, 0, 32, 16))
        image.save(path, "JPEG", quality=100)
        return path

    def png_16bit(self, path: Path) -> Path:
        """A 16-bit greyscale ramp from 0 to 65535 along x (32 x 16)."""
        ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (16, 1))
        Image.fromarray(ramp).save(path, "PNG")
        return path

    def palette_transparent_png(self, path: Path) -> Path:
        """Palette image: the left half transparent (index 0), the right half opaque red."""
        image = Image.new("P", (32, 16), 0)
        image.putpalette([0, 255, 0, *RED] + [0, 0, 0] * 254)  # index 0 is green: hidden
        image.paste(1, (16, 0, 32, 16))
        image.save(path, "PNG", transparency=0)
        return path

    def exif_rotated_jpeg(self, path: Path) -> Path:
        """Stored 48 wide x 24 high with a red left half, EXIF orientation 6 (turn 90° right):
        shown upright it is 24 wide x 48 high with the red half at the top."""
        image = Image.new("RGB", (48, 24), BLUE)
        image.paste(RED, (0, 0, 24, 24))
        exif = Image.Exif()
        exif[0x0112] = 6
        image.save(path, "JPEG", quality=100, exif=exif)
        return path

    def malformed_exif_jpegs(self, folder: Path) -> list[Path]:
        """Good 40 x 20 photos whose EXIF is broken: an orientation of 9 (there are 8), a
        block cut in half, and garbage. Read as stored: the pixels are fine."""
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (40, 20), RED)
        wrong = Image.Exif()
        wrong[0x0112] = 9
        turned = Image.Exif()
        turned[0x0112] = 6
        blocks = {
            "orientation-9.jpg": wrong.tobytes(),
            "cut-exif.jpg": turned.tobytes()[: len(turned.tobytes()) // 2 + 3],
            "garbage-exif.jpg": b"Exif\0\0" + b"\xde\xad\xbe\xef" * 8,
        }
        for name, block in blocks.items():
            image.save(folder / name, exif=block)
        return [folder / name for name in blocks]

    # -- medical formats ---------------------------------------------------------------------

    def dicom(self, path: Path, pixels: bool = True, transfer_syntax: str = "") -> Path:
        """A 16 x 16 MONOCHROME2 scan (a ramp); without its pixel data, or with its pixel data
        said to be in ``transfer_syntax`` (a compressed one: a few garbage bytes, encapsulated)."""
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.encaps import encapsulate
        from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
        ds.Modality, ds.Rows, ds.Columns = "OT", 16, 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if pixels and transfer_syntax:
            ds.PixelData = encapsulate([b"\xff\xd8 not really compressed \xff\xd9"])
            ds["PixelData"].VR = "OB"
        elif pixels:
            ds.PixelData = np.tile(np.arange(16, dtype=np.uint16) * 256, (16, 1)).tobytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True, implicit_vr=False, little_endian=True)
        return path

    def dicom_bomb(self, path: Path) -> Path:
        """A good 16 x 16 DICOM whose header is rewritten to say 1,000 frames of 65,535 x
        65,535 pixels (8 TB), with the 512 bytes of pixel data it had."""
        import pydicom

        ds = pydicom.dcmread(self.dicom(path))
        ds.Rows, ds.Columns, ds.NumberOfFrames = 65_535, 65_535, 1000
        ds.save_as(path)
        return path

    def nifti(self, path: Path, shape: tuple[int, ...]) -> Path:
        """A NIfTI image of ``shape`` (random values), e.g. (8, 8, 3, 2) for a 4-D series."""
        import nibabel as nib

        values = np.random.default_rng(0).uniform(1, 100, shape).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(values, np.eye(4)), path)
        return path

    def nifti_bomb(self, path: Path) -> Path:
        """A NIfTI header saying 30,000 x 30,000 x 4 float32 voxels (14 GB; NIfTI-1 sides
        stop at 32,767), followed by 1 KiB of data."""
        import nibabel as nib

        header = nib.Nifti1Header()
        header.set_data_shape((30_000, 30_000, 4))
        header.set_data_dtype(np.float32)
        header.set_qform(np.eye(4), code=1)
        header["vox_offset"] = 352
        return _write(path, header.binaryblock + b"\0" * 4 + b"\1" * 1024)

    def npz(self, path: Path, **arrays: np.ndarray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
        return path

    def npz_bomb(self, path: Path) -> Path:
        """An .npz whose train_images header says 50,000 x 50,000 uint8, with no data."""
        import zipfile

        header = io.BytesIO()
        shape = {"descr": "|u1", "fortran_order": False, "shape": (BOMB_SIDE, BOMB_SIDE)}
        np.lib.format.write_array_header_1_0(header, shape)
        labels = io.BytesIO()
        np.save(labels, np.zeros((BOMB_SIDE, 1), np.uint8))
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("train_images.npy", header.getvalue())
            archive.writestr("train_labels.npy", labels.getvalue())
        return path

    # -- good -------------------------------------------------------------------------------

    def good(self, path: Path, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise(24, 24, seed)).save(path)
        return path


def _noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _encode(pixels: np.ndarray, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **params)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def broken() -> BrokenFiles:
    return BrokenFiles()
