"""check_plugin and `aigc-run plugins check`: a good plugin passes, a broken one gets every
problem reported at once, naming the plugin."""

from __future__ import annotations

import importlib
import sys

import pytest
from click.testing import CliRunner

from aigc_run.cli import main
from aigc_run.contract.errors import PluginCheckError
from aigc_run.testing import check_plugin

# Implements every hook, each returning what the contract asks for.
GOOD = """
import numpy as np
from PIL import Image, ImageOps

from aigc_run import hookimpl
from aigc_run import (
    DatasetSource, Metric, ModelFamily, Preprocessor, QualityFilter, Sample, SampleWriter,
    ScenarioFile, Skipped,
)

CALLS = []


def load(request):
    rng = np.random.default_rng(request.seed)
    for i in range(6):
        pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
        yield Sample(Image.fromarray(pixels), "warp" if i % 2 else "weft")
    yield Skipped("7.png", "unreadable image")


def write_npy(folder, stems, images):
    names = []
    for stem, image in zip(stems, images):
        (folder / stem).parent.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{stem}.npy", image.numpy())
        names.append(f"{stem}.npy")
    return names


def create_gan(spec):
    from aigc_run.models.gan import create
    return create(spec)


@hookimpl
def register_datasets():
    return [DatasetSource("looms", "noise swatches", load, 3, ("warp", "weft"), builtin=True)]

@hookimpl
def register_preprocessors():
    return [Preprocessor("mirror", "mirror left-right", lambda im, size: ImageOps.mirror(im))]

@hookimpl
def register_quality_filters():
    std = lambda images, context: images.flatten(1).std(dim=1)
    return [QualityFilter("contrast", "pixel std", std, 0.05, batch_independent=True)]

@hookimpl
def register_sample_writers():
    return [SampleWriter("npy", "one array per sample", write_npy)]

@hookimpl
def register_metrics():
    gap = lambda real, generated: abs(real.float().mean() - generated.float().mean()).item()
    return [Metric("mean-gap", "difference of mean brightness", gap)]

@hookimpl
def register_model_families():
    return [ModelFamily("loom-gan", "the engine's GAN", create_gan)]

@hookimpl
def register_scenarios():
    content = {
        "name": "looms", "plugin": "looms", "data": {"source": "looms"},
        "preprocess": {"steps": ["mirror", "center-crop"]}, "model": {"family": "loom-gan"},
        "filters": {"contrast": "auto"}, "evaluate": {"metrics": ["mean-gap"]},
        "output": {"writer": "npy"},
    }
    return [ScenarioFile("looms", "noise swatches", content=content)]

@hookimpl
def before_run(run):
    CALLS.append("before_run")

@hookimpl
def after_training_step(run, step, values):
    CALLS.append("after_training_step")

@hookimpl
def after_checkpoint(run, checkpoint):
    CALLS.append("after_checkpoint")

@hookimpl
def after_samples_filtered(run, batch):
    CALLS.append("after_samples_filtered")

@hookimpl
def after_run(run, status):
    CALLS.append("after_run")

@hookimpl
def on_run_error(run, error):
    CALLS.append("on_run_error")
"""

# Nine different faults, in almost every kind of contribution.
BROKEN = """
import numpy as np
from PIL import Image

from aigc_run import hookimpl
from aigc_run import (
    DatasetSource, Metric, Preprocessor, QualityFilter, Sample, ScenarioFile,
)


def load(request):
    yield "not a sample"
    yield Sample(Image.new("RGB", (8, 8)), "")


@hookimpl
def register_datasets():
    return [DatasetSource("bad-source", "yields junk", load, channels=3, builtin=True)]

@hookimpl
def register_preprocessors():
    return [
        Preprocessor("to-array", "returns an array", lambda im, size: np.asarray(im)),
        Preprocessor("center-crop", "takes the engine's name", lambda im, size: im),
    ]

def in_place(images, context):
    images.mul_(0)
    return images.flatten(1).mean(dim=1)

@hookimpl
def register_quality_filters():
    two_scores = lambda images, context: images.flatten(2).mean(dim=2)[:, :2]
    brighter = lambda images, context: images.flatten(1).mean(1) - images.mean()
    return [
        QualityFilter("wrong-shape", "two scores per image", two_scores, 0.5),
        QualityFilter("in-place", "blanks what it scores", in_place, 0.5),
        QualityFilter("brighter", "than the batch", brighter, 0.0, batch_independent=True),
    ]

@hookimpl
def register_sample_writers():
    raise RuntimeError("writer setup failed")

@hookimpl
def register_metrics():
    return [Metric("nan", "never a number", lambda real, generated: float("nan"))]

@hookimpl
def register_scenarios():
    content = {"name": "bad", "plugin": "someone-else", "data": {"source": "bad-source"},
               "filters": {"no-such-filter": 0.5}}
    return [ScenarioFile("bad", "names what does not exist", content=content)]

@hookimpl
def after_run(run, status):
    raise OSError("notifier unreachable")
"""

BROKEN_PROBLEMS = [
    "dataset 'bad-source': item 0 is a str, not a Sample or Skipped",
    "dataset 'bad-source': 1 usable image(s)",
    "preprocessor 'to-array' returned ndarray, not a PIL image",
    "register_preprocessors: the name 'center-crop' is taken by 'aigc-run'",
    "quality filter 'wrong-shape' on 3-channel images: returned (4, 2) for 4 images",
    "quality filter 'in-place' changed the images it scored",
    "quality filter 'brighter' says batch_independent=True, but an image's score changed",
    "register_sample_writers raised RuntimeError: writer setup failed",
    "metric 'nan' returned nan, not a finite number",
    "scenario 'bad' says plugin = 'someone-else', not 'looms'",
    "scenario 'bad' uses names neither this plugin nor aigc-run registers: "
    "filters 'no-such-filter'",
    "after_run raised OSError: notifier unreachable",
]


def _module(install_plugin, source: str, requires: tuple[str, ...] = ()):
    install_plugin("looms", source, requires=requires)
    return importlib.import_module("aigc_looms")


def test_a_plugin_that_keeps_the_contract_passes(install_plugin):
    plugin = _module(install_plugin, GOOD)
    report = check_plugin(plugin)  # named after its entry point
    assert report.plugin == "looms"
    assert report.problems == []
    report.raise_for_problems()
    # every hook it implements was called, lifecycle ones included
    lifecycle = ["before_run", "after_training_step", "after_checkpoint"]
    lifecycle += ["after_samples_filtered", "after_run", "on_run_error"]
    assert sorted(plugin.CALLS) == sorted(lifecycle)
    checked = "\n".join(report.checked)
    for part in (
        "dataset 'looms'",
        "preprocessor 'mirror'",
        "quality filter 'contrast': one finite score per image, each image's alone",
        "sample writer 'npy'",
        "metric 'mean-gap'",
        "model family 'loom-gan'",
        "scenario 'looms': valid",
    ):
        assert part in checked


def test_a_broken_plugin_gets_all_its_problems_reported_at_once(install_plugin):
    report = check_plugin(_module(install_plugin, BROKEN))
    assert not report.ok
    for expected in BROKEN_PROBLEMS:
        assert any(expected in problem for problem in report.problems), expected
    assert len(report.problems) == len(BROKEN_PROBLEMS)
    with pytest.raises(PluginCheckError) as caught:
        report.raise_for_problems()
    assert caught.value.plugin == "looms"
    assert f"plugin 'looms' has {len(BROKEN_PROBLEMS)} problem(s)" in caught.value.message
    assert all(problem in caught.value.message for problem in report.problems)


def test_a_dataset_without_builtin_data_is_probed_on_the_data_given(install_plugin, tmp_path):
    from PIL import Image

    source = GOOD.replace("builtin=True", "builtin=False").replace(
        "rng = np.random", "assert request.path.is_dir(); rng = np.random"
    )
    plugin = _module(install_plugin, source)
    skipped = check_plugin(plugin)
    assert skipped.ok and "dataset 'looms' has no built-in data and was not probed" in str(skipped)
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    probed = check_plugin(plugin, data=tmp_path)
    assert probed.ok and any("dataset 'looms': 6 images read" in c for c in probed.checked)


def test_a_plugin_that_cannot_register_is_one_problem_not_a_crash():
    class Typo:
        from aigc_run import hookimpl

        @hookimpl
        def register_dataset(self):  # misspelt: register_datasets
            return []

    report = check_plugin(Typo(), "typo")
    assert len(report.problems) == 1 and "register_dataset" in report.problems[0]


def test_cli_check_passes_a_good_plugin(install_plugin):
    install_plugin("looms", GOOD, requires=("aigc-run>=0.1,<1",))
    result = CliRunner().invoke(main, ["plugins", "check", "looms"])
    assert result.exit_code == 0, result.output
    assert "plugin 'looms' passes" in result.output
    assert "supports aigc-run<1,>=0.1" in result.output


def test_cli_check_lists_every_problem_and_exits_1(install_plugin):
    install_plugin("looms", BROKEN)
    result = CliRunner().invoke(main, ["plugins", "check", "looms"])
    assert result.exit_code == 1
    assert f"has {len(BROKEN_PROBLEMS)} problem(s)" in result.output
    assert result.output.count("  FAIL  ") == len(BROKEN_PROBLEMS)
    assert "declares no supported aigc-run range" in result.output


def test_cli_check_reports_an_incompatible_or_missing_plugin(install_plugin):
    install_plugin("looms", GOOD, requires=("aigc-run>=7",))
    result = CliRunner().invoke(main, ["plugins", "check", "looms"])
    assert result.exit_code == 1
    assert "supports aigc-run>=7, but aigc-run" in result.output
    assert "aigc_looms" not in sys.modules  # refused before importing it
    missing = CliRunner().invoke(main, ["plugins", "check", "nope"])
    assert missing.exit_code == 1
    assert "no plugin of that name is installed" in missing.output


def test_fixtures_run_a_tiny_scenario_with_only_the_given_plugins(
    install_plugin, aigc_plugins, aigc_tiny_run
):
    plugin = _module(install_plugin, GOOD)
    install_plugin("other", "import sys; sys.exit('never loaded by aigc_plugins')\n")
    plugins = aigc_plugins(plugin)
    assert set(plugins.versions) == {"aigc-run", "looms"}
    result = aigc_tiny_run("looms", plugins=plugins)
    assert result.generated >= 4
    assert (result.output_dir / "manifest.csv").is_file()
    assert list(result.output_dir.rglob("*.npy"))  # the plugin's own writer wrote them
    assert plugin.CALLS[0] == "before_run" and plugin.CALLS[-1] == "after_run"


def test_the_engines_own_parts_pass_the_check():
    result = CliRunner().invoke(main, ["plugins", "check", "aigc-run"])
    assert result.exit_code == 0, result.output
    for part in ("model family 'gan'", "model family 'vae'", "sample writer 'png'"):
        assert part in result.output


@pytest.mark.parametrize("plugin", ["ecommerce", "medical"])
def test_the_shipped_plugins_pass_the_check(plugin):
    # Their scenarios hold [sizes.N] blocks: the check reads a scenario as a run does.
    result = CliRunner().invoke(main, ["plugins", "check", plugin])
    assert result.exit_code == 0, result.output
    assert f"scenario '{plugin}': valid" in result.output
