"""aigc-run export: a trained run as a folder that draws and filters on its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import aigc_run
from aigc_run.cli import main
from aigc_run.registry import Registry
from aigc_run.settings import Settings

TINY = [
    "scenario", "medical", "--quiet",
    "--set", "data.options.demo_count=40", "--set", "data.image_size=16",
    "--set", "model.width=8", "--set", "model.latent_dim=8", "--set", "train.steps=4",
    "--set", "train.batch_size=4", "--set", "sample.count=4",
    "--set", "evaluate.metrics=['precision-recall']", "--set", "evaluate.samples=8",
    "--set", "filters.intensity-plausibility=1000", "--set", "filters.memorisation=0",
    "--set", "filters.anatomical-plausibility=off", "--set", "filters.realness=-1000",
]  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(AIGC_HOME with one tiny run, the run exported with its reference images)."""
    home = tmp_path_factory.mktemp("shared") / "aigc-home"
    folder = tmp_path_factory.mktemp("exports") / "tiny"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGC_HOME", str(home))
        patch.delenv("AIGC_DATABASE_URL", raising=False)
        result = CliRunner().invoke(main, TINY)
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(main, ["export", "1", "--out", str(folder)])
        assert result.exit_code == 0, result.output
        assert str(folder) in result.output
    return home, folder


@pytest.fixture
def home(exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIGC_HOME", str(exported[0]))
    monkeypatch.delenv("AIGC_DATABASE_URL", raising=False)
    return exported[0]


def copy_of(exported: tuple[Path, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported[1], tmp_path / "copy"))


def test_an_export_draws_what_the_run_draws_with_no_registry_and_no_data(
    exported: tuple[Path, Path], home: Path, tmp_path: Path
) -> None:
    from_run = aigc_run.load(1, device="cpu").generate(6, classes=["lesion"], seed=5)
    folder = copy_of(exported, tmp_path)
    script = (
        "import aigc_run, numpy, sys; m = aigc_run.load(sys.argv[1], device='cpu'); "
        "b = m.generate(6, classes=['Lesion'], seed=5); print(b.shape); "
        "numpy.savez(sys.argv[2], images=b.images, **b.scores)"
    )
    empty = tmp_path / "no-home"  # no registry, no cache, no data: only the folder
    env = {**os.environ, "AIGC_HOME": str(empty), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(tmp_path / "drawn.npz")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(6, 16, 16, 1)"
    drawn = np.load(tmp_path / "drawn.npz")
    assert np.array_equal(drawn["images"], from_run.images)
    for name, scores in from_run.scores.items():
        np.testing.assert_allclose(drawn[name], scores, rtol=1e-5, atol=1e-6)
    assert not (empty / "registry.db").exists()


def test_the_folder_holds_weights_config_reference_and_a_model_card(
    exported: tuple[Path, Path],
) -> None:
    folder = exported[1]
    config = json.loads((folder / "aigc-export.json").read_text())
    assert config["class_names"] == ["lesion", "normal"] and config["run"]["step"] == 4
    assert config["spec"]["image_size"] == 16 and "device" not in config["spec"]
    assert set(config["files"]) >= {"model.safetensors", "reference.safetensors"}
    assert any(name.startswith("features/domain-") for name in config["files"])
    assert set(config["thresholds"]) == {"intensity-plausibility", "memorisation", "realness"}
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    assert any(k.startswith("generator_ema.") for k in weights)
    assert any(k.startswith("discriminator.") for k in weights)
    assert not any(k.startswith("optimizer") for k in weights)
    card = (folder / "README.md").read_text()
    assert "synthetic" in card and "normal (" in card and "lesion (" in card
    assert "precision" in card and "real vs real" in card
    assert f"{config['reference_images']} of the real training images" in card


def test_an_altered_or_incomplete_export_is_refused(
    exported: tuple[Path, Path], home: Path, tmp_path: Path
) -> None:
    folder = copy_of(exported, tmp_path)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(aigc_run.AigcError, match=r"safetensors no longer matches its recorded"):
        aigc_run.load(folder)
    shutil.copy(exported[1] / "model.safetensors", weights)
    aigc_run.load(folder, device="cpu")  # restored: loads again

    config_path = folder / "aigc-export.json"
    config = json.loads(config_path.read_text())
    config["spec"]["options"]["width"] = 16  # weights of width 8 against a config of 16
    config_path.write_text(json.dumps(config))
    with pytest.raises(aigc_run.AigcError, match="does not fit"):
        aigc_run.load(folder)

    (folder / "reference.safetensors").unlink()
    with pytest.raises(aigc_run.AigcError, match=r"reference\.safetensors is missing"):
        aigc_run.load(folder)
    config_path.write_text("{not json")
    with pytest.raises(aigc_run.AigcError, match="not valid JSON"):
        aigc_run.load(folder)
    config_path.unlink()
    with pytest.raises(aigc_run.ConfigError, match="not an aigc-run export"):
        aigc_run.load(folder)
    with pytest.raises(aigc_run.ConfigError, match="an export holds one checkpoint"):
        aigc_run.load(exported[1], step=2)


def test_export_refuses_a_folder_with_files_and_leaves_them(home: Path, tmp_path: Path) -> None:
    kept = tmp_path / "mine" / "notes.txt"
    kept.parent.mkdir()
    kept.write_text("keep me")
    result = CliRunner().invoke(main, ["export", "1", "--out", str(kept.parent)])
    assert result.exit_code != 0 and "not an empty folder" in result.output
    assert kept.read_text() == "keep me" and sorted(kept.parent.iterdir()) == [kept]
    result = CliRunner().invoke(main, ["export", "7", "--out", str(tmp_path / "new")])
    assert result.exit_code != 0 and "7" in result.output
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new-")]


def test_an_export_without_reference_images_draws_unfiltered_only(
    home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bare"
    result = CliRunner().invoke(main, ["export", "1", "--out", str(folder), "--no-reference"])
    assert result.exit_code == 0, result.output
    assert not (folder / "reference.safetensors").exists()
    assert "No training images" in (folder / "README.md").read_text()
    model = aigc_run.load(folder, device="cpu")
    with pytest.raises(aigc_run.ConfigError, match="no training images"):
        model.generate(2)
    drawn = model.generate(3, filtered=False, seed=1)
    assert drawn.shape == (3, 16, 16, 1) and drawn.scores == {}
    Registry(Settings().registry_url).close()
