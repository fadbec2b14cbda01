"""Quality filters for generated scans. Torch is imported inside the functions.

Both take float images in [0, 1], N x C x H x W on the engine's device, and a
``FilterContext`` whose ``reference`` holds (a sample of) the training images, and return N
finite float scores on the same device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from aigc_run import FilterContext

# The statistics intensity-plausibility compares: intensity quantiles (the body of the
# histogram and both tails, where a dark, bright or washed-out image differs most), then
# the log of the contrast (standard deviation) and of the roughness (mean difference of
# neighbouring pixels). On a log scale a blank image, with no contrast, is far off.
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
LOG_EPS = (0.01, 0.005)  # added before the log of contrast and of roughness
# Floor on the spread of a statistic across the training images, so a near-constant
# training set does not turn every tiny difference into a huge score.
MIN_SPREAD = 0.02
# Default threshold of intensity-plausibility (lower is better). The score is an RMS of
# z-scores, about 1 for a typical training image. On PneumoniaMNIST 98.5-98.7% of
# held-out images score <= 2.5; blank images score 4.5 and more (17 and more after
# normalize-intensity).
PLAUSIBILITY_THRESHOLD = 2.5

# Side of the thumbnails memorisation compares: small enough to ignore noise and a pixel
# of shift, large enough to tell two chest scans apart.
THUMBNAIL = 16
# References per chunk of the nearest-neighbour search: bounds memory at N x CHUNK floats.
CHUNK = 1024
# Default threshold of memorisation (higher is better): the RMS pixel distance in [0, 1]
# below which a sample counts as a copy of a training image. On PneumoniaMNIST at 32 x 32
# distinct images are >= 0.036 apart (>= 0.067 after normalize-intensity), exact copies
# score < 0.001 and copies with Gaussian pixel noise of sigma 0.05 score about 0.025.
MEMORISATION_THRESHOLD = 0.03


def _statistics(images: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x S: intensity quantiles, log contrast, log roughness per image."""
    import torch

    gray = images.float().mean(dim=1)  # N x H x W
    flat = gray.flatten(1)  # N x P
    values = torch.sort(flat, dim=1).values  # sort, not torch.quantile: no size limit
    last = values.shape[1] - 1
    index = torch.tensor([round(q * last) for q in QUANTILES], device=values.device)
    quantiles = values.index_select(1, index)  # N x Q
    contrast = flat.std(dim=1, correction=0) if flat.shape[1] > 1 else flat[:, 0] * 0
    steps = [
        (gray[:, :, 1:] - gray[:, :, :-1]).abs().flatten(1),
        (gray[:, 1:, :] - gray[:, :-1, :]).abs().flatten(1),
    ]
    steps = [s for s in steps if s.shape[1] > 0]
    roughness = torch.cat(steps, dim=1).mean(dim=1) if steps else contrast * 0
    return torch.cat(
        [
            quantiles,
            (contrast + LOG_EPS[0]).log()[:, None],
            (roughness + LOG_EPS[1]).log()[:, None],
        ],
        dim=1,
    )


def intensity_plausibility(images: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """How far each image's intensity statistics are from the training images' (lower is better).

    For each statistic of ``_statistics`` the z-score against the training images
    (``(s_sample - mean s_reference) / std s_reference``); the score is their root mean
    square. A typical training image scores about 1; a blank, saturated or washed-out
    image scores far higher.
    """
    import torch

    sample = _statistics(images)  # N x S
    reference = _statistics(context.reference.to(images.device))  # M x S
    if reference.shape[0] == 0:  # nothing to compare with: every image is plausible
        return torch.zeros(sample.shape[0], device=images.device)
    mean = reference.mean(dim=0)
    if reference.shape[0] > 1:
        spread = reference.std(dim=0).clamp_min(MIN_SPREAD)
    else:
        spread = torch.full_like(mean, MIN_SPREAD)
    z = (sample - mean) / spread
    return z.pow(2).mean(dim=1).sqrt()  # N


def _thumbnails(images: torch.Tensor, side: int) -> torch.Tensor:
    """N x C x H x W -> N x side*side grayscale thumbnails (area averages)."""
    import torch.nn.functional as F

    gray = images.float().mean(dim=1, keepdim=True)
    return F.adaptive_avg_pool2d(gray, side).flatten(1)


def nearest_training_distance(images: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """RMS pixel distance from each image to its nearest training image (higher is better).

    Both are compared as grayscale thumbnails, so a copy that differs only by noise or by a
    resampling still scores near 0. The references are searched in chunks of ``CHUNK``.
    """
    import torch

    reference_images = context.reference.to(images.device)
    if reference_images.shape[0] == 0:  # nothing to compare with: nothing memorised
        return torch.ones(images.shape[0], device=images.device)
    side = min(THUMBNAIL, *images.shape[2:], *reference_images.shape[2:])
    samples = _thumbnails(images, side)  # N x D
    reference = _thumbnails(reference_images, side)  # M x D
    best = torch.full((samples.shape[0],), float("inf"), device=images.device)
    for start in range(0, reference.shape[0], CHUNK):
        chunk = reference[start : start + CHUNK]
        # Squared distances through a matrix product, clamped: rounding can go below 0.
        d2 = (
            samples.pow(2).sum(1, keepdim=True)
            - 2.0 * samples @ chunk.T
            + chunk.pow(2).sum(1)[None, :]
        ).clamp_min(0.0)  # N x chunk
        best = torch.minimum(best, d2.min(dim=1).values)
    return (best / samples.shape[1]).sqrt()


#: The domain classifier's confidence that a sample shows the class (finding) it was drawn
#: for: an image that matches no class of the training scans scores low. With "auto" the
#: engine loosens it until 90% of held-out real scans pass. Unlabelled data: always 1.
ANATOMY_THRESHOLD = 0.5


def anatomical_plausibility(images: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """P(asked class | image) by the domain classifier trained on the training scans."""
    return context.asked_class_probability(images)
