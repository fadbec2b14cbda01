"""The small typed objects that plugins contribute through the ``register_*`` hooks.

Every object carries a ``name`` unique across plugins. The engine validates each one when
the plugin is loaded (see ``plugins.py``), so a wrong field fails at start-up, naming the
plugin, rather than halfway through a run.

This module imports neither torch nor PIL at import time: plugins import it when the CLI
starts, and ``aigc-run --help`` must stay fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch
    from PIL import Image


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------


class Sample(NamedTuple):
    """One decoded training image and its class name (``""`` when unlabelled)."""

    image: Image.Image
    label: str


class Skipped(NamedTuple):
    """An input a loader could not use: counted and reported, never silently dropped."""

    item: str  # a file name or index, for the user to find it
    reason: str  # short and stable, used as a counting key: "corrupt image", "no label"


@dataclass(frozen=True)
class DataRequest:
    """What the engine asks a DatasetSource to load."""

    path: Path | None  # the user's data (--data / data.path); None asks for the built-in default
    options: Mapping[str, Any]  # data.options from the scenario, source-specific
    image_size: int  # the size the engine will resize to; a loader may decode smaller (JPEG draft)
    channels: int  # 1 (grayscale) or 3 (RGB)
    seed: int  # for built-in generators, so the demo data is the same on every machine


@dataclass(frozen=True)
class Download:
    """A checksummed file a source can fetch for users who are online."""

    url: str
    sha256: str
    filename: str


@dataclass(frozen=True)
class DatasetSource:
    """Where training images come from.

    ``load`` yields ``Sample`` and ``Skipped`` items. It may yield PIL images of any size
    and mode: the engine applies the scenario's preprocessors, converts to ``channels`` and
    resizes, then stores the whole set once as uint8.
    """

    name: str
    description: str
    load: Callable[[DataRequest], Iterable[Sample | Skipped]]
    channels: int
    classes: Sequence[str] = ()  # the class names in label order; () = take them from the data
    builtin: bool = False  # True when load works with path=None (an embedded default)
    notice: str = ""  # printed when the built-in default is used ("a synthetic demo catalogue")
    download: Download | None = None


@dataclass(frozen=True)
class Preprocessor:
    """A named step applied to every training image once, before caching.

    ``apply(image, image_size)`` returns a new PIL image; it may change the size and mode.
    """

    name: str
    description: str
    apply: Callable[[Image.Image, int], Image.Image]


# ---------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterContext:
    """What a quality filter may compare a batch against, on the engine's device."""

    labels: torch.Tensor  # int64 N: the class each generated image was asked for
    reference: torch.Tensor  # float [0, 1] M x C x H x W: (a sample of) the training images
    reference_labels: torch.Tensor  # int64 M
    class_names: Sequence[str]
    # classifier(images) -> N x len(class_names) class probabilities, by the run's domain
    # classifier (a small network trained on the training images); the engine sets it.
    classifier: Callable[[torch.Tensor], torch.Tensor] | None = None
    # realness(images, labels) -> N scores from the run's own model (GenerativeModel.realness:
    # the gan's discriminator), higher = more real; None when the family has no critic.
    realness: Callable[[torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None

    def model_realness(self, images: torch.Tensor) -> torch.Tensor | None:
        """N scores, by the run's own critic, of how real image i looks as class
        ``labels[i]``; None when there is none (the family has no critic, or a test)."""
        if self.realness is None:
            return None
        scores = self.realness(images, self.labels)
        return None if scores is None else scores.to(images.device)

    def asked_class_probability(self, images: torch.Tensor) -> torch.Tensor:
        """N probabilities, by the domain classifier, that image i shows ``labels[i]``.

        Unlabelled data (fewer than two classes) has no classifier to ask: every image gets
        1.0, so a filter built on it passes everything rather than guessing.
        """
        import torch

        if len(self.class_names) < 2 or not len(images):
            return torch.ones(len(images), device=images.device)
        if self.classifier is None:
            raise ValueError(
                "this FilterContext has no classifier: in a run the engine gives one; "
                "a test makes one with aigc_run.testing.filter_context"
            )
        probabilities = self.classifier(images).to(images.device)
        return probabilities.gather(1, self.labels.view(-1, 1).to(images.device)).squeeze(1)


@dataclass(frozen=True)
class QualityFilter:
    """A check on generated images.

    ``score(images, context)`` takes float images in [0, 1], N x C x H x W on the engine's
    device, and returns N float scores. An image passes when its score is at least the
    threshold (``higher_is_better``) or at most it (otherwise). ``batch_independent``: an
    image's score depends on that image (and its context) alone, never on the other images
    scored with it, so the server may score several requests' images in one call.
    """

    name: str
    description: str
    score: Callable[[torch.Tensor, FilterContext], torch.Tensor]
    threshold: float
    higher_is_better: bool = True
    batch_independent: bool = False

    def passes(self, score: float, threshold: float) -> bool:
        return score >= threshold if self.higher_is_better else score <= threshold


@dataclass(frozen=True)
class SampleWriter:
    """Writes accepted (and rejected) samples to disk.

    ``write(folder, stems, images)`` gets uint8 CPU images N x C x H x W and one relative
    stem per image (``"Shoes/000012"``, already made safe by the engine); it returns the
    relative file names it wrote, in order. The engine writes the manifest.
    """

    name: str
    description: str
    write: Callable[[Path, Sequence[str], torch.Tensor], list[str]]


@dataclass(frozen=True)
class EvaluationContext:
    """What a metric with ``uses_context=True`` may compare (see docs/evaluation.md).

    Images are uint8 CPU tensors N x C x H x W, labels int64 indices into ``class_names``.
    ``reference`` are training images, ``held_out`` real images the model never saw, and
    ``generated`` as many images drawn from the model as there are held-out ones, so a
    figure and its real-vs-real floor are measured on equally many images.
    """

    reference: torch.Tensor
    reference_labels: torch.Tensor
    held_out: torch.Tensor
    held_out_labels: torch.Tensor
    generated: torch.Tensor
    generated_labels: torch.Tensor  # the class each image was asked for
    class_names: Sequence[str]  # [] when the data has no labels
    conditional: bool  # a class-conditional model drew them: generated_labels mean something
    feature_spaces: Sequence[str]  # evaluate.features: "domain", "inception"
    # features(space, images) -> N x D float features of "reference", "held_out" or
    # "generated" in a feature space, computed once per run and shared by every metric.
    features: Callable[[str, str], torch.Tensor]
    output_dir: Path  # <run output>/evaluation: where a metric may write files
    device: str
    seed: int  # evaluate.seed, for anything random in a metric


@dataclass(frozen=True)
class Metric:
    """A figure comparing real and generated images.

    By default ``compute(real, generated)`` gets uint8 CPU tensors N x C x H x W (training
    images, then generated ones) and returns a float; the engine also calls it with the
    held-out real images in place of the generated ones for the real-vs-real floor, stored
    as ``<name>:floor``.

    With ``uses_context=True`` it is called once as ``compute(context)`` with an
    ``EvaluationContext`` and returns a float (stored under the metric's name) or a mapping
    of figure names to floats; it names each figure's floor ``<figure>:floor`` itself.
    """

    name: str
    description: str
    compute: Callable[..., float | Mapping[str, float]]
    higher_is_better: bool = False
    uses_context: bool = False


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Everything a model family needs to build a model for one run."""

    channels: int
    image_size: int  # a power of two, >= 16
    num_classes: int  # 0 or 1 = unconditional
    conditional: bool
    # the scenario's [model] keys for this family: the shared ones and its own (its table,
    # [model.gan], merged in; other families' tables left out)
    options: Mapping[str, Any]
    train: Mapping[str, Any]  # the scenario's [train] section (learning rates, betas, ...)
    device: str  # "cpu", "cuda", "cuda:1"


class GenerativeModel(ABC):
    """What the engine's trainer and sampler drive; a model family's ``create`` returns one.

    Subclass it: the four abstract methods are required, the two hooks below them are
    optional (their defaults do nothing). Images are float in [-1, 1].
    """

    latent_dim: int

    @abstractmethod
    def train_step(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> Mapping[str, float | torch.Tensor]:
        """One optimisation step on a batch; returns the losses to log.

        Floats or 0-dim tensors: tensors are read only at the logging interval, so a GPU
        is not made to wait every step. Every random draw should use torch's global
        generators, which the engine seeds per step (that makes resumed runs exact).
        """

    @abstractmethod
    def generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images N x C x H x W in [-1, 1] from noise N x latent_dim; no gradients."""

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to sample again, flat, for a safetensors file."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Take back what ``state_dict`` returned."""

    def prepare_sampling(self, images: torch.Tensor, labels: torch.Tensor) -> None:  # noqa: B027
        """Called once after the last training step, before the final checkpoint, with the
        whole training set (uint8 N x C x H x W and int64 N on the device). The vae fits its
        latent mixture here; the gan re-measures its sampling generator's batch-norm
        statistics. The default does nothing."""

    def distribute(self, wrap: Callable[[torch.nn.Module], torch.nn.Module]) -> bool:
        """Train over several processes: called once before the first step on every rank;
        ``wrap(module)`` returns the module wrapped in DistributedDataParallel, which
        ``train_step`` then calls (``state_dict`` keeps the plain modules). Return True
        once wrapped. The default returns False: the family trains in one process only,
        and ``--nproc`` > 1 is refused for it."""
        return False

    def realness(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """How real the model's own critic finds ``images`` (float in [-1, 1], N x C x H x
        W, on its device) asked for ``labels``: N scores, higher = more real. The gan
        returns its discriminator's logits; the ``realness`` filter (discriminator
        rejection sampling) keeps the samples it scores highest. The default returns None:
        no critic."""
        return None

    def start_from(self, state: Mapping[str, torch.Tensor], classes: Sequence[int | None]) -> bool:
        """Take the weights of a trained model of the same family and settings
        (``train.init_from``): called once before the first step, with that model's
        ``state_dict()``. ``classes[i]`` is the row of its class tables that this model's
        class ``i`` matches by name, or None for a class it did not have. Take the networks'
        weights, not the optimiser state or the step: training starts anew from them.
        Return True once done. The default returns False: the family cannot start from a
        trained model, and ``train.init_from`` is refused for it."""
        return False


@dataclass(frozen=True)
class ModelFamily:
    """A kind of generative model (``gan``, ``vae``) the scenario picks with model.family."""

    name: str
    description: str
    create: Callable[[ModelSpec], GenerativeModel]


@dataclass(frozen=True)
class BaseModel:
    """A trained model a plugin offers to start runs from: ``--init-from PLUGIN:NAME``.

    ``checkpoint`` is a safetensors file the plugin ships as package data (or that a user
    built): a run's checkpoint. ``sha256`` is that file's digest; a file that no longer
    matches it is refused. The rest describes how it was trained, so a run can be checked
    against it before it is recorded: the family, the image size and channels, the class
    names in label order, and its ``[model]`` settings (``aigc-run runs show RUN --json``
    lists all of them for a run).
    """

    name: str
    description: str
    checkpoint: Path
    sha256: str
    family: str
    image_size: int
    channels: int
    classes: Sequence[str] = ()  # () = unlabelled
    model: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# scenarios and runs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioFile:
    """A scenario recipe a plugin ships: a TOML file, or the same content as a mapping."""

    name: str
    description: str
    path: Path | None = None
    content: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RunInfo:
    """What lifecycle hooks are told about a run. Observers read it; they never change it."""

    id: int
    scenario: str
    config: dict[str, Any]
    output_dir: Path
    device: str


@dataclass(frozen=True)
class FilteredBatch:
    """A batch of generated samples after the quality filters, for after_samples_filtered."""

    seed: int
    indices: Sequence[int]
    labels: Sequence[str]
    scores: dict[str, list[float]]  # filter name -> one score per sample
    accepted: Sequence[bool]
    reasons: Sequence[str]  # why each was rejected, for people ("" when accepted)
    files: Sequence[str]  # relative to the run's folder; "" for a rejected one not kept
    thresholds: Mapping[str, float] = field(default_factory=dict)  # filter name -> threshold
    rejected_by: Sequence[Sequence[str]] = ()  # for each sample, the filters it failed
