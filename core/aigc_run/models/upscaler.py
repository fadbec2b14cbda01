"""A learned upscaler for the cascade (``model.upscale``): the GAN trains at a fraction of
the image size, and this network, trained on the same real images, lifts its samples.

ESPCN-like (Shi et al. 2016): three convolutions at the low resolution, then a pixel
shuffle per doubling, added to a bicubic upscale of the input, so it only learns the
detail that bicubic interpolation misses. It learns from each training batch: the real
images averaged down by the factor as input, the originals as targets, with an L1 loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

WIDTH = 64


class Upscaler(nn.Module):
    """N x C x S x S in [-1, 1] -> N x C x fS x fS, for a factor f of 2 or 4."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        doublings = int(math.log2(factor))
        layers: list[nn.Module] = [
            nn.Conv2d(channels, WIDTH, 5, 1, 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(WIDTH, WIDTH // 2, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
        ]
        c_in = WIDTH // 2
        for step in range(doublings):
            last = step == doublings - 1
            c_out = channels if last else c_in
            layers += [nn.Conv2d(c_in, c_out * 4, 3, 1, 1), nn.PixelShuffle(2)]
            if not last:
                layers.append(nn.LeakyReLU(0.2, True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.factor, mode="bicubic", align_corners=False)
        return (base + self.body(x)).clamp(-1, 1)

    def loss(self, full: torch.Tensor) -> torch.Tensor:
        """L1 between the originals and their averaged-down copies lifted back up."""
        return F.l1_loss(self(downscale(full, self.factor)), full)


def downscale(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Images averaged down by ``factor`` (each factor x factor block to one pixel)."""
    return F.avg_pool2d(images, factor)
