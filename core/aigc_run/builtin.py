"""The engine's own parts, contributed through the same hooks as any outside plugin.

Registered under the plugin name ``aigc-run``. Model modules import torch, so they are
imported only when a family is used, keeping ``aigc-run --help`` fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from aigc_run import hookimpl
from aigc_run.components import (
    GenerativeModel,
    ModelFamily,
    ModelSpec,
    Preprocessor,
    SampleWriter,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image


def _family(module: str):  # type: ignore[no-untyped-def]
    def create(spec: ModelSpec) -> GenerativeModel:
        return import_module(module).create(spec)  # type: ignore[no-any-return]

    return create


@hookimpl
def register_model_families() -> list[ModelFamily]:
    return [
        ModelFamily(
            "gan",
            "class-conditional DCGAN-style GAN: sharp samples, the default",
            _family("aigc_run.models.gan"),
        ),
        ModelFamily(
            "vae",
            "convolutional conditional VAE: stable to train, smoother samples",
            _family("aigc_run.models.vae"),
        ),
    ]


def write_png(folder: Path, stems: Sequence[str], images: torch.Tensor) -> list[str]:
    from PIL import Image

    files = []
    array = images.permute(0, 2, 3, 1).numpy()  # N x H x W x C, uint8
    for stem, pixels in zip(stems, array, strict=True):
        name = f"{stem}.png"
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        image.save(target)
        files.append(name)
    return files


@hookimpl
def register_sample_writers() -> list[SampleWriter]:
    return [SampleWriter("png", "one PNG file per sample, in a folder per class", write_png)]


def center_crop(image: Image.Image, image_size: int) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


@hookimpl
def register_preprocessors() -> list[Preprocessor]:
    # Steps every vertical needs live here, so two plugins never register the same name.
    return [Preprocessor("center-crop", "crop the largest centred square", center_crop)]
