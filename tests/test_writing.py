"""Writing samples in worker processes keeps the manifest, the registry and the files in step."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from aigc_run.cli import main
from aigc_run.registry import Registry
from aigc_run.settings import Settings

STRIPES = """
from PIL import Image
from aigc_run import hookimpl
from aigc_run import DatasetSource, Sample, SampleWriter, ScenarioFile

def load(request):
    for i in range(32):
        yield Sample(Image.new("L", (16, 16), 40 + 5 * i), ("dark", "light")[i % 2])

def write_raw(folder, stems, images):
    names = []
    for stem, image in zip(stems, images):
        if stem.endswith("0000013"):
            raise OSError("disk on fire")
        target = folder / f"{stem}.raw"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image.numpy().tobytes())
        names.append(f"{stem}.raw")
    return names

@hookimpl
def register_datasets():
    return [DatasetSource("stripes", "grey levels", load, channels=1, builtin=True)]

@hookimpl
def register_sample_writers():
    return [SampleWriter("raw", "raw bytes, fails on sample 13", write_raw),
            SampleWriter("raw-lambda", "a lambda: cannot go to a worker process",
                         lambda folder, stems, images: write_raw(folder, stems, images[:0]))]

@hookimpl
def register_scenarios():
    return [ScenarioFile("stripes", "grey levels", content={
        "name": "stripes", "plugin": "stripes",
        "data": {"source": "stripes", "image_size": 16},
        "model": {"width": 8, "latent_dim": 8},
        "train": {"steps": 2, "batch_size": 8, "log_every": 1, "checkpoint_every": 2},
        "sample": {"count": 40, "batch_size": 4},
        "output": {"write_processes": 2, "writer": "raw"},
    })]
"""


@pytest.fixture
def stripes(install_plugin):
    install_plugin("stripes", STRIPES)


def _run(*settings: str):
    args = ["scenario", "stripes", "--quiet"]
    for setting in settings:
        args += ["--set", setting]
    return CliRunner().invoke(main, args)


def _detail():
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    return registry.get_run(run.id)


def test_samples_written_by_worker_processes_are_recorded_in_order(stripes, aigc_home):
    result = _run("sample.count=12")
    assert result.exit_code == 0, result.output
    detail = _detail()
    assert detail.samples.total == 12
    with open(f"{detail.output_dir}/manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == list(range(12))
    for row in rows:
        folder = "dark" if int(row["index"]) % 2 == 0 else "light"
        assert row["file"] == f"samples/{folder}/{int(row['index']):07d}.raw"
        assert (aigc_home / detail.output_dir / row["file"]).stat().st_size == 16 * 16


def test_a_writer_failing_in_a_worker_fails_the_run_naming_the_plugin(stripes):
    result = _run()
    assert result.exit_code == 1
    assert "plugin 'stripes' failed in hook \"sample writer 'raw'\"" in result.output
    assert "OSError: disk on fire" in result.output
    detail = _detail()
    assert detail.status == "failed"
    # batches before the failing one were written and recorded; none after it
    assert 0 < detail.samples.total <= 12


def test_a_writer_that_cannot_go_to_a_worker_runs_inline(stripes):
    result = _run("output.writer=raw-lambda", "sample.count=4")
    assert result.exit_code == 1  # this writer returns no names: the engine says so
    assert "returned 0 file names for 4 images" in result.output
