"""``aigc-run sample RUN_ID``: more samples from a trained run, or exact copies of some.

Sample ``index`` of seed ``s`` comes from its own noise (``noise.noise_for``) and asks
for class ``index % classes``, so a run's checkpoint, the seed and the index are all it
takes to draw the same image again, on any batch size. ``--count`` draws new samples
through the run's quality filters, at the thresholds the run fixed for that checkpoint;
``--regenerate`` redraws given indices as they were, filters aside. ``--class`` and
``--proportions`` choose which indices are drawn (``ClassPlan``), ``--truncation`` scales
the noise (sample.psi).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aigc_run.contract.errors import AigcError, ConfigError
from aigc_run.contract.kinds import MODEL_FAMILIES, WRITERS
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.run import setup
from aigc_run.scenario import Scenario, recorded
from aigc_run.settings import Settings


@dataclass
class Trained:
    """A run's model at one checkpoint, with what sampling from it needs."""

    run_id: int
    scenario: Scenario
    model: Any
    step: int
    thresholds: dict[str, float]  # filter name -> the threshold the run fixed
    output_dir: Path
    device: str
    class_names: list[str]
    reference: Any  # FilterContext over the training images; None: exported without them
    class_counts: list[int]  # training images per class, for --proportions data
    spec: Any  # the ModelSpec that built the model


def load_trained(
    run_id: int,
    step: int | None,
    plugins: Plugins,
    settings: Settings,
    device: str | None = None,
) -> Trained:
    """The model of run ``run_id`` at checkpoint ``step`` (default: its last one), on
    ``device`` (default: the run's train.device)."""
    from aigc_run.checkpoints import problem_with, restore
    from aigc_run.data import load_dataset

    registry = Registry(settings.registry_url)
    try:
        run = registry.get_run(run_id)
        history = registry.evaluation_history(run_id)
    finally:
        registry.close()
    if not run.checkpoints:
        raise AigcError(
            f"run {run_id} has no checkpoint to sample from",
            f"resume it with `aigc-run resume {run_id}` or start the scenario again",
        )
    by_step = {c.step: c for c in run.checkpoints}
    if step is not None and step not in by_step:
        raise ConfigError(
            f"run {run_id} has no checkpoint at step {step}",
            f"its checkpoints are at steps {', '.join(map(str, sorted(by_step)))}",
        )
    checkpoint = by_step[step] if step is not None else run.checkpoints[-1]
    path = Path(checkpoint.path)
    if problem := problem_with(path, checkpoint.sha256):
        raise AigcError(
            f"run {run_id}'s checkpoint {path} {problem}", "restore the file from a backup"
        )
    scenario = recorded(run.config)
    family = setup.lookup(plugins, MODEL_FAMILIES, scenario.model.family, "model.family")
    # the run's data, from the cache: its shape, classes and the filters' reference images
    dataset = load_dataset(plugins, scenario, settings.cache_dir, lambda _: None)
    train_idx, _ = setup.split(dataset, scenario)
    device = setup.pick_device(device or scenario.train.device)
    spec = setup.model_spec(scenario, dataset, device)
    model = setup.create_model(family, spec)
    restore(model, path)
    thresholds = {
        e.metric.removeprefix("threshold:"): e.value
        for e in history
        if e.metric.startswith("threshold:") and e.step == checkpoint.step
    }
    return Trained(
        run_id=run_id,
        scenario=scenario,
        model=model,
        step=checkpoint.step,
        thresholds=thresholds,
        output_dir=Path(run.output_dir),
        device=device,
        class_names=list(dataset.class_names),
        reference=setup.reference_context(dataset, train_idx, device, settings.cache_dir, model),
        class_counts=np.bincount(dataset.labels[train_idx], minlength=dataset.num_classes).tolist(),
        spec=spec,
    )


class ClassPlan:
    """The sample indices that draw the chosen classes in the given proportions.

    Sample ``i`` asks for class ``i % K``, so the j-th sample of class ``c`` is index
    ``c + K * j``: a drawn image still regenerates from its index alone. The class of the
    k-th draw is frac(k x golden ratio) read through the proportions' cumulative shares, a
    low-discrepancy sequence: any prefix holds each class in about its share, and the same
    request always draws the same indices.
    """

    def __init__(self, classes: Sequence[int], weights: Sequence[float], num_classes: int):
        self.classes = list(classes)
        total = float(sum(weights))
        self.shares = np.cumsum(np.asarray(weights, dtype=np.float64) / total)
        self.taken = [0] * len(self.classes)
        self.num_classes = num_classes

    def __call__(self, done: int, size: int) -> list[int]:
        draws = (np.arange(done, done + size) * GOLDEN) % 1.0
        which = np.searchsorted(self.shares, draws, side="right").clip(max=len(self.classes) - 1)
        indices = []
        for w in which.tolist():
            indices.append(self.classes[w] + self.num_classes * self.taken[w])
            self.taken[w] += 1
        return indices


GOLDEN = (5**0.5 - 1) / 2


def class_plan(trained: Trained, names: Sequence[str], proportions: str) -> ClassPlan | None:
    """What ``--class NAME`` (any case, repeatable) and ``--proportions`` ask for; None for
    every class evenly (the run's own order of indices)."""
    known = trained.class_names
    folded = {n.casefold(): i for i, n in enumerate(known)}
    chosen = []
    for name in names:
        if name.casefold() not in folded:
            raise ConfigError(
                f"--class {name!r}: run {trained.run_id} has no such class",
                f"its classes: {', '.join(known) or 'none (unlabelled data)'}",
            )
        chosen.append(folded[name.casefold()])
    chosen = list(dict.fromkeys(chosen)) or list(range(max(len(known), 1)))
    if proportions == "even" and not names:
        return None
    counts = trained.class_counts
    weights = [counts[c] if proportions == "data" else 1 for c in chosen]
    if not any(weights):
        raise ConfigError(
            "--proportions data: the run's training data has no image of "
            + ", ".join(known[c] for c in chosen),
            "use --proportions even",
        )
    return ClassPlan(chosen, weights, max(len(known), 1))


def sample_more(
    trained: Trained,
    plugins: Plugins,
    count: int,
    seed: int,
    folder: Path,
    plan: ClassPlan | None = None,
    psi: float = 1.0,
) -> Any:
    """``count`` samples that pass the run's filters, written to ``folder`` with a manifest;
    their indices (so their classes) from ``plan``, their noise scaled by ``psi``."""
    from aigc_run.run import sampling

    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty", "choose a new or empty folder with --out")
    changes = {"count": count, "seed": seed, "psi": psi}
    scenario = trained.scenario.model_copy(
        update={"sample": trained.scenario.sample.model_copy(update=changes)}
    )
    writer = setup.lookup(plugins, WRITERS, scenario.output.writer, "output.writer")
    filters = run_filters(trained, plugins)
    return sampling.sample(
        trained.model,
        scenario,
        filters,
        writer,
        trained.reference,
        trained.device,
        folder,
        lambda batch, rows: None,
        plan=plan,
    )


def run_filters(trained: Trained, plugins: Plugins) -> list[Any]:
    """The run's quality filters, at the thresholds it fixed for this checkpoint."""
    from aigc_run.run import filtering

    return [
        filtering.ActiveFilter(
            c.plugin, c.item, trained.thresholds.get(c.item.name, c.item.threshold)
        )
        for c, _ in filtering.resolve_filters(plugins, trained.scenario)
    ]


def regenerate(
    trained: Trained, indices: Sequence[int], seed: int, folder: Path, psi: float = 1.0
) -> list[Path]:
    """Redraw sample ``indices`` of ``seed`` (drawn at truncation ``psi``) exactly, as PNG
    files in ``folder``."""
    import torch

    from aigc_run.contract.images import write_png
    from aigc_run.run.generation import generate
    from aigc_run.run.sampling import safe_names

    classes = max(len(trained.class_names), 1)
    labels = torch.tensor([i % classes for i in indices], dtype=torch.int64)
    _, pixels = generate(
        trained.model,
        seed,
        list(indices),
        labels,
        trained.scenario.sample.truncation,
        trained.device,
        trained.scenario.sample.noise,
        psi,
    )
    folders = safe_names(trained.class_names)
    stems = [f"{folders[int(c)]}/{i:07d}" for i, c in zip(indices, labels, strict=True)]
    return [folder / name for name in write_png(folder, stems, pixels)]


def interpolate(
    trained: Trained, ends: tuple[int, int], frames: int, seed: int, folder: Path, psi: float = 1.0
) -> list[Path]:
    """A walk between samples ``ends`` of ``seed``: ``frames`` images whose noise moves
    along the great circle between the two samples' noise (spherical interpolation: a
    straight line would pass through noise of a smaller norm than the model ever saw), as
    PNG files and an animated GIF in ``folder`` (the frames are drawn straight from the
    model: no filter judges them). Between two classes the first half of
    the frames asks for the first sample's class and the second half for the other's:
    the models take a class, not a mixture of two."""
    import torch
    from PIL import Image

    from aigc_run.contract.images import write_png
    from aigc_run.noise import noise_for
    from aigc_run.run.generation import from_noise
    from aigc_run.writing import sheet_size

    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty", "choose a new or empty folder with --out")
    cfg = trained.scenario.sample
    latent = trained.model.latent_dim
    z = noise_for(seed, list(ends), latent, cfg.truncation, "cpu", cfg.noise, psi)
    t = torch.linspace(0, 1, frames, dtype=torch.float64).unsqueeze(1)
    a, b = z[0].double(), z[1].double()
    angle = torch.arccos((a @ b / (a.norm() * b.norm())).clamp(-1, 1))
    if angle < 1e-6:  # the same noise: nothing to walk
        path = a.expand(frames, -1)
    else:
        path = (torch.sin((1 - t) * angle) * a + torch.sin(t * angle) * b) / torch.sin(angle)
    classes = max(len(trained.class_names), 1)
    labels = torch.tensor([ends[0] % classes if k < frames / 2 else ends[1] % classes
                           for k in range(frames)])  # fmt: skip
    noise = path.float().to(trained.device)
    _, pixels = from_noise(trained.model, noise, labels, trained.device)  # as samples are drawn
    pixels = pixels.cpu()
    names = write_png(folder, [f"frame-{k:03d}" for k in range(frames)], pixels)
    pictures = [Image.open(folder / name).convert("RGB") for name in names]
    size, resample = sheet_size(pictures[0].width, pictures[0].height, pictures[0].width)
    pictures = [p.resize(size, resample) for p in pictures]
    gif = folder / f"walk-{ends[0]}-{ends[1]}.gif"
    pictures[0].save(gif, save_all=True, append_images=pictures[1:] + pictures[-2:0:-1],
                     duration=120, loop=0)  # fmt: skip
    return [folder / name for name in names] + [gif]


def default_folder(trained: Trained, what: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return trained.output_dir / f"{what}-step{trained.step}-{stamp}"
