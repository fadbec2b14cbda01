"""Drawing images from a model: each sample's noise from (seed, index), the batch size that
fits the device, the copy to the host while filters score, and a compiled generator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from aigc_run.contract.components import GenerativeModel
from aigc_run.noise import Scheme, noise_for

#: sample.batch_size = "auto" on a CPU, and in a distributed run the block of indices dealt
#: to each process in turn whatever batch each one picks, so the ranks never overlap.
AUTO_BATCH = 256
MEMORY_SHARE = 0.5  # of the free device memory that an "auto" batch may take


def generate(
    model: GenerativeModel,
    seed: int,
    indices: Sequence[int],
    labels: torch.Tensor,
    truncation: float | None,
    device: str,
    scheme: Scheme = "counter",
    psi: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``indices`` as float images in [0, 1] on the device, and as uint8 on the CPU."""
    images, pixels = generate_on_device(
        model, seed, indices, labels, truncation, device, scheme, psi
    )
    return images, to_host(pixels).wait()


def generate_on_device(
    model: GenerativeModel,
    seed: int,
    indices: Sequence[int],
    labels: torch.Tensor,
    truncation: float | None,
    device: str,
    scheme: Scheme = "counter",
    psi: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``indices`` as float images in [0, 1] and as uint8, both on the device.

    The noise is drawn on the device and the conversion to uint8 happens there, so only a
    quarter of the bytes cross to the host. bf16 autocast on CUDA: the generator's output
    is rounded to 8 bits anyway.
    """
    noise = noise_for(seed, indices, model.latent_dim, truncation, device, scheme, psi)
    return from_noise(model, noise, labels, device)


def from_noise(
    model: GenerativeModel, noise: torch.Tensor, labels: torch.Tensor, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``noise`` (on ``device``) asking for ``labels``, as in
    ``generate_on_device``: several callers' noise can go through the generator at once."""
    cuda = device.startswith("cuda")
    with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
        images = model.generate(noise, labels.to(device)).float().clamp_(-1, 1).add_(1).div_(2)
        pixels = images.mul(255).round_().to(torch.uint8)  # N x C x H x W
    return images, pixels


@dataclass
class HostCopy:
    """Pixels on their way to the host; ``wait()`` returns them once they have arrived."""

    pixels: torch.Tensor
    arrived: Any = None  # a torch.cuda.Event while the copy is in flight

    def wait(self) -> torch.Tensor:
        if self.arrived is not None:
            self.arrived.synchronize()
        return self.pixels


def to_host(pixels: torch.Tensor) -> HostCopy:
    """Start copying device pixels to the CPU. On CUDA the copy runs on a side stream into
    pinned memory, so the filters score the batch on the device while its pixels travel."""
    if pixels.device.type != "cuda":
        return HostCopy(pixels.cpu())
    compute = torch.cuda.current_stream(pixels.device)
    stream = _copy_streams.setdefault(pixels.device, torch.cuda.Stream(pixels.device))
    stream.wait_stream(compute)  # the pixels are computed before they are read
    host = torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True)
    with torch.cuda.stream(stream):
        host.copy_(pixels, non_blocking=True)
        arrived = torch.cuda.Event()
        arrived.record(stream)
    pixels.record_stream(stream)  # the allocator keeps them until the copy has read them
    return HostCopy(host, arrived)


_copy_streams: dict[torch.device, Any] = {}


class Compiled:
    """The model with ``generate`` through torch.compile (``sample.compile = true``).

    Worth it for long runs: compiling takes tens of seconds, then the generator's small
    kernels are fused. Compiled kernels round differently from eager ones, so an image
    regenerated later (eagerly) can differ from the written one by a grey level.
    """

    def __init__(self, model: GenerativeModel) -> None:
        self.latent_dim = model.latent_dim
        self.generate = torch.compile(model.generate)


def pick_batch_size(model: GenerativeModel, setting: int | str, device: str) -> int:
    """``sample.batch_size``; for "auto", AUTO_BATCH on a CPU and on CUDA the largest power
    of two whose generation fits in MEMORY_SHARE of the free memory, measured on a probe."""
    if setting != "auto":
        return int(setting)
    if not device.startswith("cuda"):
        return AUTO_BATCH
    probe = 64
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    labels = torch.zeros(probe, dtype=torch.int64)
    generate_on_device(model, 0, range(probe), labels, None, device)
    per_image = (torch.cuda.max_memory_allocated(device) - before) / probe
    free, _ = torch.cuda.mem_get_info(device)
    # memory torch's allocator holds but no tensor uses (training's, in the same process)
    # is free to it, though mem_get_info counts it as taken
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return batch_for_memory(free, per_image)


def batch_for_memory(free_bytes: float, bytes_per_image: float, cap: int = 65536) -> int:
    """The largest power of two, at most ``cap``, whose images take at most MEMORY_SHARE of
    ``free_bytes``; 1 when even one image does not fit (and the first batch runs out of memory)."""
    fits = int(free_bytes * MEMORY_SHARE / max(bytes_per_image, 1.0))
    return min(cap, 1 << max(fits.bit_length() - 1, 0))
