"""A whole run through the engine with a plugin written outside the repo."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from aigc_run.cli import main
from aigc_run.contract.kinds import MODEL_FAMILIES
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.settings import Settings

# A small vertical: "tiles", squares and discs on grey, with its own filter, a scenario
# and observers that record every lifecycle call in order.
TILES = """
import json, os
from pathlib import Path
from PIL import Image, ImageDraw
from aigc_run import (DatasetSource, GenerativeModel, Metric, ModelFamily, Preprocessor,
    QualityFilter, Sample, SampleWriter, ScenarioFile, Skipped, hookimpl)

CALLS = Path(os.environ["TILES_CALLS"])

def load(request):
    for i in range(48):
        image = Image.new("L", (16, 16), 128)
        draw = ImageDraw.Draw(image)
        shape = ("square", "disc")[i % 2]
        (draw.rectangle if shape == "square" else draw.ellipse)((3, 3, 12, 12), fill=255)
        yield Sample(image, shape)
    yield Skipped("broken.png", "unreadable image")

def brightness(images, context):
    return images.mean(dim=(1, 2, 3))

@hookimpl
def register_datasets():
    return [DatasetSource("tiles", "test tiles", load, channels=1, builtin=True)]

@hookimpl
def register_quality_filters():
    return [QualityFilter("bright-enough", "mean brightness", brightness, threshold=0.0)]

@hookimpl
def register_scenarios():
    return [ScenarioFile("tiles", "squares and discs", content={
        "name": "tiles", "plugin": "tiles",
        "data": {"source": "tiles", "image_size": 16},
        "model": {"width": 8, "latent_dim": 8},
        "train": {"steps": 2, "batch_size": 8, "log_every": 1, "checkpoint_every": 2},
        "sample": {"count": 6, "batch_size": 4},
        "filters": {"bright-enough": 0.0},
    })]

class MeanModel(GenerativeModel):
    # The smallest real model family: it learns the mean image and draws it.

    latent_dim = 4

    def __init__(self, spec):
        import torch
        self.mean = torch.zeros(spec.channels, spec.image_size, spec.image_size)
        self.seen = 0

    def train_step(self, images, labels):
        self.seen += 1
        self.mean += (images.mean(0).cpu() - self.mean) / self.seen
        return {"spread": float(images.std())}

    def generate(self, noise, labels):
        return self.mean.expand(len(noise), -1, -1, -1).clone()

    def state_dict(self):
        return {"mean": self.mean.clone()}

    def load_state_dict(self, state):
        self.mean = state["mean"].clone()

def write_raw(folder, stems, images):
    names = []
    for stem, image in zip(stems, images):
        (folder / stem).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.raw").write_bytes(image.numpy().tobytes())
        names.append(f"{stem}.raw")
    return names

def mean_gap(real, generated):
    return abs(real.float().mean() - generated.float().mean()).item() / 255

@hookimpl
def register_preprocessors():
    from PIL import ImageOps
    return [Preprocessor("invert", "negative", lambda image, size: ImageOps.invert(image))]

@hookimpl
def register_sample_writers():
    return [SampleWriter("raw", "raw bytes", write_raw)]

@hookimpl
def register_metrics():
    return [Metric("mean-gap", "difference of mean brightness", mean_gap)]

@hookimpl
def register_model_families():
    return [ModelFamily("mean-image", "draws the mean training image", MeanModel)]

def record(*entry):
    with CALLS.open("a") as f:
        f.write(json.dumps(entry) + "\\n")

@hookimpl
def before_run(run):
    record("before_run", run.scenario)

@hookimpl
def after_training_step(run, step, values):
    record("after_training_step", step)

@hookimpl
def after_checkpoint(run, checkpoint):
    record("after_checkpoint", Path(checkpoint).name)

@hookimpl
def after_samples_filtered(run, batch):
    record("after_samples_filtered", list(batch.indices))

@hookimpl
def after_run(run, status):
    record("after_run", status)

@hookimpl
def on_run_error(run, error):
    record("on_run_error", type(error).__name__)
"""


@pytest.fixture
def tiles(install_plugin, tmp_path, monkeypatch):
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("TILES_CALLS", str(calls))
    install_plugin("tiles", TILES)
    return calls


def _manifest(folder):
    with open(f"{folder}/manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _calls(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outside_plugin_runs_end_to_end_with_hooks_in_order(tiles, aigc_home):
    result = CliRunner().invoke(main, ["scenario", "tiles", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "skipped: unreadable image 1" in result.output
    assert _calls(tiles) == [
        ["before_run", "tiles"],
        ["after_training_step", 1],
        ["after_training_step", 2],
        ["after_checkpoint", "step-0000002.safetensors"],
        ["after_samples_filtered", [0, 1, 2, 3]],
        ["after_samples_filtered", [4, 5]],
        ["after_run", "completed"],
    ]
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    detail = registry.get_run(run.id)
    assert detail.status == "completed"
    assert detail.plugins["tiles"] == "0.1.0"
    assert [c[0] for c in detail.checkpoints] == [2]
    assert detail.samples.total == 6 and detail.samples.accepted == 6
    out = detail.output_dir
    rows = _manifest(out)
    assert [r["index"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    assert {r["class"] for r in rows} == {"disc", "square"}
    for row in rows:
        assert (aigc_home / out / row["file"]).is_file()
    assert (aigc_home / out / "contact_sheet.png").is_file()


def test_lifecycle_hook_that_raises_fails_the_run_cleanly(install_plugin, tiles, aigc_home):
    install_plugin(
        "grumpy",
        """
        from aigc_run import hookimpl

        @hookimpl
        def after_checkpoint(run, checkpoint):
            raise OSError("exporter offline")
    """,
    )
    result = CliRunner().invoke(main, ["scenario", "tiles", "--quiet"])
    assert result.exit_code == 1
    assert "plugin 'grumpy' failed in hook 'after_checkpoint'" in result.output
    assert "Traceback" not in result.output
    assert _calls(tiles)[-1] == ["on_run_error", "PluginError"]
    (run,) = Registry(Settings().registry_url).list_runs()
    assert run.status == "failed"


def test_filter_scores_are_recorded_and_rejections_kept_apart(tiles, aigc_home):
    result = CliRunner().invoke(
        main,
        [
            "scenario",
            "tiles",
            "--quiet",
            "--set",
            "filters.bright-enough=2.0",
            "--set",
            "sample.max_tries=1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "only 0 of 6 samples passed" in result.output
    (run,) = Registry(Settings().registry_url).list_runs()
    detail = Registry(Settings().registry_url).get_run(run.id)
    rows = _manifest(detail.output_dir)
    assert all(r["accepted"] == "0" and r["reason"].startswith("bright-enough") for r in rows)
    assert all(r["file"].startswith("rejected/") for r in rows)
    # the decision as data: which filter, its score and the threshold it missed
    assert all(r["rejected_by"] == "bright-enough" for r in rows)
    assert all(float(r["threshold:bright-enough"]) == 2.0 for r in rows)
    assert all(float(r["score:bright-enough"]) < 2.0 for r in rows)
    assert detail.samples.rejected_by_filter == {"bright-enough": len(rows)}


def test_every_contribution_kind_of_an_outside_plugin_is_used(tiles, aigc_home):
    result = CliRunner().invoke(
        main,
        [
            "scenario",
            "tiles",
            "--quiet",
            "--set",
            "model.family=mean-image",
            "--set",
            "output.writer=raw",
            "--set",
            "evaluate.metrics=['mean-gap']",
            "--set",
            "preprocess.steps=['invert']",
            "--set",
            "train.steps=5",
        ],
    )
    assert result.exit_code == 0, result.output
    registry = Registry(Settings().registry_url)
    detail = registry.get_run(registry.list_runs()[0].id)
    rows = _manifest(detail.output_dir)
    assert all(r["file"].endswith(".raw") for r in rows)
    # Inverted tiles: a dark shape on a lighter ground, so the mean image is mostly light
    # grey (255 - 128) with a darker centre; the mean model draws exactly that.
    first = (aigc_home / detail.output_dir / rows[0]["file"]).read_bytes()
    assert len(first) == 16 * 16
    assert first[0] == 127 and first[16 * 8 + 8] < 60
    assert 0 <= detail.evaluations["mean-gap"] < 0.05
    assert "spread" in detail.metrics


def test_plugins_lists_the_outside_plugin(tiles):
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0
    assert "tiles 0.1.0" in result.output
    assert "tiles (tiles)" in result.output
    assert "gan (aigc-run)" in result.output


def test_scenarios_lists_the_outside_scenario(tiles):
    result = CliRunner().invoke(main, ["scenarios"])
    assert "tiles" in result.output and "squares and discs" in result.output


def test_disabled_plugin_scenario_is_explained(tiles, monkeypatch):
    monkeypatch.setenv("AIGC_DISABLE_PLUGINS", "tiles")
    result = CliRunner().invoke(main, ["scenario", "tiles"])
    assert result.exit_code == 2
    assert "no scenario named 'tiles'" in result.output


def test_builtin_families_available_without_plugins():
    assert set(Plugins(load_entry_points=False).contributions(MODEL_FAMILIES)) >= {"gan", "vae"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["data.image_size=8"], "data.image_size: the built-in models need a power of two"),
        (["data.image_size=48"], "data.image_size: the built-in models need a power of two"),
        (["model.family=vae", "model.r1=1"], "model.r1: unknown setting for the vae family"),
        (["model.upscale=4", "data.image_size=32"], "the GAN would train at 8 px"),
        (["train.freeze_d=5"], "train.freeze_d: the discriminator has 3 blocks"),
    ],
)
def test_a_setting_the_model_refuses_fails_before_a_run_is_recorded(aigc_home, sets, message):
    from aigc_run.registry import Registry
    from aigc_run.settings import Settings

    args = ["scenario", "ecommerce", *(a for s in sets for a in ("--set", s))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Hint:" in result.output
    assert Registry(Settings().registry_url).list_runs() == []


@pytest.mark.parametrize("name", ["ecommerce", "medical"])
def test_each_shipped_scenario_trains_a_vae_with_one_setting(aigc_home, name):
    from aigc_run.registry import Registry
    from aigc_run.settings import Settings

    sets = ["model.family=vae", "train.steps=2", "train.batch_size=4", "data.image_size=16"]
    sets += ["model.width=8", "sample.count=4", "evaluate.metrics=[]"]
    sets += ["data.options.demo_count=40"]
    args = ["scenario", name, "--quiet", *(a for s in sets for a in ("--set", s))]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run,) = Registry(Settings().registry_url).list_runs()
    assert run.status == "completed"
    checkpoint = Registry(Settings().registry_url).get_run(run.id).checkpoints[-1].path
    from safetensors.torch import load_file

    assert any(k.startswith("encoder.") for k in load_file(checkpoint))  # a vae was trained
