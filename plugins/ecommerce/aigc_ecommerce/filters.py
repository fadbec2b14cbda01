"""Quality filters for generated product photos: batched torch ops, on the engine's device.

Each ``score(images, context)`` takes float images in [0, 1], N x C x H x W, and returns N
finite float scores, higher is better. torch is imported inside the functions so that
importing the plugin (for ``aigc-run --help``) stays cheap.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from aigc_run import FilterContext

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
FIRST_SCORE = 1e6  # the first image of a block has nothing earlier to duplicate
CHUNK = 512  # catalogue-copy: reference images at a time, memory CHUNK x N, not M x N
#: Images are compared within blocks of this many, from the batch's start: the cost stays
#: linear in the batch, and the scores do not depend on the batch size the device takes
#: (256 on a CPU, tens of thousands on a large GPU), for any multiple of it.
BLOCK = 256
#: RMS difference (0..1) between thumbnails. Distinct products in the demo catalogue are
#: rarely closer than ~0.05, real photos ~0.08; copies of one image (a collapsed generator)
#: sit near 0.
NEAR_DUPLICATE_THRESHOLD = 0.02


def near_duplicate(images: torch.Tensor, context: FilterContext | None = None) -> torch.Tensor:
    """RMS distance from each image's thumbnail to the nearest EARLIER one in its block
    of BLOCK images.

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
    for start in range(0, n, BLOCK):
        block = thumbs[start : start + BLOCK]
        # exact differences (not the matmul shortcut, which is off by ~1e-3 for copies)
        dist = torch.cdist(block, block, compute_mode="donot_use_mm_for_euclid_dist")
        order = torch.arange(len(block), device=images.device)
        dist = dist.masked_fill(order[None, :] >= order[:, None], math.inf)  # earlier only
        nearest = dist.amin(dim=1) / math.sqrt(dims)
        scores[start + 1 : start + len(block)] = nearest[1:]
    return scores


def _foreground(images: torch.Tensor) -> torch.Tensor:
    """N x H x W bool: pixels that are not clean white background (background-clean's test)."""
    lo, hi = images.float().amin(dim=1), images.float().amax(dim=1)
    return ~((lo >= WHITE_LEVEL) & (hi - lo <= GREY_TOLERANCE))


# object-margin ---------------------------------------------------------------------------

LINE_SHARE = 0.05  # a row or column belongs to the object when 5% of it is foreground
#: Score: the smallest gap between the object's bounding box and the image edge, as a share
#: of the side (0 to 0.5). 0 when the object touches an edge: cut off, or shifted to one
#: side. A centred product filling 80% of the frame scores 0.1; the demo catalogue's
#: products 0.06 to 0.19. With nothing but background the score is 0 (no product). The
#: default asks for about one pixel at 32 x 32.
OBJECT_MARGIN_THRESHOLD = 0.03


def object_margin(images: torch.Tensor, context: FilterContext | None = None) -> torch.Tensor:
    """Smallest margin between the product's bounding box and the frame (higher is better)."""
    import torch

    fg = _foreground(images).float()  # N x H x W
    gaps = []
    for share in (fg.mean(dim=2), fg.mean(dim=1)):  # per row, per column: N x H, N x W
        size = share.shape[1]
        inside = share >= LINE_SHARE
        position = torch.arange(size, device=images.device)
        first = torch.where(inside, position, size).amin(dim=1)
        last = torch.where(inside, position, -1).amax(dim=1)
        gap = torch.minimum(first, size - 1 - last).float() / size
        gaps.append(torch.where(inside.any(dim=1), gap, 0.0))  # no product: 0
    return torch.minimum(*gaps)


# sharpness -------------------------------------------------------------------------------

#: Score: the standard deviation of the Laplacian of the grey image (values in [0, 1]), over
#: the product only (background excluded), so a small sharp product on a big white page is
#: not called blurry. Demo products at 32 x 32 score 0.18 and more (median 0.31); the same
#: blurred by a Gaussian of sigma 1 pixel at most 0.14 (median 0.10); a flat image 0.
SHARPNESS_THRESHOLD = 0.15


def sharpness(images: torch.Tensor, context: FilterContext | None = None) -> torch.Tensor:
    """Laplacian standard deviation on the product's pixels (higher is better)."""
    import torch
    import torch.nn.functional as F

    grey = images.float().mean(dim=1, keepdim=True)  # N x 1 x H x W
    kernel = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float32)
    lap = F.conv2d(grey, kernel.to(images.device)[None, None], padding=1)[:, 0, 1:-1, 1:-1]
    fg = _foreground(images)[:, 1:-1, 1:-1]
    # near the object too: edges between product and background are where sharpness shows
    near = F.max_pool2d(fg[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
    weight = near.float()
    count = weight.flatten(1).sum(dim=1).clamp_min(1.0)
    mean = (lap * weight).flatten(1).sum(dim=1) / count
    var = ((lap - mean[:, None, None]) ** 2 * weight).flatten(1).sum(dim=1) / count
    return var.sqrt()


# colour-cast -----------------------------------------------------------------------------

BRIGHTEST = 0.1  # the brightest 10% of pixels: the white background or highlights
#: Score: the chroma of the mean colour of the brightest pixels, in an opponent space
#: (R - G, (R + G) / 2 - B), values 0 to ~1.1. A product shot on white should have neutral
#: highlights: ~0 for the demo catalogue, 0.1 for a white page tinted 10% yellow.
COLOUR_CAST_THRESHOLD = 0.05


def colour_cast(images: torch.Tensor, context: FilterContext | None = None) -> torch.Tensor:
    """Chroma of the brightest pixels' mean colour (lower is better; grey images score 0)."""
    import torch

    n, c = images.shape[:2]
    if c != 3 or n == 0:
        return images.new_zeros(n)
    flat = images.float().flatten(2)  # N x 3 x P
    k = max(1, round(flat.shape[2] * BRIGHTEST))
    top = flat.mean(dim=1).topk(k, dim=1).indices  # N x k
    mean = flat.gather(2, top[:, None, :].expand(-1, 3, -1)).mean(dim=2)  # N x 3
    r, g, b = mean.unbind(dim=1)
    return torch.stack([r - g, (r + g) / 2 - b], dim=1).norm(dim=1)


# catalogue-copy --------------------------------------------------------------------------

#: Score: RMS distance of 8 x 8 thumbnails to the NEAREST training image (the reference
#: sample the engine passes, up to 5,000 images). Same scale as near-duplicate: a copy of a
#: catalogue photo scores ~0 (0.003 with pixel noise of sigma 0.01), distinct demo
#: products 0.035 and more.
CATALOGUE_COPY_THRESHOLD = 0.02


def catalogue_copy(images: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """Distance to the nearest training image (higher is better: far from any copy)."""
    import torch
    import torch.nn.functional as F

    n = images.shape[0]
    if context.reference.shape[0] == 0 or n == 0:  # nothing to compare with: nothing copied
        return torch.full((n,), FIRST_SCORE, device=images.device)
    reference = _thumbnails(context.reference, images.shape[1]).to(images.device)
    thumbs = F.adaptive_avg_pool2d(images.float(), THUMB).flatten(1)  # N x D
    best = torch.full((n,), math.inf, device=images.device)
    for start in range(0, reference.shape[0], CHUNK):
        chunk = reference[start : start + CHUNK]
        dist = torch.cdist(thumbs, chunk, compute_mode="donot_use_mm_for_euclid_dist")
        best = torch.minimum(best, dist.amin(dim=1))
    return best / math.sqrt(thumbs.shape[1])


def _thumbnails(reference: torch.Tensor, channels: int) -> torch.Tensor:
    """The reference images' thumbnails (M x channels*THUMB*THUMB), worked out once per
    reference tensor: every batch of a run, and every request a server draws, compares
    against the same training images, and pooling thousands of them each time cost more
    than the comparison (5 ms of 5.4 for a batch of 4 against 2,700 images)."""
    import torch
    import torch.nn.functional as F

    cached = _LAST_THUMBNAILS.get("last")
    if cached is not None and cached[0]() is reference and cached[1] == channels:
        return cached[2]
    if reference.shape[1] != channels:
        reference_view = reference.mean(dim=1, keepdim=True).expand(-1, channels, -1, -1)
    else:
        reference_view = reference
    thumbs = torch.cat([
        F.adaptive_avg_pool2d(reference_view[start : start + CHUNK].float(), THUMB).flatten(1)
        for start in range(0, reference.shape[0], CHUNK)
    ])  # fmt: skip
    _LAST_THUMBNAILS["last"] = (weakref.ref(reference), channels, thumbs)
    return thumbs


# the last reference tensor seen (weakly: it is the run's), with its thumbnails
_LAST_THUMBNAILS: dict[str, tuple[Any, int, torch.Tensor]] = {}


# class-consistency ----------------------------------------------------------------------

#: Probability, by the domain classifier trained on the catalogue, that a sample shows the
#: category it was drawn for. A "Shoes" sample the classifier calls "Pants" scores near 0.
#: With "auto" the engine loosens it until 90% of held-out real photos pass.
CLASS_CONSISTENCY_THRESHOLD = 0.5


def class_consistency(images: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """P(asked category | image) by the domain classifier (1.0 for unlabelled data)."""
    return context.asked_class_probability(images)
