"""``aigc-run evaluate RUN_ID``: evaluate a finished run again, from its final checkpoint.

The run's resolved scenario comes from the registry, so the data, the split and the
protocol are the run's own; ``--metrics``, ``--samples`` and ``--features`` override its
``evaluate`` section. The figures are added to the registry (the latest ones show in
``aigc-run runs show``) and the run's ``evaluation/`` folder is written again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aigc_run import checkpoints
from aigc_run.contract.errors import AigcError, ConfigError
from aigc_run.contract.kinds import METRICS, MODEL_FAMILIES
from aigc_run.data import load_dataset
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.run import setup
from aigc_run.scenario import DEFAULT_METRICS, recorded
from aigc_run.settings import Settings


def evaluate_run(
    run_id: int,
    plugins: Plugins,
    settings: Settings,
    metrics: Sequence[str] | None = None,
    samples: int | None = None,
    features: Sequence[str] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, float]:
    from aigc_run.run import evaluation

    registry = Registry(settings.registry_url)
    detail = registry.get_run(run_id)
    if detail.status == "running":
        raise ConfigError(f"run {run_id} is still running", "evaluate it once it has finished")
    if not detail.checkpoints:
        raise AigcError(
            f"run {run_id} has no checkpoint to evaluate ({detail.status})",
            "only a run that trained has one: run the scenario again",
        )
    path = Path(detail.checkpoints[-1].path)
    if not path.is_file():
        raise AigcError(
            f"the final checkpoint of run {run_id} is missing: {path}",
            "restore the run's output folder, or run the scenario again",
        )
    scenario = recorded(_with_overrides(detail.config, metrics, samples, features))
    family = setup.lookup(plugins, MODEL_FAMILIES, scenario.model.family, "model.family")
    chosen = [
        setup.lookup(plugins, METRICS, name, "--metrics") for name in scenario.evaluate.metrics
    ]
    device = setup.pick_device("auto")
    dataset = load_dataset(plugins, scenario, settings.cache_dir, say)
    train_idx, held_idx = setup.split(dataset, scenario)
    model = setup.build_model(family, scenario, dataset, device)
    checkpoints.restore(model, path)
    say(f"run {run_id}: evaluating {path.name} on {device}")
    output_dir = Path(detail.output_dir)
    figures = evaluation.evaluate(
        model,
        dataset,
        train_idx,
        held_idx,
        scenario,
        chosen,
        device,
        output_dir,
        settings.cache_dir,
        say,
    )
    checkpoint_id = registry.checkpoint_id(run_id, str(path))
    for name, value in figures.items():
        registry.add_evaluation(run_id, name, value, checkpoint_id)
    return figures


def _with_overrides(
    config: Any,
    metrics: Sequence[str] | None,
    samples: int | None,
    features: Sequence[str] | None,
) -> dict[str, Any]:
    tree = dict(config)
    section = dict(tree.get("evaluate") or {})
    if metrics is not None:
        section["metrics"] = list(metrics)
    elif not section.get("metrics"):
        # The run had evaluation switched off; asking for it now means the defaults.
        section["metrics"] = list(DEFAULT_METRICS)
    if samples is not None:
        section["samples"] = samples
    if features is not None:
        section["features"] = list(features)
    tree["evaluate"] = section
    return tree
