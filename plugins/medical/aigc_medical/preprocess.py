"""Preprocessing steps for scans: PIL image in, PIL image out, applied once per image.

The engine converts to the scenario's channels and resizes after the steps, so these
only fix what resizing cannot: exposure and framing.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_HIGH_DEPTH = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_COLOUR = frozenset({"RGB", "RGBA", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"})


def normalize_intensity(image: Image.Image, image_size: int) -> Image.Image:
    """Stretch the 1st..99th intensity percentile of a scan to 0..255.

    Removes differences in exposure and window between machines while ignoring a few
    extreme pixels (burnt-in text, a pacemaker). A flat image, or one whose percentiles
    coincide, falls back to its minimum and maximum, and a truly constant image is
    returned unchanged. Colour images keep their colour (one stretch for all channels);
    16-bit scans come back as 8-bit grayscale.
    """
    del image_size  # the engine resizes afterwards
    if image.mode in _COLOUR:
        values = np.asarray(image.convert("RGB"), dtype=np.float64)
    elif image.mode in _HIGH_DEPTH:
        values = np.asarray(image, dtype=np.float64)
    else:
        values = np.asarray(image.convert("L"), dtype=np.float64)
    low, high = np.percentile(values, [1.0, 99.0])
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:  # constant: nothing to stretch
        constant = values if image.mode not in _HIGH_DEPTH else np.zeros_like(values)
        return Image.fromarray(constant.clip(0, 255).astype(np.uint8))
    scaled = (values - low) / (high - low) * 255.0
    return Image.fromarray((scaled.clip(0.0, 255.0) + 0.5).astype(np.uint8))
