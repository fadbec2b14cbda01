"""The cascade arm of the quality benchmark: train the scenario's recipe at half the size,
then lift its samples 2x with a small super-resolution network trained on the same real
images (each downscaled 2x by area averaging, as input, against the original).

The upscaler is ESPCN-like (Shi et al. 2016): three convolutions at the low resolution and
a pixel shuffle to the high one, added to a bicubic upscale of the input, so it only learns
the detail bicubic misses; L1 loss, Adam 1e-3, batches of 32. Of the arm's wall-clock
budget, SR_SHARE goes to the upscaler and the rest to the generator.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SR_SHARE = 0.15
SR_BATCH = 32


class Upscaler(nn.Module):
    """N x C x S x S in [-1, 1] -> N x C x 2S x 2S."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 5, 1, 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, width // 2, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(width // 2, channels * 4, 3, 1, 1),
            nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        return (base + self.body(x)).clamp(-1, 1)


def downscale(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1], halved by averaging each 2 x 2 block."""
    return F.avg_pool2d(images, 2)


def train_upscaler(images: np.ndarray, minutes: float, seed: int, device: str) -> Upscaler:
    """An Upscaler trained for ``minutes`` on uint8 N x C x 2S x 2S real images."""
    torch.manual_seed(seed)
    net = Upscaler(images.shape[1]).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    started = time.monotonic()
    while time.monotonic() - started < minutes * 60:
        index = torch.randint(len(data), (SR_BATCH,), device=device)
        target = data[index].float() / 127.5 - 1
        loss = F.l1_loss(net(downscale(target)), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return net.eval()


@torch.no_grad()
def upscale(net: Upscaler, samples: torch.Tensor, device: str) -> torch.Tensor:
    """uint8 N x C x S x S -> uint8 N x C x 2S x 2S."""
    out = []
    for chunk in samples.split(500):
        x = chunk.to(device).float() / 127.5 - 1
        out.append(((net(x) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu())
    return torch.cat(out)
