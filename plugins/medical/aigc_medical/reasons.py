"""Why a file gives no image: the reasons counted in ``Skipped(item, reason)``.

A few fixed strings, so the engine's counts stay short ("unreadable image 3"); the details
of one file's problem are not part of the reason.
"""

from __future__ import annotations

UNREADABLE = "unreadable image"  # damaged, truncated, or not the format its name says
EMPTY = "empty file"
TOO_LARGE = "image too large"  # over Pillow's MAX_IMAGE_PIXELS, or a NIfTI over MAX_VOXELS
OUTSIDE = "path outside data folder"  # its real location (symlinks followed) is elsewhere
NOT_FILE = "not a regular file"  # a named pipe or a device: reading it would never end
NO_PIXELS = "DICOM without pixel data"
NO_DECODER = "DICOM compression without a decoder"
NIFTI_DIMENSIONS = "NIfTI not 2-D, 3-D or 4-D"


class Unusable(ValueError):
    """A file that was recognised but gives no image, for a reason worth counting apart."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
