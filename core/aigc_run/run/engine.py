"""A run from start to end: resolve, record, load, train, sample, evaluate, finish.

Every component is resolved, and the model built once on the CPU, before the run is
recorded, so a misspelt name or a setting the model refuses (an image size it cannot
draw) fails at once and leaves nothing behind. From the moment the run is recorded, any
error (or Ctrl-C) marks it failed (or interrupted) in the registry, tells the
``on_run_error`` observers and is re-raised: a run is never left "running".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aigc_run import dist
from aigc_run.contract.components import RunInfo
from aigc_run.contract.errors import ConfigError
from aigc_run.contract.kinds import METRICS, MODEL_FAMILIES, WRITERS
from aigc_run.data import Dataset, load_dataset, resolve_source, resolve_steps
from aigc_run.evaluation import describe
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.run import setup, transfer
from aigc_run.scenario import Scenario
from aigc_run.settings import Settings


@dataclass(frozen=True)
class ResumeFrom:
    """A checked run to resume: what ``run_scenario`` continues; made by
    ``resume.check_resumable``."""

    run_id: int
    step: int
    checkpoint: Path
    output_dir: Path


@dataclass(frozen=True)
class RunResult:
    run_id: int
    output_dir: Path
    accepted: int
    generated: int
    contact_sheet: Path
    seconds: float
    report: Path | None = None  # None when writing the report failed (a warning said why)


def run_scenario(
    scenario: Scenario,
    plugins: Plugins,
    settings: Settings,
    say: Callable[[str], None] = print,
    progress: Callable[..., Any] | None = None,
    resume: ResumeFrom | None = None,
) -> RunResult:
    """Run ``scenario`` from start to end; with ``resume``, continue that stopped run."""
    started = time.monotonic()
    setup.check_plugin(scenario, plugins)
    source = resolve_source(plugins, scenario)
    resolve_steps(plugins, scenario)
    family = setup.lookup(plugins, MODEL_FAMILIES, scenario.model.family, "model.family")
    setup.check_model(family, scenario, source.item.channels)
    writer = setup.lookup(plugins, WRITERS, scenario.output.writer, "output.writer")
    metrics = [
        setup.lookup(plugins, METRICS, name, "evaluate.metrics")
        for name in scenario.evaluate.metrics
    ]
    from aigc_run.run import evaluation, filtering, sampling

    evaluation.check_ready(scenario)
    chosen_filters = filtering.resolve_filters(plugins, scenario)
    device = dist.local_device(setup.pick_device(scenario.train.device))
    if not dist.current().main:  # only rank 0 records, samples and reports
        from aigc_run.run.follower import follow

        follow(scenario, plugins, settings, family, writer, device)
        return RunResult(0, Path(), 0, 0, Path(), time.monotonic() - started)
    output_dir = resume.output_dir if resume else _output_dir(scenario, settings)

    registry = Registry(settings.registry_url)
    reaped = registry.reap_dead_runs()
    if reaped:
        say(
            f"marked {len(reaped)} run(s) whose process had died as interrupted: {reaped} "
            "(continue one with `aigc-run resume RUN_ID`)"
        )
    config = scenario.model_dump(mode="json")
    trained = None  # a resumed run has its weights in its own checkpoint
    if scenario.train.init_from is not None and not resume:
        parent = transfer.find(scenario.train.init_from, registry, plugins)
        trained = transfer.check_fits(parent, scenario, family)
    if resume:
        run_id = resume.run_id
        resume_id = registry.reopen_run(run_id, resume.step)
        say(f"run {run_id}: resuming scenario {scenario.name!r} from step {resume.step}")
    else:
        run_id = registry.create_run(
            scenario.name,
            config,
            dict(plugins.versions),
            device,
            str(output_dir),
            trained.parent.record() if trained else None,
        )
    run = RunInfo(run_id, scenario.name, config, output_dir, device)
    say(f"run {run_id}: scenario {scenario.name!r} on {device}, writing to {output_dir}")
    try:
        plugins.before_run(run)
        dataset = load_dataset(plugins, scenario, settings.cache_dir, say, _item_progress(progress))
        dist.data_ready()  # the other ranks read it from the cache
        _describe_data(dataset, say)
        _advise_small_data(dataset, scenario, say)
        registry.set_dataset(run_id, transfer.dataset_record(dataset))
        train_idx, held_idx = setup.split(dataset, scenario)
        model = setup.build_model(family, scenario, dataset, device)
        if trained is not None:
            transfer.start(model, trained, dataset, say, train_idx, scenario.train.new_class_from)
        from aigc_run.run.training import resume_point, train

        start = None
        if resume:
            from aigc_run.checkpoints import restore

            restore(model, resume.checkpoint)
            start = resume_point(resume_id, resume.step, resume.checkpoint)
        checkpoint = train(
            model,
            dataset.images[train_idx],
            dataset.labels[train_idx],
            scenario,
            run,
            plugins,
            registry,
            progress,
            start,
        )
        reference = setup.reference_context(
            dataset, train_idx, device, settings.cache_dir, model
        )
        real = setup.as_float(dataset, held_idx, device)
        held_context = setup.for_batch(reference, setup.labels_of(dataset, held_idx, device))
        filters = filtering.calibrate(chosen_filters, real, held_context, scenario.sample)
        for f in filters:
            registry.add_evaluation(run_id, f"threshold:{f.name}", f.threshold, checkpoint.id)
            say(
                f"filter {f.name}: keeps scores {'>=' if f.filter.higher_is_better else '<='} "
                f"{f.threshold:.4g}"
            )
            if f.loosened_too_far():
                say(
                    f"warning: filter {f.name}'s \"auto\" threshold went from its default "
                    f"{f.filter.threshold:.4g} to {f.threshold:.4g} so that "
                    f"{filtering.AUTO_PASS_RATE:.0%} of the held-out real images pass: it "
                    "will reject next to nothing. The filter may not suit this data (or too "
                    f"few images are held out); set filters.{f.name} to a value, or off"
                )
        dist.share_sampling(model, output_dir, {f.name: f.threshold for f in filters})

        def record(batch: Any, rows: list[dict[str, Any]]) -> None:
            registry.add_samples(run_id, [dict(r, checkpoint_id=checkpoint.id) for r in rows])
            plugins.after_samples_filtered(run, batch)

        part = dist.sampling_part()  # (0, 1) in one process
        result = sampling.sample(
            model, scenario, filters, writer, reference, device, output_dir, record, part
        )
        result = dist.gather_sampling(result, output_dir, record)
        _report_sampling(result, scenario, say)
        import torch

        accepted = torch.cat(result.accepted_images) if result.accepted_images else None
        sheet = output_dir / "contact_sheet.png"
        if accepted is not None and len(accepted):
            sampling.contact_sheet(
                sheet,
                accepted,
                torch.cat(result.accepted_labels),
                dataset.num_classes,
                class_names=dataset.class_names,
                rejected_by_class=result.rejected_by_class,
            )
        registry.add_evaluation(
            run_id, "acceptance-rate", result.accepted / max(result.generated, 1), checkpoint.id
        )
        figures = evaluation.evaluate(
            model,
            dataset,
            train_idx,
            held_idx,
            scenario,
            metrics,
            device,
            output_dir,
            settings.cache_dir,
            say,
        )
        for name, value in figures.items():
            registry.add_evaluation(run_id, name, value, checkpoint.id)
        for line in describe(figures):
            say(line)
        plugins.after_run(run, "completed")
        registry.finish_run(run_id, "completed")
    except KeyboardInterrupt as e:
        _fail(registry, plugins, run, "interrupted", e, say)
        raise
    except BaseException as e:
        _fail(registry, plugins, run, "failed", e, say)
        raise
    report = _write_report(registry, run_id, say)
    seconds = time.monotonic() - started
    return RunResult(run_id, output_dir, result.accepted, result.generated, sheet, seconds, report)


def _write_report(registry: Registry, run_id: int, say: Callable[[str], None]) -> Path | None:
    """The HTML report, written once the run is complete. The run and its files are safe by
    then, so a failure here is a warning with the command to retry, not a failed run."""
    from aigc_run.report import write_report

    try:
        return write_report(registry, run_id)
    except Exception as e:
        say(
            f"warning: the report could not be written ({type(e).__name__}: {e}); "
            f"retry with `aigc-run report {run_id}`"
        )
        return None


def _fail(
    registry: Registry,
    plugins: Plugins,
    run: RunInfo,
    status: str,
    error: BaseException,
    say: Callable[[str], None],
) -> None:
    registry.finish_run(run.id, status, f"{type(error).__name__}: {error}")
    for failure in plugins.on_run_error(run, error):
        say(f"warning: {failure.message}")


def _output_dir(scenario: Scenario, settings: Settings) -> Path:
    if scenario.output.folder:
        folder = Path(scenario.output.folder).expanduser().absolute()
        if folder.exists() and any(folder.iterdir()):
            raise ConfigError(
                f"output.folder {folder} is not empty",
                "choose an empty or new folder; nothing there was changed",
            )
        return folder
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return settings.runs_dir / f"{scenario.name}-{stamp}-{secrets.token_hex(2)}"


def _describe_data(dataset: Dataset, say: Callable[[str], None]) -> None:
    n, c, h, w = dataset.images.shape
    classes = ", ".join(dataset.class_names) if dataset.class_names else "unlabelled"
    origin = "from the cache" if dataset.from_cache else "decoded and cached"
    say(f"data: {n} images {c}x{h}x{w} ({origin}); classes: {classes}")
    if dataset.skipped:
        say("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(dataset.skipped.items())))


SMALL_CLASS = 100  # fewer images than this in a class: a GAN from scratch memorises it


def _advise_small_data(dataset: Dataset, scenario: Scenario, say: Callable[[str], None]) -> None:
    """Say what to do when a class has too few images to train a GAN from scratch on."""
    import numpy as np

    counts = np.bincount(dataset.labels, minlength=dataset.num_classes)
    smallest = int(counts.argmin())
    if counts[smallest] >= SMALL_CLASS or scenario.model.family != "gan":
        return
    if scenario.train.init_from is not None:  # already the advice below
        return
    name = f" ({dataset.class_names[smallest]})" if dataset.class_names else ""
    say(
        f"note: {counts[smallest]} images in the smallest class{name}, under {SMALL_CLASS}: "
        "trained from scratch on so few, a GAN memorises or collapses, and per-class figures "
        "are noisy. Start from a model trained on related data (--init-from RUN_ID; it "
        "augments adaptively), or set model.augment=['color','translation'] and "
        "model.augment_p='ada'"
    )


def _report_sampling(result: Any, scenario: Scenario, say: Callable[[str], None]) -> None:
    say(f"samples: {result.accepted} accepted of {result.generated} generated")
    for name, problem in result.skipped_filters.items():
        say(f"warning: quality filter {name!r} was skipped: {problem}")
    if result.accepted < scenario.sample.count:
        worst = ", ".join(f"{k} rejected {v}" for k, v in sorted(result.rejected_by.items()))
        say(
            f"warning: only {result.accepted} of {scenario.sample.count} samples passed the "
            f"filters after {result.generated} tries ({worst}); train longer or loosen "
            "thresholds with --set filters.NAME=VALUE"
        )


def _item_progress(progress: Callable[..., Any] | None) -> Callable[[Any], Any]:
    if progress is None:
        return lambda items: items
    return lambda items: progress(items, desc="load", unit="img", leave=False)
