"""A plugin's filter that raises, hangs, returns the wrong shape or NaN is named, and the run
fails cleanly or goes on without that filter, as the scenario says."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from aigc_run.cli import main
from aigc_run.registry import Registry
from aigc_run.settings import Settings

FAULTY = """
import threading, torch
from PIL import Image
from aigc_run import hookimpl
from aigc_run import DatasetSource, QualityFilter, Sample, ScenarioFile

RELEASE = threading.Event()  # lets the hung filter's thread end when the test is over

def load(request):
    for i in range(32):
        yield Sample(Image.new("L", (16, 16), 60 + 4 * i), "grey")

def raises(images, context):
    raise RuntimeError("model file missing")

def hangs(images, context):
    RELEASE.wait(30)
    return torch.zeros(len(images))

def wrong_shape(images, context):
    return torch.zeros(len(images), 2)

def nan(images, context):
    return torch.full((len(images),), float("nan"))

def good(images, context):
    return images.mean(dim=(1, 2, 3))

@hookimpl
def register_datasets():
    return [DatasetSource("greys", "grey squares", load, channels=1, builtin=True)]

@hookimpl
def register_quality_filters():
    return [QualityFilter(name, name, fn, threshold=0.5, higher_is_better=False)
            for name, fn in [("raises", raises), ("hangs", hangs), ("wrong-shape", wrong_shape),
                             ("nan", nan), ("good", good)]]

@hookimpl
def register_scenarios():
    return [ScenarioFile("greys", "grey squares", content={
        "name": "greys", "plugin": "faulty",
        "data": {"source": "greys", "image_size": 16},
        "model": {"width": 8, "latent_dim": 8},
        "train": {"steps": 2, "batch_size": 8, "log_every": 1, "checkpoint_every": 2},
        "sample": {"count": 6, "batch_size": 6, "filter_timeout": 1.0},
        "filters": {"good": 1.0},
    })]
"""

FAULTS = {
    "raises": "RuntimeError: model file missing",
    "hangs": "took longer than 1 s (sample.filter_timeout)",
    "wrong-shape": "returned (6, 2) for 6 images",
    "nan": "returned NaN or infinite scores",
}


@pytest.fixture
def faulty(install_plugin):
    path = install_plugin("faulty", FAULTY)
    yield
    import sys

    module = sys.modules.get(path.stem)
    if module is not None:
        module.RELEASE.set()


def _run(*settings: str):
    args = ["scenario", "greys", "--quiet"]
    for setting in settings:
        args += ["--set", setting]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_faulty_filter_fails_the_run_naming_the_plugin(faulty, fault: str) -> None:
    result = _run(f"filters.{fault}=0.5")
    assert result.exit_code == 1, result.output
    assert f"plugin 'faulty' failed in hook \"quality filter '{fault}'\"" in result.output
    assert FAULTS[fault] in result.output
    assert "sample.on_filter_error=skip" in result.output
    assert "Traceback" not in result.output
    (run,) = Registry(Settings().registry_url).list_runs()
    assert run.status == "failed"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_with_skip_the_run_goes_on_without_the_faulty_filter(faulty, fault: str) -> None:
    result = _run(f"filters.{fault}=0.5", "sample.on_filter_error=skip")
    assert result.exit_code == 0, result.output
    assert f"warning: quality filter {fault!r} was skipped" in result.output
    assert FAULTS[fault] in result.output
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    detail = registry.get_run(run.id)
    assert detail.status == "completed" and detail.samples.total == 6
    with open(f"{detail.output_dir}/manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # the good filter kept working: its scores are there; the skipped one's are blank
    assert all(r["score:good"] != "" for r in rows)
    assert all(r[f"score:{fault}"] == "" for r in rows)
