"""Starting from a trained run (``--init-from``): weights and classes carried over, the
lineage recorded, and every misfit refused before a run is recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from aigc_run.cli import main
from aigc_run.contract.components import ModelSpec
from aigc_run.contract.errors import ConfigError
from aigc_run.data import Dataset
from aigc_run.models.gan import Gan
from aigc_run.models.vae import Vae
from aigc_run.registry import Registry
from aigc_run.run.transfer import match_classes, nearest_classes
from aigc_run.settings import Settings

SCENARIO = """
name = "line"
plugin = "ecommerce"
[data]
source = "products"
image_size = 16
holdout = 0.25
[model]
width = 8
latent_dim = 8
[train]
steps = 2
batch_size = 4
log_every = 1
checkpoint_every = 2
device = "cpu"
[sample]
count = 4
[evaluate]
metrics = []
"""


def _folder(root: Path, classes: dict[str, int]) -> Path:
    """Class subfolders of small photos, each class its own colour."""
    rng = np.random.default_rng(len(classes))
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            pixels = np.full((24, 24, 3), 255, np.uint8)
            colour = np.array([60 * index, 200 - 40 * index, 90]) + rng.integers(0, 40, 3)
            pixels[6:18, 6:18] = colour
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def base_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A home with a completed run on Dress, Shirt and Shoes, shared by the tests here:
    they add runs beside it and put back what they change."""
    folder = tmp_path_factory.mktemp("base")
    scenario = folder / "line.toml"
    scenario.write_text(SCENARIO)
    data = _folder(folder / "catalogue", {"Dress": 8, "Shirt": 8, "Shoes": 8})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGC_HOME", str(folder / "aigc-home"))
        patch.delenv("AIGC_DATABASE_URL", raising=False)
        code, output = _cli("scenario", str(scenario), "--data", str(data), "--quiet")
        assert code == 0, output
        # 8 photos a class: the run says what to do about so little data
        assert "note: 8 images in the smallest class (Dress), under 100" in output
        assert "--init-from RUN_ID" in output
        (run,) = Registry(Settings().registry_url).list_runs()
    return folder / "aigc-home", scenario, run.id


@pytest.fixture
def base(base_home: tuple[Path, Path, int], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """The scenario file and the base run, in the shared home."""
    home, scenario, run_id = base_home
    monkeypatch.setenv("AIGC_HOME", str(home))
    return scenario, run_id


def _state(registry: Registry, run_id: int) -> dict[str, torch.Tensor]:
    return load_file(registry.get_run(run_id).checkpoints[-1].path)


def test_a_new_line_starts_from_the_trained_run_with_its_classes(base, tmp_path: Path) -> None:
    scenario, base_id = base
    new_line = _folder(tmp_path / "new-line", {"dress": 6, "Skirt": 6})
    code, output = _cli(
        "scenario", str(scenario), "--data", str(new_line), "--init-from", str(base_id),
        "--set", "train.lr=1e-9", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    assert "note:" not in output  # started from a trained model: the advice is taken
    registry = Registry(Settings().registry_url)
    trained = _state(registry, base_id)
    assert f"starting from run {base_id} (checkpoint step 2): " in output
    assert "Skirt (new) from the mean of its 3 classes" in output
    assert "dress from its Dress" in output
    child_id = max(r.id for r in registry.list_runs())
    child = registry.get_run(child_id)
    assert child.parent is not None and child.parent["run"] == base_id
    assert child.dataset == {"images": 12, "channels": 3, "image_size": 16,
                             "classes": ["Skirt", "dress"]}  # fmt: skip

    # At a learning rate of 1e-9 two steps leave the weights where they started: the
    # base's, with "dress" on Dress's row and Skirt on the mean of the base's rows.
    tuned = _state(registry, child_id)
    for key in ("generator.stem.0.weight", "discriminator.linear.parametrizations.weight.original"):
        assert torch.allclose(tuned[key], trained[key], atol=1e-6), key
    gain = "generator.norms.1.gain.weight"
    assert torch.allclose(tuned[gain][1], trained[gain][0], atol=1e-6)  # dress <- Dress
    assert torch.allclose(tuned[gain][0], trained[gain][:3].mean(0), atol=1e-6)

    # Fine-tuning augments adaptively unless the scenario sets model.augment(_p): ADA's
    # probability is logged each step (the base run, trained from scratch, has none).
    assert "augment_p" in registry.metric_series(child_id)
    assert "augment_p" not in registry.metric_series(base_id)

    code, shown = _cli("runs", "show", str(child_id))
    assert f"started from: run {base_id}, checkpoint step 2" in shown
    assert "dataset: 12 images, 3 channel(s), 16 px; classes: Skirt, dress" in shown
    report = Path(child.output_dir, "report.html").read_text()
    assert f"run {base_id}, checkpoint step 2" in report

    # train.new_class_from = "nearest": Skirt starts on the row of the class the base's
    # critic finds its photos most real under, and the log names it.
    code, output = _cli(
        "scenario", str(scenario), "--data", str(new_line), "--init-from", str(base_id),
        "--set", "train.lr=1e-9", "--set", "train.new_class_from=nearest", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    names = ["Dress", "Shirt", "Shoes"]
    nearest = next(n for n in names if f"Skirt (new) from its {n}, which it looks most" in output)
    tuned = _state(registry, max(r.id for r in registry.list_runs()))
    assert torch.allclose(tuned[gain][0], trained[gain][names.index(nearest)], atol=1e-6)


def test_init_from_refuses_a_misfit_before_recording_a_run(base, tmp_path: Path) -> None:
    scenario, base_id = base
    data = _folder(tmp_path / "new-line", {"Skirt": 6})
    registry = Registry(Settings().registry_url)
    path = Path(registry.get_run(base_id).checkpoints[-1].path)

    def refused(init_from: str, *sets: str) -> str:
        before = len(registry.list_runs())
        args = [a for s in sets for a in ("--set", s)]
        code, output = _cli(
            "scenario", str(scenario), "--data", str(data), "--init-from", init_from, *args
        )
        assert code != 0, output
        assert len(registry.list_runs()) == before  # nothing was recorded
        assert "Traceback" not in output
        return output

    assert "'latest' is neither a run id nor a base model" in refused("latest")
    assert "no run with id 99" in refused("99")
    assert "trained at 16 px and this scenario trains at 32 px" in refused(
        str(base_id), "data.image_size=32"
    )
    assert "is a gan model and this scenario trains a vae" in refused(
        str(base_id), "model.family=vae"
    )
    wider = refused(str(base_id), "model.width=16")
    assert "does not fit this one" in wider and "model.width is 8 there and 16 here" in wider

    good = path.read_bytes()
    path.write_bytes(good[:-1] + b"\0")
    assert "no longer matches its recorded sha256" in refused(str(base_id))
    path.unlink()
    assert "is missing" in refused(str(base_id))
    path.write_bytes(good)

    failed_id = registry.create_run("line", {}, {}, "cpu", str(tmp_path / "failed"))
    registry.finish_run(failed_id, "failed", "RuntimeError: out of memory")
    assert f"run {failed_id} is failed, not completed" in refused(str(failed_id))


def test_classes_match_by_name_then_ignoring_case() -> None:
    trained = ["Dress", "Shirt", "shirt"]
    assert match_classes(trained, ["Shirt", "dress", "Skirt"]) == [1, 0, None]
    assert match_classes(trained, []) == [None]  # unlabelled data: the mean of all
    with pytest.raises(ConfigError, match="matches 2 classes of the trained model"):
        match_classes(trained, ["SHIRT"])


def _gan(classes: int, conditional: bool = True, freeze_d: int = 0, **train: float) -> Gan:
    spec = ModelSpec(
        3, 32, classes, conditional, {"width": 8}, {"freeze_d": freeze_d, **train}, "cpu"
    )
    return Gan(spec)


def _train(gan: Gan, classes: int, steps: int = 2) -> None:
    for _ in range(steps):
        gan.train_step(torch.rand(8, 3, 32, 32) * 2 - 1, torch.randint(max(classes, 1), (8,)))


def test_a_new_class_starts_from_the_trained_class_its_photos_look_like() -> None:
    # Three classes of flat grey photos, dark, mid and light: after 150 steps the critic's
    # class projection tells them apart, and new photos of each shade go to that class.
    torch.manual_seed(0)
    shades = torch.tensor([0.15, 0.5, 0.85])

    def photos(classes: torch.Tensor) -> torch.Tensor:
        shade = shades[classes][:, None, None, None] + 0.05 * torch.rand(len(classes), 3, 16, 16)
        return (shade * 255).round().to(torch.uint8)

    trained = Gan(ModelSpec(3, 16, 3, True, {"width": 8, "latent_dim": 8}, {}, "cpu"))
    for _ in range(150):
        labels = torch.randint(3, (16,))
        trained.train_step(photos(labels).float() / 127.5 - 1, labels)
    for shade in range(3):
        new = Dataset(photos(torch.full((20,), shade)).numpy(), np.zeros(20, np.int64),
                      ["new"], {}, False)  # fmt: skip
        assert nearest_classes(trained, [None], new, np.arange(20), 3) == [shade]
    # a class the trained model had keeps its own; one class trained: the mean, as before
    assert nearest_classes(trained, [1], new, np.arange(20), 3) == [1]
    assert nearest_classes(trained, [None], new, np.arange(20), 1) == [None]


def test_a_gan_converts_class_tables_between_conditional_and_unconditional() -> None:
    torch.manual_seed(0)
    trained = _gan(3)
    _train(trained, 3)
    state = trained.state_dict()
    gains = state["generator.norms.0.gain.weight"]

    plain = _gan(1, conditional=False)
    assert plain.start_from(state, [None])
    weight = plain.generator.state_dict()["norms.0.norm.weight"]
    assert torch.allclose(weight, gains.mean(0))

    again = _gan(2)
    assert again.start_from(plain.state_dict(), [None, None])
    rows = again.generator.state_dict()["norms.0.gain.weight"]
    assert torch.equal(rows[0], weight) and torch.equal(rows[1], weight)
    # the projection's spectral norm was measured on the new rows: D scores finite values
    assert torch.isfinite(
        again.discriminator(torch.zeros(4, 3, 32, 32), torch.zeros(4).long(), 4)
    ).all()


def test_freeze_d_keeps_the_first_blocks_of_d_as_they_started() -> None:
    torch.manual_seed(0)
    gan = _gan(3, freeze_d=2)
    frozen = [p.clone() for p in gan.discriminator.blocks(2).parameters()]
    trained = [p.clone() for p in gan.discriminator.parameters()]
    _train(gan, 3)
    assert len(frozen) == 4  # two convs, each a weight and a bias
    now = gan.discriminator.blocks(2).parameters()
    assert all(torch.equal(a, b) for a, b in zip(frozen, now, strict=True))
    now = gan.discriminator.parameters()
    assert not all(torch.equal(a, b) for a, b in zip(trained, now, strict=True))
    with pytest.raises(ConfigError, match=r"train\.freeze_d: the discriminator has 3 blocks"):
        _gan(3, freeze_d=3)


def test_lr_g_coarse_slows_the_generators_coarse_layers_only() -> None:
    # Adam's first step moves every weight by about its learning rate, so a tenth of lr
    # for the coarse layers (at 32 px the 4x4 stem and the 8x8 block) moves them a tenth
    # as far as the same step at one lr, and the fine layers as far.
    moved = {}
    for share in (1.0, 0.1):
        torch.manual_seed(0)
        gan = _gan(3, lr_g_coarse=share)
        before = {k: v.clone() for k, v in gan.generator.state_dict().items()}
        torch.manual_seed(1)
        _train(gan, 3, steps=1)
        after = gan.generator.state_dict()
        moved[share] = {k: (after[k] - before[k]).abs().float().mean().item() for k in before}
    for key in ("stem.0.weight", "ups.0.1.weight", "norms.1.gain.weight"):
        assert moved[0.1][key] == pytest.approx(0.1 * moved[1.0][key], rel=0.05), key
    for key in ("ups.1.1.weight", "to_image.1.weight", "norms.2.gain.weight"):
        assert moved[0.1][key] == pytest.approx(moved[1.0][key], rel=1e-4), key
    with pytest.raises(ConfigError, match=r"train\.lr_g_coarse: the vae family"):
        Vae(ModelSpec(3, 32, 3, True, {"width": 8}, {"lr_g_coarse": 0.5}, "cpu"))


SHOP = """
from pathlib import Path
from aigc_run import BaseModel, hookimpl

@hookimpl
def register_base_models():
    return [BaseModel(
        "catalogue-16", "a tiny gan on three classes", Path({path!r}), sha256={sha!r},
        family="gan", image_size=16, channels=3, classes=["Dress", "Shirt", "Shoes"],
        model={{"width": 8, "latent_dim": 8}},
    )]
"""


def test_a_plugin_offers_a_base_model_that_runs_start_from(
    base, tmp_path: Path, install_plugin
) -> None:
    from aigc_run.checkpoints import sha256_of

    scenario, base_id = base
    registry = Registry(Settings().registry_url)
    shipped = tmp_path / "shop-models" / "catalogue-16.safetensors"
    shipped.parent.mkdir()
    shipped.write_bytes(Path(registry.get_run(base_id).checkpoints[-1].path).read_bytes())
    install_plugin("shop", SHOP.format(path=str(shipped), sha=sha256_of(shipped)))

    code, output = _cli("plugins")
    assert "base models: catalogue-16 (shop)" in output
    code, output = _cli("plugins", "check", "shop")
    assert code == 0, output
    assert "base model 'catalogue-16': its checkpoint matches its sha256" in output

    data = _folder(tmp_path / "new-line", {"Skirt": 6, "Shoes": 6})
    args = ("scenario", str(scenario), "--data", str(data), "--quiet")
    code, output = _cli(*args, "--init-from", "shop:catalogue-16")
    assert code == 0, output
    assert "starting from base model shop:catalogue-16: " in output
    assert "Shoes from its Shoes" in output
    child = max(r.id for r in registry.list_runs())
    assert "started from: base model shop:catalogue-16, checkpoint step 2" in _cli(
        "runs", "show", str(child)
    )[1]

    runs = len(registry.list_runs())
    code, output = _cli(*args, "--init-from", "shop:lace-16")
    assert code != 0 and "installed base models: shop:catalogue-16" in output
    shipped.write_bytes(shipped.read_bytes()[:-1] + b"\0")
    code, output = _cli(*args, "--init-from", "catalogue-16")
    assert code != 0 and "no longer matches its recorded sha256" in output
    assert len(registry.list_runs()) == runs  # neither was recorded
    code, output = _cli("plugins", "check", "shop")
    assert code != 0 and "no longer matches its recorded sha256" in output
    shipped.unlink()  # a base model whose file is gone: the plugin is refused, saying why
    code, output = _cli(*args, "--init-from", "catalogue-16")
    assert code != 0 and "catalogue-16.safetensors does not exist" in output
