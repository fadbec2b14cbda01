"""``aigc-run sample RUN_ID``: more samples from a trained run, or exact copies of some.

Sample ``index`` of seed ``s`` comes from its own noise (``noise.noise_for``) and asks
for class ``index % classes``, so a run's checkpoint, the seed and the index are all it
takes to draw the same image again, on any batch size. ``--count`` draws new samples
through the run's quality filters, at the thresholds the run fixed for that checkpoint;
``--regenerate`` redraws given indices as they were, filters aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    reference: Any  # FilterContext over the training images


def load_trained(
    run_id: int,
    step: int | None,
    plugins: Plugins,
    settings: Settings,
) -> Trained:
    """The model of run ``run_id`` at checkpoint ``step`` (default: its last one)."""
    from aigc_run.checkpoints import restore, sha256_of
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
    if not path.is_file() or sha256_of(path) != checkpoint.sha256:
        raise AigcError(
            f"run {run_id}'s checkpoint {path} is missing or no longer matches its sha256",
            "restore the file from a backup",
        )
    scenario = recorded(run.config)
    family = setup.lookup(plugins, MODEL_FAMILIES, scenario.model.family, "model.family")
    # the run's data, from the cache: its shape, classes and the filters' reference images
    dataset = load_dataset(plugins, scenario, settings.cache_dir, lambda _: None)
    train_idx, _ = setup.split(dataset, scenario)
    device = setup.pick_device(scenario.train.device)
    model = setup.build_model(family, scenario, dataset, device)
    restore(model, path)
    thresholds = {
        e.metric.removeprefix("threshold:"): e.value
        for e in history
        if e.metric.startswith("threshold:") and e.step == checkpoint.step
    }
    return Trained(
        run_id,
        scenario,
        model,
        checkpoint.step,
        thresholds,
        Path(run.output_dir),
        device,
        list(dataset.class_names),
        setup.reference_context(dataset, train_idx, device, settings.cache_dir),
    )


def sample_more(
    trained: Trained,
    plugins: Plugins,
    count: int,
    seed: int,
    folder: Path,
) -> Any:
    """``count`` samples that pass the run's filters, written to ``folder`` with a manifest."""
    from aigc_run.run import filtering, sampling

    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty", "choose a new or empty folder with --out")
    scenario = trained.scenario.model_copy(
        update={"sample": trained.scenario.sample.model_copy(update={"count": count, "seed": seed})}
    )
    writer = setup.lookup(plugins, WRITERS, scenario.output.writer, "output.writer")
    filters = [
        filtering.ActiveFilter(
            c.plugin, c.item, trained.thresholds.get(c.item.name, c.item.threshold)
        )
        for c, _ in filtering.resolve_filters(plugins, scenario)
    ]
    return sampling.sample(
        trained.model,
        scenario,
        filters,
        writer,
        trained.reference,
        trained.device,
        folder,
        lambda batch, rows: None,
    )


def regenerate(trained: Trained, indices: Sequence[int], seed: int, folder: Path) -> list[Path]:
    """Redraw sample ``indices`` of ``seed`` exactly, as PNG files in ``folder``."""
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
    )
    folders = safe_names(trained.class_names)
    stems = [f"{folders[int(c)]}/{i:07d}" for i, c in zip(indices, labels, strict=True)]
    return [folder / name for name in write_png(folder, stems, pixels)]


def default_folder(trained: Trained, what: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return trained.output_dir / f"{what}-step{trained.step}-{stamp}"
