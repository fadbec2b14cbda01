"""NIfTI volumes in: 2D slices along one axis, intensity-normalised per volume.

The volume is first turned to the closest canonical orientation (RAS), so ``axial``,
``coronal`` and ``sagittal`` mean the same for every file whatever its affine. Intensities
are normalised per volume, not per slice, so a slice through the edge of the body stays
darker than one through its middle: the (1st, 99th) percentile of the non-zero voxels is
stretched to 0..255. Slices with less than ``min_foreground`` of their pixels above 5% of
that range are empty (air above the head, padding) and skipped with a reason.

nibabel is imported inside the functions: importing the plugin must stay cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aigc_medical import reasons
from aigc_run import DataError

AXES = {"sagittal": 0, "coronal": 1, "axial": 2}  # in RAS: x (left-right), y, z (foot-head)
DEFAULT_PERCENTILES = (1.0, 99.0)
DEFAULT_MIN_FOREGROUND = 0.05
FOREGROUND_LEVEL = 0.05  # a pixel is foreground above 5% of the normalised range
SUFFIXES = (".nii", ".nii.gz")
#: The most voxels read from one file (1 GiB as float32; a 512 x 512 x 1024 CT fits). The
#: header is checked first, so a file that only claims more is skipped without allocating.
MAX_VOXELS = 2**28


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def check_options(options: Mapping[str, Any]) -> tuple[int, tuple[float, float], float]:
    """(axis, percentiles, min_foreground) from ``data.options``; a bad one is a DataError."""
    axis = options.get("slice_axis", "axial")
    if axis not in AXES and axis not in (0, 1, 2):
        raise DataError(
            f"data.options.slice_axis: {axis!r} is not an axis",
            "use axial, coronal, sagittal, or 0, 1, 2 (axes of the RAS-oriented volume)",
        )
    low, high = options.get("percentiles", DEFAULT_PERCENTILES)
    if not 0 <= low < high <= 100:
        raise DataError(
            f"data.options.percentiles: [{low}, {high}] is not 0 <= low < high <= 100",
            "e.g. percentiles = [1, 99]",
        )
    share = options.get("min_foreground", DEFAULT_MIN_FOREGROUND)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        raise DataError(f"data.options.min_foreground: must be in [0, 1) (got {share!r})")
    return AXES.get(axis, axis), (float(low), float(high)), float(share)


def read_slices(
    path: Path, axis: int, percentiles: tuple[float, float], min_foreground: float
) -> Iterator[tuple[int, Image.Image | None]]:
    """Yield (slice index, 8-bit image) per slice, with None for an empty slice.

    Raises ``ValueError`` when the file is not a readable NIfTI image, ``reasons.Unusable``
    when it has over 4 dimensions or over ``MAX_VOXELS``. A 4D file (a time series) gives the
    slices of each of its volumes in turn, numbered on.
    """
    import nibabel as nib

    try:
        image = nib.load(path)  # the header only
    except Exception as e:  # ImageFileError, a wrong header ...
        raise ValueError(f"{type(e).__name__}: {e}") from e
    _check_header(path, image)
    try:
        image = nib.as_closest_canonical(image)
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as e:  # ImageFileError, truncated gzip, a wrong header ...
        raise ValueError(f"{type(e).__name__}: {e}") from e
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim not in (3, 4):
        raise ValueError(f"a {data.ndim}D image; expected a 2D, 3D or 4D volume")
    volumes = [data] if data.ndim == 3 else [data[..., t] for t in range(data.shape[3])]
    number = 0
    for volume in volumes:
        low, high = _range(volume, percentiles)
        for index in range(volume.shape[axis]):
            plane = np.take(volume, index, axis=axis)
            scaled = ((plane - low) / (high - low)).clip(0.0, 1.0) if high > low else plane * 0
            if (scaled > FOREGROUND_LEVEL).mean() < max(min_foreground, 1e-9):
                yield number, None
            else:
                # (first axis, second axis) -> rows top to bottom: anterior/superior up
                pixels = (np.rot90(scaled) * 255.0 + 0.5).astype(np.uint8)
                yield number, Image.fromarray(pixels)
            number += 1


def _check_header(path: Path, image: Any) -> None:
    """Refuse what the header says before any voxel is read (nibabel allocates the whole
    declared array first, even for a file far too short to fill it)."""
    shape = tuple(int(n) for n in image.shape)
    if not 2 <= len(shape) <= 4:
        raise reasons.Unusable(reasons.NIFTI_DIMENSIONS)
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise reasons.Unusable(reasons.TOO_LARGE)
    if not path.name.lower().endswith(".gz"):
        needed = int(image.header.get_data_offset()) + voxels * image.get_data_dtype().itemsize
        if path.stat().st_size < needed:
            raise ValueError(f"truncated: {path.stat().st_size} bytes, the header needs {needed}")


def _range(volume: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    inside = volume[volume != 0]  # background padding (exact 0) would pull the low end down
    values = inside if inside.size else volume.ravel()
    low, high = np.percentile(values, percentiles)
    return float(low), float(high)
