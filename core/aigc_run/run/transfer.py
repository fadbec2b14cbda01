"""``train.init_from``: a run that starts from a trained model instead of random weights.

The trained model is found and checked before the new run is recorded: the run exists and
completed, its last checkpoint is intact (sha256), and it was trained with the same model
family and image size and with networks of the same shape (a throwaway model built with
the new settings takes its weights, on the CPU). Once the new data is loaded, its classes
are matched by name (exactly, else ignoring case) and the model family takes the weights
(``GenerativeModel.start_from``): a class the trained model had keeps what it learned.
A new class starts from the mean of the trained classes (models/transfer.py), or, with
``train.new_class_from = "nearest"``, as the trained class its photos look most like to the
trained model's own critic (``GenerativeModel.realness``, asked for each trained class in
turn: for the gan, its discriminator's class projection); a family with no critic, or a
model trained on one class, still starts it from the mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from aigc_run.contract.components import GenerativeModel, ModelFamily, ModelSpec
from aigc_run.contract.errors import AigcError, ConfigError
from aigc_run.contract.kinds import BASE_MODELS
from aigc_run.data import Dataset
from aigc_run.plugins import Contribution, Plugins
from aigc_run.registry import Registry
from aigc_run.scenario import ModelConfig, NewClassFrom, Scenario

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Parent:
    """The trained model a run starts from, as the registry records it (``parent``)."""

    source: str  # what train.init_from said
    run: int | None
    checkpoint: str
    step: int
    sha256: str
    family: str
    model: dict[str, Any]  # its [model] settings
    dataset: dict[str, Any]  # images, channels, image_size, classes

    def describe(self) -> str:
        if self.run is None:
            return f"base model {self.source}"
        return f"run {self.run} (checkpoint step {self.step})"

    @classmethod
    def of_file(
        cls,
        source: str,
        path: Path,
        sha256: str,
        family: str,
        model: dict[str, Any],
        dataset: dict[str, Any],
    ) -> Parent:
        """A checkpoint outside the registry (a plugin's base model, a benchmark's), its step
        read from the file."""
        from aigc_run.checkpoints import metadata  # imports torch: only once it is needed

        step = int(metadata(path).get("step", "0"))
        return cls(source, None, str(path), step, sha256, family, model, dataset)

    def record(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in asdict(self).items()
            if k in ("source", "run", "checkpoint", "step", "sha256")
        }


def find(source: str, registry: Registry, plugins: Plugins) -> Parent:
    """The trained model ``train.init_from`` names (a run id, or a plugin's base model:
    ``PLUGIN:NAME`` or ``NAME``), checked; a ConfigError saying what is wrong and what to
    do otherwise. Nothing is recorded."""
    if not source.strip().isdigit():
        return _base_model(source, plugins)
    run_id = int(source)
    run = registry.get_run(run_id)  # a RegistryError naming the id when there is none
    if run.status != "completed":
        raise ConfigError(
            f"train.init_from: run {run_id} is {run.status}, not completed",
            f"start from a completed run, or finish this one first (aigc-run resume {run_id})",
        )
    if run.dataset is None or not run.checkpoints:
        raise ConfigError(
            f"train.init_from: run {run_id} recorded no data description or no checkpoint "
            "(it ran before aigc-run kept them)",
            "start from a run trained with this version of aigc-run",
        )
    step, location, digest = run.checkpoints[-1]
    path = Path(location)
    from aigc_run.checkpoints import problem_with  # imports torch: only once it is needed

    if problem := problem_with(path, digest):
        raise ConfigError(
            f"train.init_from: run {run_id}'s checkpoint {path} {problem}",
            "restore the file from a backup, or start from another run",
        )
    model = ModelConfig.model_validate(run.config.get("model", {})).for_family()
    return Parent(
        source,
        run_id,
        str(path),
        step,
        digest,
        str(model.get("family", "gan")),
        model,
        dict(run.dataset),
    )


def _base_model(source: str, plugins: Plugins) -> Parent:
    """The base model ``source`` names, its file checked against its sha256."""
    plugin, _, name = source.rpartition(":")
    found = plugins.contributions(BASE_MODELS)
    offered = ", ".join(f"{c.plugin}:{n}" for n, c in sorted(found.items())) or "none"
    if name not in found or plugin not in ("", found[name].plugin):
        raise ConfigError(
            f"train.init_from: {source!r} is neither a run id nor a base model",
            f"give a completed run's id (aigc-run runs lists them) or a base model; "
            f"installed base models: {offered}",
        )
    item, plugin = found[name].item, found[name].plugin
    from aigc_run.checkpoints import problem_with

    path = Path(item.checkpoint)
    if problem := problem_with(path, item.sha256):
        raise ConfigError(
            f"train.init_from: base model {plugin}:{name}'s checkpoint {path} {problem}",
            f"reinstall the plugin (pip install --force-reinstall aigc-{plugin})",
        )
    return Parent.of_file(
        f"{plugin}:{name}",
        path,
        item.sha256,
        item.family,
        dict(item.model),
        {
            "images": None,
            "channels": item.channels,
            "image_size": item.image_size,
            "classes": list(item.classes),
        },
    )


class Trained(NamedTuple):
    """The trained model a run starts from: where it came from, its weights, read once,
    and a model on the CPU that holds them with the trained model's classes (what ``start``
    asks which class new photos look like)."""

    parent: Parent
    state: Mapping[str, torch.Tensor]
    model: GenerativeModel


def check_fits(parent: Parent, scenario: Scenario, family: Contribution[ModelFamily]) -> Trained:
    """The new run's model can take ``parent``'s weights: same family, image size and
    network shapes (a throwaway model on the CPU tries). Raises a ConfigError naming both;
    returns the weights and that model, for ``start``."""
    from aigc_run.checkpoints import load

    if parent.family != scenario.model.family:
        raise ConfigError(
            f"train.init_from: {parent.describe()} is a {parent.family} model and this "
            f"scenario trains a {scenario.model.family}",
            f"set model.family={parent.family}, or start from a {scenario.model.family} run",
        )
    size = int(parent.dataset["image_size"])
    if size != scenario.data.image_size:
        raise ConfigError(
            f"train.init_from: {parent.describe()} was trained at {size} px and this "
            f"scenario trains at {scenario.data.image_size} px",
            f"set data.image_size={size}, or start from a run trained at "
            f"{scenario.data.image_size} px",
        )
    classes = list(parent.dataset["classes"])
    spec = ModelSpec(
        channels=int(parent.dataset["channels"]),
        image_size=size,
        num_classes=len(classes),
        conditional=scenario.model.conditional,
        options=scenario.model.for_family(),
        train=scenario.train.model_dump(),
        device="cpu",
    )
    trial = family.item.create(spec)
    state = load(Path(parent.checkpoint))
    try:
        took = trial.start_from(state, range(len(classes)) or [None])
    except ConfigError as e:
        differ = [
            f"model.{k} is {parent.model.get(k)!r} there and {v!r} here"
            for k, v in scenario.model.for_family().items()
            if k in parent.model and parent.model[k] != v
        ]
        raise ConfigError(
            f"{e.message}; {parent.describe()}'s settings differ: {'; '.join(differ)}"
            if differ
            else e.message,
            e.hint,
        ) from None
    if not took:
        raise ConfigError(
            f"train.init_from: the {family.item.name} model family cannot start from a trained "
            "model",
            "remove train.init_from, or use the gan family",
        )
    return Trained(parent, state, trial)


def match_classes(trained: Sequence[str], names: Sequence[str]) -> list[int | None]:
    """For each of ``names``, the index of the trained model's class of that name (exact,
    else ignoring case), or None for a new class; ``[None]`` for unlabelled data."""
    folded: dict[str, list[int]] = {}
    for index, name in enumerate(trained):
        folded.setdefault(name.casefold(), []).append(index)
    matched: list[int | None] = []
    for name in names:
        if name in trained:
            matched.append(list(trained).index(name))
            continue
        hits = folded.get(name.casefold(), [])
        if len(hits) > 1:
            raise ConfigError(
                f"train.init_from: class {name!r} matches {len(hits)} classes of the trained "
                f"model ({', '.join(trained[i] for i in hits)}), which differ only in case",
                "rename the class folder to the exact name of one of them",
            )
        matched.append(hits[0] if hits else None)
    return matched or [None]


def nearest_classes(
    trained: GenerativeModel,
    classes: Sequence[int | None],
    dataset: Dataset,
    photos: np.ndarray,
    count: int,
) -> list[int | None]:
    """``classes`` with each new class (None) replaced by the trained class (of ``count``)
    whose label the trained model's critic finds that class's images most real under, on
    average over up to PHOTOS_PER_CLASS of them (of ``photos``, indices into ``dataset``).
    Unchanged when the model has no critic, was trained on one class, or its critic does
    not tell the classes apart."""
    import torch

    if count < 2 or None not in classes:
        return list(classes)
    nearest = list(classes)
    for i, matched in enumerate(classes):
        mine = photos[dataset.labels[photos] == i][:PHOTOS_PER_CLASS]
        if matched is not None or not len(mine):
            continue
        images = torch.from_numpy(np.asarray(dataset.images[mine])).float() / 127.5 - 1
        with torch.no_grad():
            scores = [
                trained.realness(images, torch.full((len(mine),), c, dtype=torch.int64))
                for c in range(count)
            ]
        if any(s is None for s in scores):
            return list(classes)  # no critic: new classes start from the mean
        means = torch.stack([s.mean() for s in scores if s is not None])
        if torch.allclose(means, means[0]):
            return list(classes)  # an unconditional critic: every class scores alike
        nearest[i] = int(means.argmax())
    return nearest


PHOTOS_PER_CLASS = 64  # enough to tell which class they resemble: a CPU pass per trained class


def start(
    model: GenerativeModel,
    trained: Trained,
    dataset: Dataset,
    say: Callable[[str], None],
    photos: np.ndarray | None = None,
    new_class_from: NewClassFrom = "mean",
) -> None:
    """Give ``model`` the trained model's weights (as ``check_fits`` read them), classes
    matched by name; a new class from the mean of the trained ones, or with
    ``new_class_from="nearest"`` from the trained class its photos look most like
    (``nearest_classes``; ``photos``: the indices of the training images, default all)."""
    parent = trained.parent
    channels = int(dataset.images.shape[1])
    if channels != int(parent.dataset["channels"]):
        raise ConfigError(
            f"train.init_from: {parent.describe()} was trained on {parent.dataset['channels']}"
            f"-channel images and this data has {channels}",
            "convert the images (grayscale or RGB) to match the trained model's",
        )
    names = list(parent.dataset["classes"])
    matched = match_classes(names, dataset.class_names)
    classes = matched
    if new_class_from == "nearest":
        index = np.arange(len(dataset)) if photos is None else photos
        classes = nearest_classes(trained.model, matched, dataset, index, len(names))
    if not model.start_from(trained.state, classes):
        raise AigcError(f"the model family cannot start from {parent.describe()}")
    told = []
    for name, was, now in zip(dataset.class_names or ["the data"], matched, classes, strict=False):
        if was is not None:
            told.append(f"{name} from its {names[was]}")
        elif now is not None:
            told.append(f"{name} (new) from its {names[now]}, which it looks most like")
        else:
            told.append(f"{name} (new) from the mean of its {len(names)} classes")
    say(f"starting from {parent.describe()}: " + "; ".join(told))


def dataset_record(dataset: Dataset) -> dict[str, Any]:
    """What the registry keeps about a run's data (``RunDetail.dataset``)."""
    n, c, h, _ = dataset.images.shape
    return {
        "images": int(n),
        "channels": int(c),
        "image_size": int(h),
        "classes": list(dataset.class_names),
    }
