"""DICOM scans in: pixel values to 8-bit grayscale frames, the way a viewer shows them.

For each file: the modality LUT (RescaleSlope / RescaleIntercept, so CT is in Hounsfield
units), then a linear window: the one asked for (``data.options.window``), else the file's
own WindowCenter / WindowWidth, else the modality's default (CT: soft tissue), else the
frame's own minimum to maximum. MONOCHROME1 (bright = low values, as in many CR/DX files)
is inverted so that every scan reads the same way. Multi-frame files give one image per
frame. Colour DICOM (ultrasound RGB, YBR, palette colour) is turned into luminance.

pydicom is imported inside the functions: importing the plugin must stay cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aigc_medical import reasons
from aigc_run import DataError

#: Named windows (centre, width) in Hounsfield units, the presets radiology viewers offer.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "soft-tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "mediastinum": (50.0, 350.0),
}
#: When a file has no window of its own: CT gets the soft-tissue window; other modalities
#: (MR, CR, ...) have no fixed unit, so they fall back to the frame's minimum to maximum.
MODALITY_DEFAULT_WINDOWS = {"CT": WINDOW_PRESETS["soft-tissue"]}
WINDOW_HINT = (
    'data.options.window is "file" (the default: the file\'s own window), "minmax", a preset '
    f"({', '.join(WINDOW_PRESETS)}), or [centre, width]"
)


def is_dicom(path: Path) -> bool:
    """A ``.dcm``/``.dicom`` name, or any file with the ``DICM`` marker at byte 128
    (files from scanners and PACS exports often have no extension at all)."""
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    if path.suffix or not path.is_file():  # opening a named pipe would block
        return False
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def check_window(window: Any) -> str | tuple[float, float]:
    """Validate ``data.options.window`` early, so a typo fails before any file is read."""
    if isinstance(window, str) and (window in ("file", "minmax") or window in WINDOW_PRESETS):
        return WINDOW_PRESETS.get(window, window)
    if (
        isinstance(window, list | tuple)
        and len(window) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in window)
        and window[1] > 0
    ):
        return float(window[0]), float(window[1])
    raise DataError(f"data.options.window: {window!r} is not a window", WINDOW_HINT)


def series_order(paths: Sequence[Path]) -> list[Path]:
    """Files sorted by series, then position in the series (InstanceNumber), then name.

    Only headers are read. Files whose header cannot be read sort last, so they are
    still tried (and reported as unreadable) rather than dropped.
    """
    import pydicom

    def key(path: Path) -> tuple[int, str, int, str]:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            number = ds.get("InstanceNumber")
            return (0, str(ds.get("SeriesInstanceUID", "")), int(number or 0), str(path))
        except Exception:  # any header problem: decided properly when the file is read
            return (1, "", 0, str(path))

    return sorted(paths, key=key)


def read_frames(path: Path, window: str | tuple[float, float] = "file") -> Iterator[Image.Image]:
    """Yield one 8-bit grayscale image per frame. Raises ``ValueError`` when the file is not
    readable DICOM, and ``reasons.Unusable`` when it has no pixel data or is compressed in a
    transfer syntax no installed package decodes (JPEG-LS, say, without pylibjpeg)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(path)
        if len(ds) == 0:  # the DICM marker and nothing pydicom could parse after it
            raise ValueError("no data elements")
        if "PixelData" not in ds:
            raise reasons.Unusable(reasons.NO_PIXELS)
        if not _decodable(ds):
            raise reasons.Unusable(reasons.NO_DECODER)
        pixels = ds.pixel_array  # colour is converted to RGB by pydicom
    except ValueError:
        raise
    except Exception as e:  # InvalidDicomError, missing decoders, truncated data ...
        raise ValueError(f"{type(e).__name__}: {e}") from e
    samples = int(ds.get("SamplesPerPixel", 1))
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":  # indices into a colour table
        from pydicom.pixels import apply_color_lut

        pixels, samples = apply_color_lut(pixels, ds), 3
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if samples > 1:  # RGB: luminance, as a grayscale scanner would have seen it
        pixels = pixels @ np.array([0.299, 0.587, 0.114])
    elif "RescaleSlope" in ds or "RescaleIntercept" in ds:
        pixels = apply_modality_lut(pixels, ds)
    values = np.asarray(pixels, dtype=np.float64).reshape(frames, *pixels.shape[-2:])
    chosen = _window_of(ds, window)
    invert = ds.get("PhotometricInterpretation") == "MONOCHROME1"
    for frame in values:
        scaled = _apply_window(frame, chosen)
        yield Image.fromarray(255 - scaled if invert else scaled)


def _decodable(ds: Any) -> bool:
    """Whether an installed decoder handles the file's transfer syntax (unknown: try it)."""
    from pydicom.pixels import get_decoder

    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if syntax is None:
        return True
    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:  # a syntax pydicom has no decoder for at all (private)
        return False


def _window_of(ds: Any, window: str | tuple[float, float]) -> tuple[float, float] | None:
    """(centre, width) to apply, or None for the frame's own minimum to maximum."""
    if isinstance(window, tuple):
        return window
    if window == "minmax":
        return None
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is not None and width is not None:
        # multi-valued: the first is the one the modality meant as the default view
        first = [float(v[0] if isinstance(v, Sequence) and not isinstance(v, str) else v)
                 for v in (centre, width)]  # fmt: skip
        if first[1] > 0:
            return first[0], first[1]
    return MODALITY_DEFAULT_WINDOWS.get(str(ds.get("Modality", "")))


def _apply_window(frame: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Linear window to 0..255 uint8 (VOI LUT sequences and sigmoid windows are not applied)."""
    if window is None:
        low, high = float(frame.min()), float(frame.max())
    else:
        centre, width = window
        low, high = centre - width / 2, centre + width / 2
    if high <= low:
        return np.zeros(frame.shape, dtype=np.uint8)
    scaled = (frame - low) / (high - low) * 255.0
    return (scaled.clip(0.0, 255.0) + 0.5).astype(np.uint8)
