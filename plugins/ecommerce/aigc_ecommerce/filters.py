"""Quality filters for generated product photos: batched torch ops, on the engine's device.

Each ``score(images, context)`` takes float images in [0, 1], N x C x H x W, and returns N
finite float scores, higher is better. torch is imported inside the functions so that
importing the plugin (for ``aigc-run --help``) stays cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from aigc_run.components import FilterContext

# background-clean -----------------------------------------------------------------------

BORDER_FRACTION = 1 / 12  # the frame checked: 1/12 of the shorter side (3 px at 32, 5 at 64)
WHITE_LEVEL = 0.85  # every channel at least this bright ...
GREY_TOLERANCE = 0.10  # ... and max - min channel at most this (not a pale colour)
#: Studio shots on white score ~1.0; letterboxed phone photos (white bars on two sides, a
#: floor on the others) ~0.5. With "auto" the engine loosens this to what real photos pass.
BACKGROUND_CLEAN_THRESHOLD = 0.75


def background_clean(images: torch.Tensor, context: FilterContext | None = None) -> torch.Tensor:
    """Fraction of the border frame's pixels that are near-white and unsaturated."""
    import torch

    n, _, h, w = images.shape
    b = max(1, round(min(h, w) * BORDER_FRACTION))
    frame = torch.ones(h, w, dtype=torch.bool, device=images.device)
    frame[b : h - b, b : w - b] = False
    border = images.float()[:, :, frame]  # N x C x P
    lo, hi = border.amin(dim=1), border.amax(dim=1)  # N x P
    clean = (lo >= WHITE_LEVEL) & (hi - lo <= GREY_TOLERANCE)
    return clean.float().mean(dim=1) if n else images.new_zeros(0)


# near-duplicate -------------------------------------------------------------------------

THUMB = 8  # images are compared as 8 x 8 thumbnails: blind to noise, sees layout and colour
FIRST_SCORE = 1e6  # the first image of a batch has nothing earlier to duplicate
CHUNK = 512  # rows of the distance matrix at a time: memory CHUNK x N, not N x N
#: RMS difference (0..1) between thumbnails. Distinct products in the demo catalogue are
#: rarely closer than ~0.05, real photos ~0.08; copies of one image (a collapsed generator)
#: sit near 0.
NEAR_DUPLICATE_THRESHOLD = 0.02


def near_duplicate(images: torch.Tensor, context: FilterContext | None = None) -> torch.Tensor:
    """RMS distance from each image's thumbnail to the nearest EARLIER one in the batch.

    The first of two copies passes; the later copy scores ~0 and fails.
    """
    import torch
    import torch.nn.functional as F

    n = images.shape[0]
    scores = torch.full((n,), FIRST_SCORE, dtype=torch.float32, device=images.device)
    if n < 2:
        return scores
    thumbs = F.adaptive_avg_pool2d(images.float(), THUMB).flatten(1)  # N x C*THUMB*THUMB
    dims = thumbs.shape[1]
    for start in range(1, n, CHUNK):
        stop = min(n, start + CHUNK)
        # exact differences (not the matmul shortcut, which is off by ~1e-3 for copies)
        dist = torch.cdist(
            thumbs[start:stop], thumbs[:stop], compute_mode="donot_use_mm_for_euclid_dist"
        )  # R x stop
        row = torch.arange(start, stop, device=images.device)[:, None]
        col = torch.arange(stop, device=images.device)[None, :]
        dist = dist.masked_fill(col >= row, math.inf)  # only earlier images count
        scores[start:stop] = dist.amin(dim=1) / math.sqrt(dims)
    return scores
