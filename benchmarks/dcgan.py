"""The baselines of the quality benchmark: pytorch/examples' DCGAN at any power-of-two size,
and the same layers made class-conditional.

Canonical (pytorch/examples/dcgan, written out for 16 to 256 px): a generator of 4x4
stride-2 transposed convs from 4x4 up to the image size with batch norm and ReLU, widths
8w, 4w, 2w, w at 64 px (capped at 8w, so 32 px starts at 4w as the example's 32-px ports
do); a discriminator of strided convs mirroring it, batch norm after all but the first,
LeakyReLU 0.2, ending in one logit; N(0, 0.02) weights; BCE loss (the example's Sigmoid +
BCELoss, computed stably as BCEWithLogitsLoss); Adam lr 2e-4, betas (0.5, 0.999); batch 64.

Conditional: the same layers, with the class as a learned embedding concatenated to the
noise in G and a projection in D (Miyato & Koyama 2018: the logit plus the inner product
of a class embedding with D's last features summed over positions). Beside the
unconditional baseline it shows how much of the scenario recipe's gain is conditioning
alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LATENT = 100
BATCH = 64


def widths(image_size: int, width: int) -> list[int]:
    """Channels from the 4x4 bottom up: [8w, 4w, 2w, w] at 64 px, [4w, 2w, w] at 32."""
    levels = int(math.log2(image_size)) - 2
    return [width * min(8, 2 ** (levels - 1 - level)) for level in range(levels)]


class Generator(nn.Module):
    """z (+ class) -> image, tanh. The class, when there are classes, is an embedding of
    ``LATENT`` values concatenated to the noise."""

    def __init__(self, image_size: int, width: int, channels: int, classes: int = 0) -> None:
        super().__init__()
        self.embed = nn.Embedding(classes, LATENT) if classes else None
        layers: list[nn.Module] = []
        c_in = LATENT * (2 if classes else 1)
        for i, c_out in enumerate(widths(image_size, width)):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride, pad, bias=False)]
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(True)]
            c_in = c_out
        layers += [nn.ConvTranspose2d(c_in, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z[:, :, None, None])  # N x C x H x W


class Discriminator(nn.Module):
    """image (+ class) -> one logit per image."""

    def __init__(self, image_size: int, width: int, channels: int, classes: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for i, c_out in enumerate(reversed(widths(image_size, width))):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(c_out)] if i else []
            layers += [nn.LeakyReLU(0.2, True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)  # N x 8w x 4 x 4
        self.logit = nn.Conv2d(c_in, 1, 4, 1, 0, bias=False)
        self.embed = nn.Embedding(classes, c_in) if classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(images)
        out = self.logit(h).flatten()  # N
        if self.embed is not None:
            out = out + (self.embed(labels) * h.sum(dim=(2, 3))).sum(dim=1)
        return out


def init_weights(module: nn.Module) -> None:
    """The example's N(0, 0.02) convs and N(1, 0.02) batch-norm gains; embeddings get
    N(0, 0.02) too, so the class term starts as small as the rest of the logit."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def train(
    images: np.ndarray,
    labels: np.ndarray,
    classes: int,
    minutes: float,
    seed: int,
    width: int,
    device: str,
    every: int = 0,
    snapshot: Callable[[int, Generator], None] | None = None,
) -> tuple[Generator, int, float]:
    """Train for ``minutes`` of wall clock; ``classes`` 0 trains the unconditional example.
    Every ``every`` steps, ``snapshot(step, G)`` is called outside the budget.
    Returns G, the steps done and the seconds spent training."""
    torch.manual_seed(seed)
    size, channels = images.shape[-1], images.shape[1]
    generator = Generator(size, width, channels, classes).to(device)
    discriminator = Discriminator(size, width, channels, classes).to(device)
    generator.apply(init_weights)
    discriminator.apply(init_weights)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    targets = torch.from_numpy(np.ascontiguousarray(labels)).to(device)
    ones = torch.ones(BATCH, device=device)
    zeros = torch.zeros(BATCH, device=device)
    steps, spent = 0, 0.0
    while spent < minutes * 60:
        started = time.monotonic()
        index = torch.randint(len(data), (BATCH,), device=device)
        real = data[index].float() / 127.5 - 1
        y = targets[index] if classes else torch.zeros_like(targets[index])
        fake = generator(torch.randn(BATCH, LATENT, device=device), y)
        loss_d = F.binary_cross_entropy_with_logits(discriminator(real, y), ones)
        loss_d = loss_d + F.binary_cross_entropy_with_logits(discriminator(fake.detach(), y), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(discriminator(fake, y), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        steps += 1
        spent += time.monotonic() - started
        if snapshot is not None and every and steps % every == 0:
            snapshot(steps, generator)
    return generator, steps, spent


@torch.no_grad()
def samples(
    generator: Generator, labels: torch.Tensor, seed: int, device: str, batch_stats: bool
) -> torch.Tensor:
    """uint8 samples for ``labels`` (ignored when G is unconditional), drawn with batch
    norm's running statistics (eval mode) or, as the example draws them (it never calls
    ``eval()``), with the statistics of each batch of 64."""
    was_training = generator.training
    generator.train(batch_stats)
    z = torch.randn(len(labels), LATENT, generator=torch.Generator().manual_seed(seed))
    chunk = BATCH if batch_stats else 500
    out = [
        generator(zs.to(device), ys.to(device)).cpu()
        for zs, ys in zip(z.split(chunk), labels.split(chunk), strict=True)
    ]
    generator.train(was_training)
    return to_uint8(torch.cat(out))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
