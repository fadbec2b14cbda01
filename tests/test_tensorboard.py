"""The built-in TensorBoard observer: a run's losses, filter scores, contact sheet and
evaluations end up in <output_dir>/tensorboard, readable by TensorBoard itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aigc_run.cli import main
from aigc_run.plugins import load_plugins
from aigc_run.registry import Registry
from aigc_run.settings import Settings

pytest.importorskip("tensorboard", reason="the tensorboard package is not installed")

TINY = ["--quiet", "--set", "train.steps=4", "--set", "train.log_every=2", "--set",
        "train.batch_size=4", "--set", "model.width=8", "--set", "data.options.demo_count=60",
        "--set", "sample.count=8", "--set", "sample.max_tries=1",
        # sample 0 has nothing before it to duplicate: kept, so there is a contact sheet
        "--set", "filters.background-clean=off", "--set", "filters.near-duplicate=1.0",
        "--set", "filters.catalogue-copy=off",
        "--set", "filters.class-consistency=off"]  # fmt: skip


def test_a_run_is_logged_for_tensorboard():
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = CliRunner().invoke(main, ["scenario", "ecommerce", *TINY])
    assert result.exit_code == 0, result.output
    registry = Registry(Settings().registry_url)
    detail = registry.get_run(registry.list_runs()[0].id)

    events = EventAccumulator(str(Path(detail.output_dir) / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("train/loss_g")] == [2, 4]
    assert {"train/loss_d", "train/d_real", "evaluation/acceptance-rate"} <= set(tags["scalars"])
    assert tags["histograms"] == ["filters/near-duplicate"]
    assert tags["images"] == ["samples/contact_sheet"]


def test_it_can_be_switched_off():
    assert "tensorboard" in load_plugins().versions
    assert "tensorboard" not in load_plugins({"tensorboard"}).versions
