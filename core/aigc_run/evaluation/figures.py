"""The engine's own metrics: each takes an ``EvaluationContext`` and returns its figures,
each beside its real-vs-real floor (``<figure>:floor``).

Feature figures are computed in every space of ``evaluate.features`` and named
``<figure>:<space>``: ``fid:domain``, ``fid:domain:floor``. The value compares the
generated images with the training images (the reference); the floor compares held-out
real images, as many as there are generated ones, with the same reference: the figure a
perfect generator would reach at this sample size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch

from aigc_run.contract.components import EvaluationContext
from aigc_run.evaluation import IMAGES, NEEDS, metrics
from aigc_run.evaluation.features import DomainFeatures, train_network

CANDIDATES = (("", "generated"), (":floor", "held_out"))  # (name suffix, image set)
TSTR_STEPS = 300  # classifier steps for train-on-synthetic and train-on-real alike

Figures = Callable[[torch.Tensor, torch.Tensor], Mapping[str, float]]


def per_space(context: EvaluationContext, compute: Figures) -> dict[str, float]:
    """``compute(reference, candidate)`` in each feature space, for both candidates."""
    out: dict[str, float] = {}
    for space in context.feature_spaces:
        reference = context.features(space, "reference")
        for suffix, candidate in CANDIDATES:
            for figure, value in compute(reference, context.features(space, candidate)).items():
                out[f"{figure}:{space}{suffix}"] = value
    return out


def subset(total: int, count: int, seed: int) -> torch.Tensor:
    """A seeded choice of ``count`` of ``total`` indices, in increasing order."""
    if count >= total:
        return torch.arange(total)
    chosen = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count]
    return chosen.sort().values


def measured_fid(name: str, reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, float]:
    """``{name: FID}``; or, with fewer images on a side than the features have dimensions,
    where the covariance estimate is singular and the figure mostly its own bias, NaN with
    ``name:images`` (the smaller side) and ``name:needs`` (the dimensions) beside it."""
    images, needs = min(len(reference), len(candidate)), int(reference.shape[1])
    if images < needs:
        return {name: math.nan, name + IMAGES: float(images), name + NEEDS: float(needs)}
    return {name: metrics.fid(reference, candidate)}


def fid(context: EvaluationContext) -> dict[str, float]:
    out: dict[str, float] = {}
    for space in context.feature_spaces:
        reference = context.features(space, "reference")
        for suffix, candidate in CANDIDATES:
            out |= measured_fid(
                f"fid:{space}{suffix}", reference, context.features(space, candidate)
            )
    return out


def kid(context: EvaluationContext) -> dict[str, float]:
    return per_space(context, lambda real, fake: {"kid": metrics.kid(real, fake, context.seed)[0]})


def _equal_sized(context: EvaluationContext, compute: Figures) -> dict[str, float]:
    # The k-NN manifolds assume sets of equal size (both papers): compare the candidates
    # with a seeded subset of the reference as large as they are.
    def on_subset(reference: torch.Tensor, candidate: torch.Tensor) -> Mapping[str, float]:
        chosen = subset(len(reference), len(candidate), context.seed).to(reference.device)
        return compute(reference[chosen], candidate)

    return per_space(context, on_subset)


def precision_recall(context: EvaluationContext) -> dict[str, float]:
    return _equal_sized(context, metrics.precision_recall)


def density_coverage(context: EvaluationContext) -> dict[str, float]:
    return _equal_sized(context, metrics.density_coverage)


def class_fid(context: EvaluationContext) -> dict[str, float]:
    """FID within each class (``fid[Shoes]:domain``), for class-conditional models: a class
    the model draws badly hides behind a good overall FID. A class with fewer images on a
    side than the features have dimensions is not measurable (``measured_fid``)."""
    if not context.conditional:
        return {}
    labels = {
        "reference": context.reference_labels,
        "generated": context.generated_labels,
        "held_out": context.held_out_labels,
    }
    out: dict[str, float] = {}
    for space in context.feature_spaces:
        features = {name: context.features(space, name) for name in labels}
        for c, name in enumerate(context.class_names):
            chosen = {s: features[s][(labels[s] == c).to(features[s].device)] for s in labels}
            for suffix, candidate in CANDIDATES:
                figure = f"fid[{name}]:{space}{suffix}"
                out |= measured_fid(figure, chosen["reference"], chosen[candidate])
    return out


def tstr(context: EvaluationContext) -> dict[str, float]:
    """Train-on-synthetic-test-on-real: a classifier trained on the generated images (with
    the classes they were asked for) is tested on the held-out real images. Its floor
    (train-on-real) is the same classifier trained on as many real training images."""
    if not context.conditional:
        return {}
    classes = len(context.class_names)
    real = subset(len(context.reference), len(context.generated), context.seed)
    sets = {
        "tstr": (context.generated, context.generated_labels),
        "tstr:floor": (context.reference[real], context.reference_labels[real]),
    }
    out = {}
    for figure, (images, labels) in sets.items():
        net = train_network(images, labels, classes, context.device, max_steps=TSTR_STEPS)
        guessed = DomainFeatures(net, context.device).class_probabilities(context.held_out)
        out[figure] = float((guessed.argmax(dim=1).cpu() == context.held_out_labels).float().mean())
    return out
