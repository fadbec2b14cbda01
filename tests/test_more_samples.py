"""`aigc-run sample RUN_ID`: more samples through the run's filters, and exact redraws."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import text

from aigc_run.cli import main
from aigc_run.registry import Registry
from aigc_run.settings import Settings

TINY = [
    "scenario", "medical", "--quiet",
    "--set", "data.options.demo_count=40", "--set", "data.image_size=16",
    "--set", "model.width=8", "--set", "model.latent_dim=8",
    "--set", "train.steps=6", "--set", "train.batch_size=4", "--set", "train.checkpoint_every=3",
    "--set", "sample.count=6", "--set", "sample.batch_size=4",
    # lenient fixed thresholds: a 6-step model's samples pass, and the run records them
    "--set", "filters.intensity-plausibility=1000", "--set", "filters.memorisation=0",
    "--set", "filters.anatomical-plausibility=off",
]  # fmt: skip


def _tiny_run() -> tuple[int, Path]:
    result = CliRunner().invoke(main, TINY)
    assert result.exit_code == 0, result.output
    registry = Registry(Settings().registry_url)
    (summary,) = registry.list_runs()
    detail = registry.get_run(summary.id)
    registry.close()
    return summary.id, Path(detail.output_dir)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run for the tests that only read it (sampling writes to its own folders)."""
    home = tmp_path_factory.mktemp("shared") / "aigc-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGC_HOME", str(home))
        patch.delenv("AIGC_DATABASE_URL", raising=False)
        _tiny_run()
    return home


@pytest.fixture
def run(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, Path]:
    monkeypatch.setenv("AIGC_HOME", str(shared_home))
    registry = Registry(Settings().registry_url)
    (summary,) = registry.list_runs()
    detail = registry.get_run(summary.id)
    registry.close()
    return summary.id, Path(detail.output_dir)


@pytest.fixture
def fresh_run() -> tuple[int, Path]:
    """A run of the test's own, for a test that changes what the registry recorded."""
    return _tiny_run()


def _manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_regenerate_redraws_the_very_samples_the_run_wrote(run, tmp_path: Path) -> None:
    run_id, output = run
    rows = _manifest(output)
    indices = [r["index"] for r in rows[:3]]
    args = ["sample", str(run_id), "--out", str(tmp_path / "again")]
    for index in indices:
        args += ["--regenerate", index]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    written = result.output.split()
    assert len(written) == 3
    for row, path in zip(rows[:3], written, strict=True):
        original = np.asarray(Image.open(output / row["file"]))
        assert np.array_equal(np.asarray(Image.open(path)), original), row["file"]


def test_count_draws_new_samples_through_the_runs_filters(run, tmp_path: Path) -> None:
    run_id, _ = run
    folder = tmp_path / "more"
    result = CliRunner().invoke(
        main, ["sample", str(run_id), "--count", "5", "--seed", "99", "--out", str(folder)]
    )
    assert result.exit_code == 0, result.output
    rows = _manifest(folder)
    accepted = [r for r in rows if r["accepted"] == "1"]
    assert len(rows) == len(accepted) == 5 and {r["seed"] for r in rows} == {"99"}
    assert all((folder / r["file"]).is_file() for r in accepted)
    assert {"score:memorisation", "score:intensity-plausibility"} <= rows[0].keys()
    # the run's recorded thresholds decide, not the filters' defaults (which reject these)
    assert any(float(r["score:intensity-plausibility"]) > 2.5 for r in rows)
    # an earlier checkpoint draws different images for the same seed and index
    early = CliRunner().invoke(
        main,
        ["sample", str(run_id), "--regenerate", "0", "--checkpoint", "3", "--seed", "99",
         "--out", str(tmp_path / "early")],
    )  # fmt: skip
    assert early.exit_code == 0, early.output
    late_file = folder / rows[0]["file"]
    assert not np.array_equal(
        np.asarray(Image.open(early.output.split()[0])), np.asarray(Image.open(late_file))
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "3", "--regenerate", "1"], "give one of --count N, --regenerate INDEX"),
        ([], "give one of --count N, --regenerate INDEX or --interpolate"),
        (["--count", "3", "--checkpoint", "4"], "has no checkpoint at step 4"),
    ],
)
def test_bad_sample_requests_are_explained(run, args: list[str], message: str) -> None:
    run_id, _ = run
    result = CliRunner().invoke(main, ["sample", str(run_id), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_sampling_an_unknown_run_is_explained() -> None:
    result = CliRunner().invoke(main, ["sample", "41", "--count", "3"])
    assert result.exit_code != 0
    assert "41" in result.output and "Traceback" not in result.output


def test_a_run_recorded_before_sample_noise_regenerates_with_its_own_noise(tmp_path: Path):
    result = CliRunner().invoke(main, [*TINY, "--set", "sample.noise=generator"])
    assert result.exit_code == 0, result.output
    registry = Registry(Settings().registry_url)
    (summary,) = registry.list_runs()
    output = Path(registry.get_run(summary.id).output_dir)
    registry.close()
    # the row as an earlier aigc-run wrote it: no sample.noise key
    _edit_config(summary.id, lambda config: config["sample"].pop("noise"))
    row = _manifest(output)[0]
    again = CliRunner().invoke(
        main, ["sample", str(summary.id), "--regenerate", row["index"], "--out", str(tmp_path)]
    )
    assert again.exit_code == 0, again.output
    redrawn = np.asarray(Image.open(again.output.split()[0]))
    assert np.array_equal(redrawn, np.asarray(Image.open(output / row["file"])))


def test_a_checkpoint_that_does_not_fit_the_model_is_explained(fresh_run) -> None:
    # As a checkpoint from before a model family changed its networks reads today: its
    # tensors do not fit the networks that the run's recorded settings build.
    run_id, _ = fresh_run
    _edit_config(run_id, lambda config: config["model"].update(width=16))
    result = CliRunner().invoke(main, ["sample", str(run_id), "--count", "3"])
    assert result.exit_code == 1, result.output
    assert "does not fit the model" in result.output and "runs show" in result.output
    assert "Traceback" not in result.output


def _edit_config(run_id: int, change: Callable[[dict[str, Any]], object]) -> None:
    """Change the config recorded in the registry for ``run_id``."""
    registry = Registry(Settings().registry_url)
    with registry.engine.begin() as connection:
        config = connection.execute(
            text("SELECT config FROM aigc_runs WHERE id = :id"), {"id": run_id}
        ).scalar_one()
        config = json.loads(config) if isinstance(config, str) else config
        change(config)
        connection.execute(
            text("UPDATE aigc_runs SET config = :config WHERE id = :id"),
            {"config": json.dumps(config), "id": run_id},
        )
    registry.close()


def test_samples_of_one_class_at_a_truncation_regenerate_exactly(run, tmp_path: Path) -> None:
    run_id, output = run
    classes = sorted({r["class"] for r in _manifest(output)})
    assert len(classes) == 2
    wanted = classes[1]
    folder = tmp_path / "one-class"
    args = ["sample", str(run_id), "--count", "4", "--out", str(folder)]
    result = CliRunner().invoke(main, [*args, "--class", wanted.upper(), "--truncation", "0.5"])
    assert result.exit_code == 0, result.output
    rows = _manifest(folder)
    assert {r["class"] for r in rows} == {wanted} and {r["truncation"] for r in rows} == {"0.5"}
    assert all(int(r["index"]) % 2 == 1 for r in rows)  # index i asks for class i % 2
    row = next(r for r in rows if r["accepted"] == "1")
    drawn = np.asarray(Image.open(folder / row["file"]))
    again = ["sample", str(run_id), "--regenerate", row["index"], "--out"]
    same = CliRunner().invoke(main, [*again, str(tmp_path / "same"), "--truncation", "0.5"])
    other = CliRunner().invoke(main, [*again, str(tmp_path / "other")])
    assert np.array_equal(np.asarray(Image.open(same.output.split()[0])), drawn)
    assert not np.array_equal(np.asarray(Image.open(other.output.split()[0])), drawn)

    unknown = CliRunner().invoke(main, [*args, "--class", "fracture"])
    assert unknown.exit_code == 2
    assert "--class 'fracture': run" in unknown.output and wanted in unknown.output


def test_a_class_plan_draws_in_proportion_and_never_repeats_an_index() -> None:
    from aigc_run.run.more_samples import ClassPlan

    whole = ClassPlan([0, 2], [3, 1], num_classes=3)(0, 400)
    plan = ClassPlan([0, 2], [3, 1], num_classes=3)
    assert plan(0, 150) + plan(150, 250) == whole  # the same draws in any batches
    assert len(set(whole)) == 400 and {i % 3 for i in whole} == {0, 2}
    assert abs(sum(i % 3 == 0 for i in whole) - 300) <= 2
    assert abs(sum(i % 3 == 0 for i in whole[:40]) - 30) <= 2  # any prefix too


def test_a_walk_between_two_samples_starts_and_ends_on_them(run, tmp_path: Path) -> None:
    run_id, output = run
    rows = _manifest(output)
    a, b = rows[0], rows[3]  # two classes: index i asks for class i % 2
    folder = tmp_path / "walk"
    args = ["sample", str(run_id), "--interpolate", a["index"], b["index"], "--frames", "5"]
    result = CliRunner().invoke(main, [*args, "--out", str(folder)])
    assert result.exit_code == 0, result.output
    written = [Path(p) for p in result.output.split()]
    assert [p.name for p in written] == [*(f"frame-{k:03d}.png" for k in range(5)),
                                         f"walk-{a['index']}-{b['index']}.gif"]  # fmt: skip
    for frame, row in ((written[0], a), (written[4], b)):  # the ends are the samples
        drawn = np.asarray(Image.open(output / row["file"]))
        assert np.abs(np.asarray(Image.open(frame)).astype(int) - drawn).max() <= 1
    with Image.open(written[-1]) as gif:
        assert gif.n_frames == 8 and gif.size[0] >= 96  # there and back, blown up to view
