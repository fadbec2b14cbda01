"""The evaluation protocol: which images are compared, how many, and how they are drawn.

Fixed so that a figure reproduces (docs/evaluation.md has the full statement):

- reference: the run's training images (the same seeded split as training), at most
  ``evaluate.reference`` of them, a seeded choice with ``evaluate.seed``;
- held out: ``n = min(evaluate.samples, held-out count)`` of the real images kept out of
  training, a seeded choice with ``evaluate.seed``;
- generated: ``n`` images from the final checkpoint, unfiltered: image ``i`` from the noise
  of ``(evaluate.seed, i)`` (``noise.noise_for``) and asked for the class of held-out
  image ``i``;
- features: computed once per feature space and image set, on the run's device.
"""

from __future__ import annotations

import json
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_run import faults
from aigc_run.contract.components import EvaluationContext, GenerativeModel, Metric
from aigc_run.contract.errors import AigcError, ConfigError, PluginError
from aigc_run.data import Dataset
from aigc_run.noise import Scheme, noise_for
from aigc_run.plugins import Contribution
from aigc_run.scenario import Scenario

SETS = ("reference", "held_out", "generated")
BATCH = 256  # generated images per forward pass


def check_ready(scenario: Scenario) -> None:
    """Fail before training, not after it, when a chosen feature space cannot be loaded."""
    if scenario.evaluate.metrics and "inception" in scenario.evaluate.features:
        from aigc_run.evaluation.inception import weights_path

        weights_path()


def evaluate(
    model: GenerativeModel,
    dataset: Dataset,
    train_idx: np.ndarray,
    held_idx: np.ndarray,
    scenario: Scenario,
    metrics: Sequence[Contribution[Metric]],
    device: str,
    output_dir: Path,
    cache_dir: Path,
    say: Callable[[str], None] = print,
) -> dict[str, float]:
    """Run ``metrics`` on the model's samples; write ``evaluation/evaluation.json`` under
    ``output_dir`` and return the figures by name."""
    cfg = scenario.evaluate
    if not metrics:
        return {}
    started = time.monotonic()
    count = min(cfg.samples, len(held_idx))
    if count < 2:
        say(
            f"evaluation skipped: {len(held_idx)} held-out real image(s), at least 2 are needed "
            "to compare with; raise data.holdout"
        )
        return {}
    held = _choose(held_idx, count, cfg.seed)
    reference = _choose(train_idx, cfg.reference, cfg.seed)
    conditional = scenario.model.conditional and dataset.num_classes > 1
    # Image i is asked for the class of held-out image i: both sets hold the same classes
    # in the same numbers, so an imbalanced data set does not inflate the figures.
    held_labels = torch.from_numpy(dataset.labels[held])
    generated_labels = held_labels if conditional else torch.zeros_like(held_labels)
    generated = draw(model, generated_labels, cfg.seed, device, scenario.sample.noise)
    folder = output_dir / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "reference": torch.from_numpy(np.ascontiguousarray(dataset.images[reference])),
        "held_out": torch.from_numpy(np.ascontiguousarray(dataset.images[held])),
        "generated": generated,
    }
    labels = {"reference": torch.from_numpy(dataset.labels[reference]), "held_out": held_labels}
    features = FeatureCache(
        images, labels["reference"], dataset.num_classes, cache_dir, device, say
    )
    context = EvaluationContext(
        reference=images["reference"],
        reference_labels=labels["reference"],
        held_out=images["held_out"],
        held_out_labels=labels["held_out"],
        generated=generated,
        generated_labels=generated_labels,
        class_names=list(dataset.class_names),
        conditional=conditional,
        feature_spaces=list(cfg.features),
        features=features,
        output_dir=folder,
        device=device,
        seed=cfg.seed,
    )
    figures: dict[str, float] = {}
    for metric in metrics:
        figures.update(compute(metric, context))
        faults.point("evaluation")  # computed, not yet written or recorded
    protocol = {
        "samples": count,
        "reference": len(reference),
        "seed": cfg.seed,
        "features": list(cfg.features),
        "metrics": [m.item.name for m in metrics],
    }
    text = json.dumps({"protocol": protocol, "figures": figures}, indent=1)
    (folder / "evaluation.json").write_text(text)
    say(
        f"evaluation: {len(metrics)} metric(s) on {count} generated and {count} held-out "
        f"real images against {len(reference)} training images, {time.monotonic() - started:.0f} s"
    )
    return figures


def draw(
    model: GenerativeModel,
    labels: torch.Tensor,
    seed: int,
    device: str,
    scheme: Scheme = "counter",
) -> torch.Tensor:
    """uint8 CPU images from the model, image ``i`` asked for class ``labels[i]``."""
    images = []
    for start in range(0, len(labels), BATCH):
        indices = list(range(start, min(start + BATCH, len(labels))))
        noise = noise_for(seed, indices, model.latent_dim, None, device, scheme)
        with torch.no_grad():
            out = model.generate(noise, labels[indices].to(device)).clamp(-1, 1)
        images.append(out.add(1).mul(127.5).round().to(torch.uint8).cpu())
    return torch.cat(images)


class FeatureCache:
    """``features(space, set)``: each image set embedded once per feature space."""

    def __init__(
        self,
        images: Mapping[str, torch.Tensor],
        reference_labels: torch.Tensor,
        num_classes: int,
        cache_dir: Path,
        device: str,
        say: Callable[[str], None],
    ) -> None:
        self.images = images
        self.reference_labels = reference_labels
        self.num_classes = num_classes
        self.cache_dir = cache_dir
        self.device = device
        self.say = say
        self.extractors: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.computed: dict[tuple[str, str], torch.Tensor] = {}

    def __call__(self, space: str, images: str) -> torch.Tensor:
        if images not in SETS:
            raise ValueError(f"no image set {images!r}; the sets are {', '.join(SETS)}")
        if (space, images) not in self.computed:
            self.computed[space, images] = self.extractor(space)(self.images[images])
        return self.computed[space, images]

    def extractor(self, space: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if space not in self.extractors:
            if space == "domain":
                from aigc_run.evaluation.features import domain_features

                self.extractors[space] = domain_features(
                    self.images["reference"],
                    self.reference_labels,
                    self.num_classes,
                    self.cache_dir,
                    self.device,
                    self.say,
                )
            elif space == "inception":
                from aigc_run.evaluation.inception import InceptionFeatures

                self.extractors[space] = InceptionFeatures(self.device)
            else:
                raise ConfigError(
                    f"no feature space {space!r}", "the feature spaces are domain and inception"
                )
        return self.extractors[space]


def compute(metric: Contribution[Metric], context: EvaluationContext) -> dict[str, float]:
    """One metric's figures by name; a plugin's failure names the plugin."""
    item = metric.item
    where = f"metric {item.name!r}"
    try:
        if item.uses_context:
            returned: Any = item.compute(context)
        else:
            returned = {
                item.name: item.compute(context.reference, context.generated),
                f"{item.name}:floor": item.compute(context.reference, context.held_out),
            }
    except AigcError:
        raise
    except Exception as e:
        raise PluginError(metric.plugin, where, f"{type(e).__name__}: {e}") from e
    if not isinstance(returned, Mapping):
        returned = {item.name: returned}
    figures = {}
    for name, value in returned.items():
        if not isinstance(name, str) or not name:
            raise PluginError(metric.plugin, where, f"returned a figure named {name!r}")
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, numbers.Real):
            raise PluginError(
                metric.plugin, where, f"figure {name!r} is a {type(value).__name__}, not a number"
            )
        figures[name] = float(value)
    return figures


def _choose(indices: np.ndarray, count: int, seed: int) -> np.ndarray:
    if len(indices) <= count:
        return np.asarray(indices)
    return np.sort(np.random.default_rng(seed).choice(indices, count, replace=False))
