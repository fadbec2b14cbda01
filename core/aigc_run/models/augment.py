"""Differentiable augmentation for the discriminator (DiffAugment, Zhao et al. 2020).

With a few thousand images, D learns the training set by heart and stops teaching G.
Augmenting everything D sees, real and fake alike, with transforms that gradients flow
through keeps it from memorising without teaching G to draw the augmentations (as
augmenting only the reals would). Images are N x C x H x W in [-1, 1]; every random draw
uses torch's global generator, which the training loop seeds per step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F


def color(images: torch.Tensor) -> torch.Tensor:
    """Random brightness, saturation and contrast per image (saturation: RGB only)."""
    n = images.shape[0]
    images = images + (torch.rand(n, 1, 1, 1, device=images.device) - 0.5)
    if images.shape[1] == 3:
        gray = images.mean(dim=1, keepdim=True)
        images = (images - gray) * (torch.rand(n, 1, 1, 1, device=images.device) * 2) + gray
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (torch.rand(n, 1, 1, 1, device=images.device) + 0.5) + mean


def translation(images: torch.Tensor, fraction: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``fraction`` of its size, padding with edge pixels."""
    n, c, h, w = images.shape
    pad = max(1, int(h * fraction))
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (n,), device=images.device)
    dy = torch.randint(0, 2 * pad + 1, (n,), device=images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device)[None]).view(n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device)[None]).view(n, 1, 1, w)
    padded = padded.gather(2, rows.expand(n, c, h, padded.shape[3]))  # N x C x H x W+2p
    return padded.gather(3, cols.expand(n, c, h, w))  # N x C x H x W


def cutout(images: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """Blank one square of ``fraction`` of the side per image (to 0, mid-grey in [-1, 1])."""
    n, _, h, w = images.shape
    side_h, side_w = int(h * fraction + 0.5), int(w * fraction + 0.5)
    # Centres anywhere in the image, so the square may be cut off at the border.
    top = torch.randint(0, h + 1 - side_h % 2, (n, 1, 1), device=images.device) - side_h // 2
    left = torch.randint(0, w + 1 - side_w % 2, (n, 1, 1), device=images.device) - side_w // 2
    y = torch.arange(h, device=images.device).view(1, h, 1)
    x = torch.arange(w, device=images.device).view(1, 1, w)
    inside = (y >= top) & (y < top + side_h) & (x >= left) & (x < left + side_w)  # N x H x W
    return images * (~inside).unsqueeze(1).to(images.dtype)


POLICIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def augment(
    images: torch.Tensor, policies: Sequence[str], p: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """Apply the named policies in DiffAugment's order: colour, translation, cutout; each
    to every image, or with probability ``p`` (a number or a 0-dim tensor) to each image
    on its own, as ADA does. ``p`` = 1 draws nothing more than the policies do."""
    for name in POLICIES:
        if name in policies:
            changed = POLICIES[name](images)
            if isinstance(p, float) and p >= 1.0:
                images = changed
            else:
                chosen = torch.rand(images.shape[0], 1, 1, 1, device=images.device) < p
                images = torch.where(chosen, changed, images)
    return images


class AdaptiveProbability:
    """ADA's augmentation probability (Karras et al. 2020), steered by how sure D is of
    the real images: r = E[sign(D(real))] rises towards 1 as D learns the training set by
    heart. Every step p moves up when r is above ``target`` and down when below, by
    ``batch / images_to_full`` so that p could go from 0 to 1 in ``images_to_full``
    images; it stays in [0, 1]. Kept as a tensor on the device (no GPU wait) and saved in
    checkpoints, so a resumed run continues with the same p."""

    def __init__(self, device: torch.device, target: float, images_to_full: int) -> None:
        self.p = torch.zeros((), device=device)
        self.target = target
        self.images_to_full = images_to_full

    def update(self, real_scores: torch.Tensor) -> None:
        r = real_scores.detach().float().sign().mean()
        step = real_scores.shape[0] / self.images_to_full
        self.p = (self.p + (r - self.target).sign() * step).clamp(0.0, 1.0)
