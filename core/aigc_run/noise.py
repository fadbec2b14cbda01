"""Per-sample noise: row ``i`` is a function of ``(seed, index[i])`` alone, drawn on the device.

Any written image must be redrawable from (run, checkpoint, seed, index), whatever the
batch size, the number of processes or which indices were drawn together. torch's random
generators are sequential streams. The first scheme (``"generator"``, kept so that runs
made with it regenerate as they were) seeded one CPU generator per index with
``(seed << 32) + index``: a Python loop per image, which caps sampling at some 10^5 images
per second, far below a GPU; and torch's CPU generator keeps only the low 32 bits of its
seed, so every ``sample.seed`` drew the same noise.

The ``"counter"`` scheme (the default) is counter-based, as Philox and JAX's threefry are:
every value is a hash of (seed, index, position), so a whole batch is a few vectorised
integer operations on the device. torch has no per-row-seeded counter-based generator,
hence the hand-written hash: splitmix64's finaliser (Steele et al. 2014, the mixer of
Java's SplittableRandom), on int64 tensors whose multiplications wrap modulo 2^64, then
Box-Muller in float64 for the normal draws. The integers are the same bits on every
device; the float64 transform can differ in the last bit between CPU and CUDA maths
libraries, far below float32, so values agree to the float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

Scheme = Literal["counter", "generator"]

_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: splitmix64's counter increment
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def noise_for(
    seed: int,
    indices: Sequence[int] | torch.Tensor,
    latent_dim: int,
    truncation: float | None = None,
    device: str | torch.device = "cpu",
    scheme: Scheme = "counter",
    psi: float = 1.0,
) -> torch.Tensor:
    """len(indices) x latent_dim standard normal noise on ``device``; row i depends only on
    (seed, indices[i]). With ``truncation`` t, values beyond +-t are redrawn (the
    truncation trick), again from (seed, index) alone; then every row is scaled by ``psi``
    (pulled towards the mean, 0; 1 leaves it)."""
    z = _unscaled(seed, indices, latent_dim, truncation, device, scheme)
    return z if psi == 1.0 else z * psi


def _unscaled(
    seed: int,
    indices: Sequence[int] | torch.Tensor,
    latent_dim: int,
    truncation: float | None,
    device: str | torch.device,
    scheme: Scheme,
) -> torch.Tensor:
    if scheme == "generator":
        return _generator_noise(seed, indices, latent_dim, truncation).to(device)
    index = torch.as_tensor(indices, dtype=torch.int64, device=device).reshape(-1, 1)
    key = mix(index + _int64(mix64(seed & (2**64 - 1))))  # N x 1: one stream per sample
    position = torch.arange(latent_dim, dtype=torch.int64, device=device)
    z = _normal(key, position)
    if truncation is not None:
        redraw = 1
        while (far := z.abs() > truncation).any():  # each round reads fresh positions
            z = torch.where(far, _normal(key, position + redraw * latent_dim), z)
            redraw += 1
    return z


def _normal(key: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """float32 N(0, 1) for every (key, position) pair, by Box-Muller on one 64-bit hash."""
    bits = mix(key + (position + 1) * _int64(_GOLDEN))
    high = _shift_right(bits, 32).double()  # two independent 32-bit uniforms
    low = (bits & 0xFFFFFFFF).double()
    u1 = (high + 0.5) / 2**32  # in (0, 1): the logarithm stays finite
    u2 = low / 2**32
    return (torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)).float()


def mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (the bits of uint64 values)."""
    x = (x ^ _shift_right(x, 30)) * _int64(_MUL1)
    x = (x ^ _shift_right(x, 27)) * _int64(_MUL2)
    return x ^ _shift_right(x, 31)


def mix64(x: int) -> int:
    """``mix`` on one Python integer in [0, 2^64): the reference the tensor form must match."""
    mask = 2**64 - 1
    x = ((x ^ (x >> 30)) * _MUL1) & mask
    x = ((x ^ (x >> 27)) * _MUL2) & mask
    return x ^ (x >> 31)


def _shift_right(x: torch.Tensor, n: int) -> torch.Tensor:
    """Logical right shift: int64's ``>>`` copies the sign bit, so clear what it copied."""
    return (x >> n) & ((1 << (64 - n)) - 1)


def _int64(x: int) -> int:
    """The int64 with the bits of uint64 ``x``."""
    return x - 2**64 if x >= 2**63 else x


def _generator_noise(
    seed: int, indices: Sequence[int] | torch.Tensor, latent_dim: int, truncation: float | None
) -> torch.Tensor:
    """The first scheme: one CPU torch.Generator per index, seeded ``(seed << 32) + index``."""
    rows = []
    for index in [int(i) for i in indices]:
        generator = torch.Generator().manual_seed((seed << 32) + index)
        z = torch.randn(latent_dim, generator=generator)
        if truncation is not None:  # the truncation trick: redraw values beyond +-t
            while (far := z.abs() > truncation).any():
                z[far] = torch.randn(int(far.sum()), generator=generator)
        rows.append(z)
    return torch.stack(rows) if rows else torch.zeros(0, latent_dim)
