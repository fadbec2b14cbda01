"""What every entry point does before it trains, samples or evaluates: resolve the named
components, pick the device, load and split the data, build the model and the images the
quality filters compare against.

``aigc-run scenario`` and ``resume`` (rank 0 and the follower ranks), ``sample`` and
``evaluate`` all go through here, so they agree on every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aigc_run.contract.components import FilterContext, GenerativeModel, ModelSpec
from aigc_run.contract.errors import ConfigError, PluginError
from aigc_run.contract.kinds import Kind
from aigc_run.data import Dataset
from aigc_run.plugins import Contribution, Plugins
from aigc_run.scenario import Scenario

if TYPE_CHECKING:
    import numpy as np
    import torch

    from aigc_run.contract.components import ModelFamily

T = TypeVar("T")

# Training images the filters compare against (memorisation, ...): at most 5,000, and at
# most 512 MiB of them as float, so at 256 px (768 KiB an image) about 680.
REFERENCE_LIMIT, REFERENCE_BYTES = 5000, 512 * 2**20


def lookup(plugins: Plugins, kind: Kind[T], name: str, where: str) -> Contribution[T]:
    """The contribution called ``name``, or a ConfigError naming the setting and the choices."""
    found = plugins.contributions(kind)
    if name not in found:
        raise ConfigError(
            f"{where}: no such name {name!r}",
            f"installed {kind.label}: {', '.join(sorted(found)) or 'none'}",
        )
    return found[name]


def check_plugin(scenario: Scenario, plugins: Plugins) -> None:
    """The plugin the scenario names is installed and switched on."""
    if scenario.plugin and scenario.plugin not in plugins.versions:
        disabled = scenario.plugin in plugins.disabled
        raise ConfigError(
            f"scenario {scenario.name!r} needs plugin {scenario.plugin!r}, which is "
            f"{'disabled by AIGC_DISABLE_PLUGINS' if disabled else 'not installed'}",
            "remove it from AIGC_DISABLE_PLUGINS"
            if disabled
            else f"install it: pip install aigc-{scenario.plugin}",
        )


def pick_device(requested: str) -> str:
    """``auto``: CUDA when there is a GPU, else the CPU; ``cuda`` without one is an error."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "train.device: 'cuda' was asked for but no CUDA device is visible",
            "use --set train.device=auto to fall back to the CPU",
        )
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def split(dataset: Dataset, scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, held-out indices), the same for every entry point of a run."""
    return dataset.split(scenario.data.holdout, scenario.train.seed)


def build_model(
    family: Contribution[ModelFamily], scenario: Scenario, dataset: Dataset, device: str
) -> GenerativeModel:
    """The family's model for this data, its weights drawn from ``train.seed``."""
    import torch

    torch.manual_seed(scenario.train.seed)
    return create_model(family, model_spec(scenario, dataset, device))


def model_spec(scenario: Scenario, dataset: Dataset, device: str) -> ModelSpec:
    """What the model family builds the networks from: the data's shape and classes, and
    the scenario's model and training settings."""
    return ModelSpec(
        channels=int(dataset.images.shape[1]),
        image_size=int(dataset.images.shape[2]),
        num_classes=dataset.num_classes,
        conditional=scenario.model.conditional and dataset.num_classes > 1,
        options=scenario.model.for_family(),
        train=scenario.train.model_dump(),
        device=device,
    )


def create_model(family: Contribution[ModelFamily], spec: ModelSpec) -> GenerativeModel:
    """``family``'s model for ``spec``, checked to be a GenerativeModel."""
    model = family.item.create(spec)
    if not isinstance(model, GenerativeModel):
        raise PluginError(
            family.plugin,
            "register_model_families",
            f"model family {family.item.name!r} created a {type(model).__name__}, "
            "not a GenerativeModel",
            "make the model class a subclass of aigc_run.GenerativeModel",
        )
    return model


def check_model(family: Contribution[ModelFamily], scenario: Scenario, channels: int) -> None:
    """Build the family's model once on the CPU, before the run is recorded, so that an
    image size or a model setting it refuses fails at once and leaves no failed run in the
    registry. ``channels``: what the dataset source yields; classes are not known yet."""
    spec = ModelSpec(
        channels=channels,
        image_size=scenario.data.image_size,
        num_classes=2,
        conditional=scenario.model.conditional,
        options=scenario.model.for_family(),
        train=scenario.train.model_dump(),
        device="cpu",
    )
    family.item.create(spec)


def as_float(dataset: Dataset, index: Any, device: str) -> torch.Tensor:
    """Images ``index`` as float in [0, 1] on ``device``, as quality filters take them."""
    import torch

    return torch.from_numpy(dataset.images[index]).to(device).float().div_(255)


def labels_of(dataset: Dataset, index: Any, device: str) -> torch.Tensor:
    import torch

    return torch.from_numpy(dataset.labels[index]).to(device)


def reference_context(
    dataset: Dataset,
    train_idx: Any,
    device: str,
    cache_dir: Path,
    model: GenerativeModel | None = None,
) -> FilterContext:
    """What the quality filters compare generated images against: up to REFERENCE_LIMIT
    training images that fit in REFERENCE_BYTES as float (a fixed random subset beyond
    that) and the run's domain classifier. Its ``labels`` are empty: each batch puts its
    own in (``for_batch``). ``model``: the run's, whose critic the ``realness`` filter asks."""
    import numpy as np

    chosen = train_idx
    limit = min(REFERENCE_LIMIT, REFERENCE_BYTES // (4 * dataset.images[0].size))
    if len(train_idx) > limit:
        chosen = np.sort(np.random.default_rng(0).choice(train_idx, limit, replace=False))
    reference = as_float(dataset, chosen, device)
    reference_labels = labels_of(dataset, chosen, device)
    return filter_context(reference, reference_labels, dataset.class_names, cache_dir, model)


def filter_context(
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    class_names: Sequence[str],
    cache_dir: Path,
    model: GenerativeModel | None = None,
) -> FilterContext:
    """The filters' context over ``reference`` images (float in [0, 1]): the domain
    classifier trained on them (or found in ``cache_dir``) and ``model``'s critic."""
    from aigc_run.evaluation.classifier import DomainClassifier

    return FilterContext(
        reference_labels[:0],
        reference,
        reference_labels,
        class_names,
        DomainClassifier(reference, reference_labels, len(class_names), cache_dir),
        None if model is None else partial(_realness, model),
    )


def _realness(model: GenerativeModel, images: torch.Tensor, labels: torch.Tensor) -> Any:
    """The model's critic on filter images (float in [0, 1]), as it saw them: in [-1, 1]."""
    return model.realness(images * 2 - 1, labels)


def for_batch(reference: FilterContext, labels: torch.Tensor) -> FilterContext:
    """The reference context for a batch whose images were asked for ``labels``."""
    return dataclasses.replace(reference, labels=labels)
