"""The ranks other than 0 in a run over several processes (see dist.py).

They train in step with rank 0, then sample their part. They never open the registry and
write no file but their samples and manifest part: rank 0 records the run, its
checkpoints, the manifest and the report from what they hand it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aigc_run import dist
from aigc_run.contract.components import ModelFamily, RunInfo, SampleWriter
from aigc_run.data import load_dataset
from aigc_run.plugins import Contribution, Plugins
from aigc_run.run import filtering, sampling, setup
from aigc_run.run.training import train
from aigc_run.scenario import Scenario
from aigc_run.settings import Settings


def follow(
    scenario: Scenario,
    plugins: Plugins,
    settings: Settings,
    family: Contribution[ModelFamily],
    writer: Contribution[SampleWriter],
    device: str,
) -> None:
    """What a rank other than 0 does in ``run_scenario``.

    It loads the data set once rank 0 has cached it, builds the same model and trains;
    weights and the resume point come from rank 0 (``dist.share_start``). Then, with rank
    0's final weights and filter thresholds, it samples its share of the indices.
    """
    dist.data_ready()
    dataset = load_dataset(plugins, scenario, settings.cache_dir, lambda _: None, lambda i: i)
    train_idx, _ = setup.split(dataset, scenario)
    model = setup.build_model(family, scenario, dataset, device)
    config = scenario.model_dump(mode="json")
    # id 0 and no folder: this rank records nothing and writes no file.
    run = RunInfo(0, scenario.name, config, Path(), device)
    images, labels = dataset.images[train_idx], dataset.labels[train_idx]
    train(model, images, labels, scenario, run, plugins, None)
    shared = dist.receive_sampling(model)
    if shared is None:
        return
    output_dir, thresholds = shared
    filters = [
        filtering.ActiveFilter(c.plugin, c.item, thresholds[c.item.name])
        for c, _ in filtering.resolve_filters(plugins, scenario)
        if c.item.name in thresholds
    ]
    reference = setup.reference_context(dataset, train_idx, device, settings.cache_dir, model)
    batches: list[Any] = []
    result = sampling.sample(
        model,
        scenario,
        filters,
        writer,
        reference,
        device,
        output_dir,
        lambda batch, rows: batches.append((batch, rows)),
        dist.sampling_part(),
    )
    dist.send_sampling(result, batches)
