"""The engine's own parts, contributed through the same hooks as any outside plugin.

Registered under the plugin name ``aigc-run``; like any plugin it imports only the public
API, ``aigc_run``. Model modules import torch, so they are
imported only when a family is used, keeping ``aigc-run --help`` fast.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

from aigc_run import (
    EvaluationContext,
    FilterContext,
    GenerativeModel,
    Metric,
    ModelFamily,
    ModelSpec,
    Preprocessor,
    QualityFilter,
    SampleWriter,
    hookimpl,
    write_png,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image


def _family(module: str) -> Callable[[ModelSpec], GenerativeModel]:
    def create(spec: ModelSpec) -> GenerativeModel:
        created: GenerativeModel = import_module(module).create(spec)
        return created

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


def _figures(module: str, function: str) -> Callable[[EvaluationContext], dict[str, float]]:
    def compute(context: EvaluationContext) -> dict[str, float]:
        figures: dict[str, float] = getattr(import_module(module), function)(context)
        return figures

    return compute


def realness_score(images: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """Discriminator rejection sampling in its logit-threshold form (Azadi et al. 2019):
    the run's own discriminator scores each sample, and samples it finds less real than
    the threshold are rejected. Without a critic (a family that has none) every image
    scores 0 and the default threshold passes them all."""
    import torch

    scores = context.model_realness(images)
    return torch.zeros(len(images), device=images.device) if scores is None else scores


@hookimpl
def register_quality_filters() -> list[QualityFilter]:
    return [
        QualityFilter(
            "realness",
            "the run's own discriminator finds the sample real (discriminator rejection "
            "sampling); 'auto' keeps what it scores as high as 90% of held-out real images",
            realness_score,
            threshold=0.0,
        )
    ]


@hookimpl
def register_metrics() -> list[Metric]:
    # Through the same hook and contract as a plugin's metrics (uses_context: they compare
    # features of the training, held-out and generated images; see docs/evaluation.md).
    figures = "aigc_run.evaluation.figures"
    return [
        Metric(
            "fid",
            "Frechet distance of the feature distributions (lower is better)",
            _figures(figures, "fid"),
            uses_context=True,
        ),
        Metric(
            "kid",
            "kernel (polynomial MMD) distance, unbiased at small sample sizes",
            _figures(figures, "kid"),
            uses_context=True,
        ),
        Metric(
            "precision-recall",
            "k-NN precision (fidelity) and recall (diversity)",
            _figures(figures, "precision_recall"),
            higher_is_better=True,
            uses_context=True,
        ),
        Metric(
            "density-coverage",
            "k-NN density and coverage, robust to outliers",
            _figures(figures, "density_coverage"),
            higher_is_better=True,
            uses_context=True,
        ),
        Metric(
            "class-fid",
            "FID within each class, for class-conditional models",
            _figures(figures, "class_fid"),
            uses_context=True,
        ),
        Metric(
            "memorisation",
            "share of samples as close to a training image as almost no unseen real image is",
            _figures("aigc_run.evaluation.memorisation", "memorisation"),
            uses_context=True,
        ),
        Metric(
            "tstr",
            "accuracy on held-out real images of a classifier trained on the samples",
            _figures(figures, "tstr"),
            higher_is_better=True,
            uses_context=True,
        ),
    ]
