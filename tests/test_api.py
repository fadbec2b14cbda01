"""aigc_run.load: a trained run's model in Python, drawing what aigc-run sample draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import aigc_run
from aigc_run.cli import main
from aigc_run.registry import Registry
from aigc_run.settings import Settings

TINY = [
    "scenario", "medical", "--quiet",
    "--set", "data.options.demo_count=40", "--set", "data.image_size=16",
    "--set", "model.width=8", "--set", "model.latent_dim=8", "--set", "train.steps=4",
    "--set", "train.batch_size=4", "--set", "sample.count=4", "--set", "evaluate.metrics=[]",
    "--set", "filters.intensity-plausibility=1000", "--set", "filters.memorisation=0",
    "--set", "filters.anatomical-plausibility=off", "--set", "filters.realness=-1000",
]  # fmt: skip


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run that every test here reads (none changes it)."""
    home = tmp_path_factory.mktemp("shared") / "aigc-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGC_HOME", str(home))
        patch.delenv("AIGC_DATABASE_URL", raising=False)
        result = CliRunner().invoke(main, TINY)
        assert result.exit_code == 0, result.output
    return home


@pytest.fixture
def run_id(shared_home: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("AIGC_HOME", str(shared_home))
    (run,) = Registry(Settings().registry_url).list_runs()
    return run.id


def test_a_loaded_run_generates_what_aigc_run_sample_draws(run_id: int, tmp_path) -> None:
    model = aigc_run.load(run_id, device="cpu")
    assert model.image_size == 16 and len(model.classes) == 2 and model.step == 4
    wanted = model.classes[1]
    batch = model.generate(5, classes=[wanted.upper()], seed=3, truncation=0.7)
    assert batch.shape == batch.images.shape == (5, 16, 16, 1)
    assert batch.images.dtype == np.uint8
    assert batch.classes == [wanted] * 5 and batch.accepted.all()
    assert set(batch.scores) == {"intensity-plausibility", "memorisation", "realness"}
    realness = batch.scores["realness"]  # the run's own discriminator, one logit per image
    assert np.isfinite(realness).all() and len(set(realness.tolist())) > 1
    assert all(len(s) == 5 for s in batch.scores.values())
    assert [i % 2 for i in batch.indices] == [1] * 5  # index i asks for class i % 2
    assert batch.pil()[0].size == (16, 16)

    # The CLI draws the same image for the same seed, index and truncation.
    args = ["sample", str(run_id), "--regenerate", str(batch.indices[0]), "--seed", "3"]
    args += ["--truncation", "0.7", "--out", str(tmp_path / "again")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    again = np.asarray(Image.open(result.output.split()[0]))
    assert np.array_equal(again, batch.images[0, :, :, 0])

    everything = model.generate(6, filtered=False, seed=3)
    assert everything.indices == list(range(6)) and len(everything.accepted) == 6


def test_load_explains_what_it_cannot_use(run_id: int) -> None:
    model = aigc_run.load(run_id)
    with pytest.raises(aigc_run.ConfigError, match="--class 'cat'"):
        model.generate(2, classes=["cat"])
    with pytest.raises(aigc_run.ConfigError, match="truncation in"):
        model.generate(2, truncation=1.5)
    with pytest.raises(aigc_run.ConfigError, match="give a run id"):
        aigc_run.load(2.5)  # type: ignore[arg-type]
    with pytest.raises(aigc_run.ConfigError, match="is not an aigc-run export"):
        aigc_run.load("latest")  # a path: a folder aigc-run export wrote
    with pytest.raises(aigc_run.AigcError, match="no run with id 99"):
        aigc_run.load(99)


def test_the_realness_filter_scores_with_the_runs_discriminator(run_id: int) -> None:
    import csv

    import torch

    detail = Registry(Settings().registry_url).get_run(run_id)
    with open(f"{detail.output_dir}/manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({r["score:realness"] for r in rows}) > 1  # scored in the run itself, too
    gan = aigc_run.load(run_id, device="cpu")._trained.model
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    labels = torch.tensor([0, 1, 0, 1])
    together = gan.realness(images, labels)
    alone = torch.cat([gan.realness(images[i : i + 1], labels[i : i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)  # eval mode: no batch statistics


def test_a_lower_truncation_draws_less_varied_images(run_id: int) -> None:
    model = aigc_run.load(run_id, device="cpu")

    def spread(psi: float) -> float:
        images = model.generate(32, seed=5, truncation=psi, filtered=False).images
        flat = images.reshape(len(images), -1).astype(np.float64)
        return float(np.mean([np.abs(a - b).mean() for a in flat for b in flat]))

    assert spread(0.5) < spread(1.0)


def test_too_few_images_passing_the_filters_is_a_warning(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "aigc-home"))
    monkeypatch.delenv("AIGC_DATABASE_URL", raising=False)
    strict = [*TINY, "--set", "filters.realness=1000000"]  # no logit is that real
    assert CliRunner().invoke(main, strict).exit_code == 0
    model = aigc_run.load(1, device="cpu")
    with pytest.warns(UserWarning, match=r"only 0 of 3 images passed the run's filters"):
        assert model.generate(3, seed=1).shape[0] == 0
    assert model.generate(3, seed=1, filtered=False).shape[0] == 3
