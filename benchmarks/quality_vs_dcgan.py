"""Quality per minute: the scenario's recipe against the canonical DCGAN and a class-
conditional DCGAN, trained side by side at the same time, over several seeds.

    python benchmarks/quality_vs_dcgan.py --data clothing --image-size 64 --minutes 20
    python benchmarks/quality_vs_dcgan.py --data pneumoniamnist --minutes 20 --seeds 0,1,2

Protocol. For each seed the three arms run at the same time, each in its own process with
one thread (``--threads``), for the same wall-clock budget, so a slower or busier machine
slows all of them alike and their ratio holds. Each arm records its steps, images seen,
CPU seconds and the load average it saw. The arms (the baselines are in dcgan.py):
  scenario    the scenario file's recipe at --image-size (its [sizes.N] block applies),
              through the engine's own training loop
  dcgan       pytorch/examples' DCGAN at --image-size, unconditional
  dcgan-cond  the same layers told the class (embedding in G, projection in D)
  cascade     (not run by default) the scenario's half-size recipe with the gan family's
              model.upscale = 2: G and D at half the size, an upscaler trained on the
              real images lifting the samples
  vae         (not run by default) the scenario's recipe with model.family = "vae" (its
              [model.vae] table), the engine's other family at the same size
Every arm draws --samples images whose classes follow the real data's proportions (the
unconditional DCGAN cannot be told a class; its samples are scored as they come). They
are scored against --samples real images: domain FID (the evaluation's domain network,
trained on the data), Inception FID and KID (the standard TF-Inception network) on the
first --inception-samples. DCGAN's samples are drawn two ways, with batch norm's running
statistics and with each batch's own (as the example draws them); the better by domain
FID is scored, so the baseline is at its best. Ratios ("scenario/dcgan", ...) are one
arm's figure over another's, per seed: below 1 the first wins. The record gives each
arm's and each ratio's median and spread (min, max) over the seeds.

Equal images seen, beside equal wall clock: every --milestone images each arm keeps a
snapshot; the largest milestone every arm reached in a seed is scored the same way, on
--equal-samples generated images (Inception is the slow part of a run).

Writes benchmarks/results/quality_vs_dcgan-<data>-<size>.json (``--results`` elsewhere) after
every seed, so a run stopped midway keeps the seeds it finished. Seeds measured in separate
invocations (the same data, size, budget and arms) join into one record with
``--merge A.json B.json ... --name NAME``: each seed keeps its own recipe and commit.
FID on n images is biased upward by about c/n for every arm, which pulls ratios towards 1;
KID is unbiased. Compare ratios, not figures with published tables (50,000 images).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # run as a script or loaded by a test

import dcgan  # noqa: E402
from records import RESULTS, commit, write_record  # noqa: E402

DATASETS = {  # --data name -> (scenario, path under the data folder)
    "clothing": ("ecommerce", "clothing"),
    "pneumoniamnist": ("medical", "pneumoniamnist/pneumoniamnist.npz"),
}
ARMS = ("scenario", "dcgan", "dcgan-cond", "cascade", "vae")
DEFAULT_ARMS = "scenario,dcgan,dcgan-cond"
# the ratios reported: below 1 the first arm wins
PAIRS = (
    ("scenario", "dcgan"),
    ("scenario", "dcgan-cond"),
    ("cascade", "scenario"),
    ("cascade", "dcgan"),
    ("cascade", "dcgan-cond"),
    ("vae", "dcgan"),
    ("scenario", "vae"),
)
SMALL_INCEPTION = 1000  # also scored on the first this many Inception features (see score)


# -- scoring ----------------------------------------------------------------------------


def make_scorer(
    images: np.ndarray,
    labels: np.ndarray,
    classes: int,
    real: torch.Tensor,
    cache: Path,
    inception_samples: int,
) -> Callable[..., dict[str, float]]:
    """``score(fake, inception=True)``: FIDs of ``fake`` against ``real`` (uint8 N x C x H x W
    CPU tensors), lower is better, in the evaluation's feature spaces (docs/evaluation.md):
    the domain network trained on this data set (``fid_domain``, on every sample) and,
    unless ``inception_samples`` is 0 or ``inception`` False, the standard TF-Inception
    network (``fid_inception`` and ``kid_inception``, on the first ``inception_samples``
    of each set: it runs at about 5 images per second on a 2-core CPU). Every arm is
    scored by the same networks against the same real features, computed once."""
    from aigc_run.evaluation.features import domain_features
    from aigc_run.evaluation.inception import InceptionFeatures
    from aigc_run.evaluation.metrics import fid, kid

    domain = domain_features(images, labels, classes, cache)
    real_domain = domain(real)
    standard = InceptionFeatures() if inception_samples else None
    real_standard = None
    if standard is not None:  # minutes on a CPU: cached by the exact real pixels
        digest = hashlib.sha256(real[:inception_samples].numpy().tobytes()).hexdigest()[:20]
        path = cache / "features" / f"inception-{digest}.safetensors"
        if path.is_file():
            real_standard = load_file(path)["features"]
        else:
            real_standard = standard(real[:inception_samples])
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"features": real_standard.contiguous()}, path)

    def score(fake: torch.Tensor, inception: bool = True) -> dict[str, float]:
        scores = {"fid_domain": fid(real_domain, domain(fake))}
        if standard is not None and inception:
            fake_standard = standard(fake[:inception_samples])
            scores["fid_inception"] = fid(real_standard, fake_standard)
            # FID's bias falls as 1/n and lifts every arm's figure by about the same
            # amount, which pulls their ratio towards 1: the figure on the first 1000
            # beside the one on all of them shows how far.
            if inception_samples > SMALL_INCEPTION:
                head = slice(0, SMALL_INCEPTION)
                scores[f"fid_inception_{SMALL_INCEPTION}"] = fid(
                    real_standard[head], fake_standard[head]
                )
            # KID has no such bias: an unbiased cross-check of the ratio in the same space.
            scores["kid_inception"] = kid(real_standard, fake_standard, seed=0)[0]
        return scores

    return score


# -- the scenario's recipe, through the engine's own training loop ------------------------


def train_scenario(
    scenario: Any,
    dataset: Any,
    plugins: Any,
    minutes: float,
    device: str,
    folder: Path,
    every: int = 0,
    before_training: Callable[[Any], None] | None = None,
    steps: int | None = None,
) -> tuple[Any, int, float]:
    """Train the scenario's model with ``aigc_run.run.training.train`` for ``minutes`` (or
    ``steps``, when given and reached first), writing a checkpoint every ``every`` steps
    (0: only at the end) under ``folder``; ``before_training(model)`` may change the new
    model first (few_shot.py loads a base). Returns the model, the steps done and the
    seconds spent."""
    from aigc_run.contract.components import RunInfo
    from aigc_run.contract.kinds import MODEL_FAMILIES
    from aigc_run.registry import Registry
    from aigc_run.run.setup import build_model
    from aigc_run.run.training import train

    scenario.train.steps = steps or 10**9  # else the budget stops it
    scenario.train.max_minutes = minutes
    scenario.train.checkpoint_every = every or 10**9
    scenario.train.log_every = 500
    family = plugins.contributions(MODEL_FAMILIES)[scenario.model.family]
    registry = Registry(f"sqlite:///{folder}/benchmark.db")
    config = scenario.model_dump(mode="json")
    run_id = registry.create_run(scenario.name, config, {}, device, str(folder))
    run = RunInfo(run_id, scenario.name, config, folder, device)
    model = build_model(family, scenario, dataset, device)
    if before_training is not None:
        before_training(model)
    started = time.monotonic()
    last = train(model, dataset.images, dataset.labels, scenario, run, plugins, registry)
    seconds = time.monotonic() - started
    registry.close()
    return model, last.step, seconds


def scenario_samples(model: Any, labels: np.ndarray, count: int, seed: int) -> torch.Tensor:
    """``count`` samples whose classes follow the training set's class frequencies."""
    return generate(model, wanted_classes(labels, count, seed), seed)


def wanted_classes(labels: np.ndarray, count: int, seed: int) -> torch.Tensor:
    """``count`` classes drawn in the proportions of ``labels``: the same for every arm."""
    return torch.from_numpy(np.random.default_rng(seed).choice(labels, count))


def generate(model: Any, classes: torch.Tensor, seed: int) -> torch.Tensor:
    z = torch.randn(len(classes), model.latent_dim, generator=torch.Generator().manual_seed(seed))
    pairs = zip(z.split(500), classes.split(500), strict=True)
    return dcgan.to_uint8(torch.cat([model.generate(zs, ys).cpu() for zs, ys in pairs]))


# -- one arm, in its own process ----------------------------------------------------------


class LoadWatch:
    """The 1-minute load average, read every ``every`` seconds while an arm trains."""

    def __init__(self, every: float = 15.0) -> None:
        self.readings = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(every,), daemon=True)
        self._thread.start()

    def _watch(self, every: float) -> None:
        while not self._stop.wait(every):
            self.readings.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self.readings.append(os.getloadavg()[0])
        return {"mean": statistics.fmean(self.readings), "max": max(self.readings)}


def run_arm(arm: str, seed: int, args: argparse.Namespace) -> None:
    """Train one arm for the budget; write its samples and figures under ``args.work``."""
    torch.set_num_threads(args.threads)
    scenario, dataset, plugins = load(args.data, args.data_dir, args.cache, args.set, args.size)
    classes = wanted_classes(dataset.labels, args.samples, seed)
    folder = args.work / f"{arm}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    watch, cpu = LoadWatch(), time.process_time()
    snapshots: dict[int, str] = {}  # images seen -> snapshot
    if arm in ("scenario", "vae"):
        if arm == "vae":  # the scenario's recipe, its [model.vae] table: the other family
            overrides = [*args.set, "model.family='vae'"]
            scenario, dataset, plugins = load(
                args.data, args.data_dir, args.cache, overrides, args.size
            )
        scenario.train.seed = seed
        batch = scenario.train.batch_size
        every = args.milestone // batch if args.milestone else 0
        model, steps, seconds = train_scenario(
            scenario, dataset, plugins, args.minutes, args.device, folder, every
        )
        for path in sorted((folder / "checkpoints").glob("step-*.safetensors")):
            step = int(path.stem.split("-")[1])
            if every and step % every == 0:
                snapshots[step * batch] = str(path)
        final = {"samples": generate(model, classes, seed)}
        recipe = {"model": scenario.model.model_dump(), "train": scenario.train.model_dump()}
    elif arm == "cascade":  # the gan family's model.upscale = 2, half-size settings
        half, _, _ = load(args.data, args.data_dir, args.cache, args.set, args.size // 2)
        overrides = [*args.set, "model.upscale=2", f"model.width={half.model.width}"]
        scenario, dataset, plugins = load(
            args.data, args.data_dir, args.cache, overrides, args.size
        )
        scenario.train.seed = seed
        batch = scenario.train.batch_size
        model, steps, seconds = train_scenario(
            scenario, dataset, plugins, args.minutes, args.device, folder
        )
        final = {"samples": generate(model, classes, seed)}
        recipe = {"model": scenario.model.model_dump(), "train": scenario.train.model_dump()}
    else:
        batch, conditional = dcgan.BATCH, arm == "dcgan-cond"

        def snapshot(step: int, generator: dcgan.Generator) -> None:
            path = folder / f"g-{step:07d}.safetensors"
            save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, path)
            snapshots[step * batch] = str(path)

        generator, steps, seconds = dcgan.train(
            dataset.images,
            dataset.labels,
            dataset.num_classes if conditional else 0,
            args.minutes,
            seed,
            args.dcgan_width,
            args.device,
            args.milestone // batch if args.milestone else 0,
            snapshot,
        )
        final = dcgan_modes(generator, classes, seed, args.device)
        recipe = {"width": args.dcgan_width, "batch": batch, "conditional": conditional}
    result = {
        "arm": arm,
        "seed": seed,
        "recipe": recipe,
        "steps": steps,
        "batch": batch,
        "images_seen": steps * batch,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average": watch.stop(),
        "threads": torch.get_num_threads(),
        "snapshots": snapshots,
    }
    for mode, images in final.items():
        np.save(folder / f"{mode}.npy", images.numpy())
    (folder / "arm.json").write_text(json.dumps(result, indent=2))


def dcgan_modes(
    generator: dcgan.Generator, classes: torch.Tensor, seed: int, device: str
) -> dict[str, torch.Tensor]:
    """DCGAN's samples with running statistics and with each batch's own."""
    return {
        "running_stats": dcgan.samples(generator, classes, seed, device, batch_stats=False),
        "batch_stats": dcgan.samples(generator, classes, seed, device, batch_stats=True),
    }


def snapshot_samples(
    arm: str, path: str, seed: int, classes: torch.Tensor, context: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """Samples from an arm's snapshot (a scenario checkpoint or a DCGAN generator)."""
    from aigc_run import checkpoints
    from aigc_run.contract.kinds import MODEL_FAMILIES
    from aigc_run.run.setup import build_model

    scenario, dataset, plugins, device = (
        context[k] for k in ("scenario", "dataset", "plugins", "device")
    )
    if arm in ("scenario", "vae"):
        scenario = scenario.model_copy(deep=True)
        scenario.train.seed = seed
        scenario.model.family = "gan" if arm == "scenario" else "vae"
        family = plugins.contributions(MODEL_FAMILIES)[scenario.model.family]
        model = build_model(family, scenario, dataset, device)
        checkpoints.restore(model, Path(path))
        images = torch.from_numpy(dataset.images)
        model.prepare_sampling(images, torch.from_numpy(dataset.labels))
        return {"samples": generate(model, classes, seed)}
    conditional = arm == "dcgan-cond"
    size, channels = dataset.images.shape[-1], dataset.images.shape[1]
    width = context["dcgan_width"]
    generator = dcgan.Generator(size, width, channels, dataset.num_classes if conditional else 0)
    generator.load_state_dict(load_file(path))
    return dcgan_modes(generator.to(device), classes, seed, device)


# -- the parent: arms side by side, scoring, the record -----------------------------------


def run_seed(seed: int, args: argparse.Namespace, argv: list[str]) -> dict[str, dict[str, Any]]:
    """Start every arm of ``seed`` at once, each with ``args.threads`` threads; wait."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    processes = {
        arm: subprocess.Popen(
            [
                sys.executable,
                __file__,
                *argv,
                "--arm",
                arm,
                "--seed-of-arm",
                str(seed),
                "--work",
                str(args.work),
            ],
            env=env,
        )
        for arm in args.arms
    }
    failed = [arm for arm, process in processes.items() if process.wait() != 0]
    if failed:
        raise SystemExit(f"arm(s) {', '.join(failed)} of seed {seed} failed (see above)")
    return {
        arm: json.loads((args.work / f"{arm}-{seed}" / "arm.json").read_text()) for arm in args.arms
    }


def score_arm(
    modes: dict[str, torch.Tensor], score: Callable[..., dict[str, float]]
) -> dict[str, Any]:
    """Score an arm's samples: the better sampling mode by domain FID, in every space."""
    by_domain = {mode: score(images, inception=False) for mode, images in modes.items()}
    best = min(by_domain, key=lambda mode: by_domain[mode]["fid_domain"])
    scores = score(modes[best])
    if len(modes) > 1:
        scores["sampling"] = best
        scores["domain_by_sampling"] = {m: s["fid_domain"] for m, s in by_domain.items()}
    return scores


def ratios(scores: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """ "arm/baseline": arm's figure over the baseline's, for every figure both have."""
    out: dict[str, dict[str, float]] = {}
    for arm, baseline in PAIRS:
        if arm in scores and baseline in scores:
            mine, theirs = scores[arm], scores[baseline]
            out[f"{arm}/{baseline}"] = {
                key: mine[key] / theirs[key] if theirs[key] else math.nan
                for key in mine
                if key.startswith(("fid", "kid")) and isinstance(theirs.get(key), float)
            }
    return out


def sheet(images: torch.Tensor, path: Path) -> None:
    """An 8-column PNG grid of uint8 N x C x H x W images, to look at beside the figures."""
    from PIL import Image

    n, c, h, w = images.shape
    rows = -(-n // 8)
    grid = torch.full((c, rows * (h + 2), 8 * (w + 2)), 255, dtype=torch.uint8)
    for i, image in enumerate(images):
        top, left = (i // 8) * (h + 2), (i % 8) * (w + 2)
        grid[:, top : top + h, left : left + w] = image
    array = grid.permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[:, :, 0] if c == 1 else array).save(path)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(per_seed: list[dict[str, Any]], point: str) -> dict[str, Any]:
    """Median and spread over the seeds of each arm's figures and each ratio at ``point``
    ("budget": equal wall clock, or "equal_images")."""
    seeds = [s[point] for s in per_seed if s.get(point)]
    summary: dict[str, Any] = {}
    for group in ("scores", "ratios"):
        names = {name for s in seeds for name in s[group]}
        summary[group] = {}
        for name in sorted(names):
            keys = {
                k for s in seeds for k, v in s[group].get(name, {}).items() if isinstance(v, float)
            }
            summary[group][name] = {
                key: spread([s[group][name][key] for s in seeds if key in s[group].get(name, {})])
                for key in sorted(keys)
            }
    return summary


def load(
    data: str, data_dir: Path, cache: Path, overrides: list[str], image_size: int = 32
) -> tuple[Any, Any, Any]:
    """The scenario for ``data`` at ``image_size`` (its [sizes.N] block, then ``--set``
    overrides) and its images, loaded as a run would load them."""
    from aigc_run.data import load_dataset
    from aigc_run.plugins import load_plugins
    from aigc_run.scenario import read_toml, resolve

    name, relative = DATASETS[data]
    path = data_dir / relative
    if not path.exists():
        raise SystemExit(f"{path} does not exist: give --data-dir (or set AIGC_TEST_DATA)")
    plugins = load_plugins(set())
    content = read_toml(REPO / "scenarios" / f"{name}.toml")
    overrides = [f"data.image_size={image_size}", *overrides]
    scenario = resolve(content, overrides, str(path), environ={})
    dataset = load_dataset(plugins, scenario, cache, say=lambda text: print(text, flush=True))
    # Off the read-only memory map, once: torch warns about tensors over read-only arrays.
    dataset = dataclasses.replace(dataset, images=np.array(dataset.images))
    return scenario, dataset, plugins


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=sorted(DATASETS), default="clothing")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data")),
        help="the folder holding clothing/ and pneumoniamnist/ (default: $AIGC_TEST_DATA)",
    )
    p.add_argument("--image-size", dest="size", type=int, default=32)
    p.add_argument("--minutes", type=float, default=20.0, help="training budget of each arm")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated; arms of a seed run at once")
    p.add_argument("--arms", default=DEFAULT_ARMS, help=f"comma-separated, of {', '.join(ARMS)}")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each arm")
    p.add_argument("--samples", type=int, default=2000, help="generated (and real) images scored")
    p.add_argument(
        "--inception-samples",
        type=int,
        default=2000,
        help="images per set for Inception FID and KID (0 skips them; about 6 images/s on a "
        "2-core CPU; needs aigc-run[inception])",
    )
    p.add_argument(
        "--milestone",
        type=int,
        default=32768,
        help="images seen between snapshots for the equal-images comparison (0: off)",
    )
    p.add_argument(
        "--equal-samples",
        type=int,
        default=500,
        help="generated images scored at equal images seen (against all the real ones)",
    )
    p.add_argument("--dcgan-width", type=int, default=64, help="ngf = ndf of the example")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "aigc-bench")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the record goes")
    p.add_argument("--sheets", type=Path, help="write each arm's first 64 samples here (PNG)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change the scenario's recipe, as aigc-run's --set (to compare candidates)",
    )
    p.add_argument("--merge", type=Path, nargs="+", help="records whose seeds join in one")
    p.add_argument("--name", help="the merged record's name (with --merge)")
    p.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm
    p.add_argument("--seed-of-arm", type=int, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    return p


MUST_AGREE = ("data", "image_size", "images", "samples", "inception_samples", "device")


def merge(paths: list[Path], name: str, results: Path, argv: list[str]) -> Path:
    """One record of the seeds of several records of the same protocol."""
    records = [json.loads(p.read_text()) for p in paths]
    first = records[0]

    def arms(record: dict[str, Any]) -> list[list[str]]:
        return [sorted(seed["arms"]) for seed in record["figures"]["seeds"]]

    for path, record in zip(paths, records, strict=True):
        differ = [k for k in (*MUST_AGREE, "budget") if record.get(k) != first.get(k)]
        differ += ["arms"] * any(a != arms(first)[0] for a in arms(record))
        if differ:
            raise SystemExit(f"{path} differs from {paths[0]} in {', '.join(differ)}")
    per_seed = [
        {**seed, **{k: record[k] for k in ("commit", "command", "machine")}}
        for record in records
        for seed in record["figures"]["seeds"]
    ]
    seeds = [s["seed"] for s in per_seed]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"seed(s) measured twice: {sorted(seeds)}")
    per_seed.sort(key=lambda s: s["seed"])
    return write_record(
        "quality_vs_dcgan",
        {
            "budget": summarise(per_seed, "budget"),
            "equal_images": summarise(per_seed, "equal_images"),
            "seeds": per_seed,
        },
        seeds=[s["seed"] for s in per_seed],
        budget=first["budget"],
        threads=first["threads"],
        argv=argv,
        commit_measured=",".join(dict.fromkeys(r["commit"] for r in records)),
        name=name,
        results=results,
        notes=[f"merged from {', '.join(p.name for p in paths)}: each seed names its command"],
        **{k: first[k] for k in (*MUST_AGREE, "classes") if k in first},
        scenario=[r.get("scenario") for r in records],  # as each invocation named it
        machine=" + ".join(dict.fromkeys(r["machine"] for r in records)),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.merge:
        path = merge(args.merge, args.name or "quality_vs_dcgan-merged", args.results, argv)
        print(f"record: {path}")
        return dict(json.loads(path.read_text()))
    if args.arm:
        run_arm(args.arm, args.seed_of_arm, args)
        return {}
    args.arms = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(args.arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}: choose from {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    measured_at = commit()  # the arms run this code, whatever the checkout does meanwhile

    # Load (and cache) the data once before the arms start, so they all begin training.
    scenario, dataset, plugins = load(args.data, args.data_dir, args.cache, args.set, args.size)
    print(f"{len(dataset.images)} images {tuple(dataset.images.shape[1:])}", flush=True)
    real_index = np.random.default_rng(0).choice(
        len(dataset.images), min(args.samples, len(dataset.images)), replace=False
    )
    real = torch.from_numpy(dataset.images[real_index])  # shuffled: a prefix is a fair subset
    inception_samples = min(args.inception_samples, len(real))
    score = make_scorer(
        dataset.images, dataset.labels, dataset.num_classes, real, args.cache, inception_samples
    )
    context = {
        "scenario": scenario,
        "dataset": dataset,
        "plugins": plugins,
        "device": args.device,
        "dcgan_width": args.dcgan_width,
    }

    per_seed = []
    with tempfile.TemporaryDirectory() as work:
        args.work = Path(work)
        for seed in seeds:
            arms = run_seed(seed, args, argv)
            for arm, figures in arms.items():
                print(
                    f"seed {seed} {arm}: {figures['steps']} steps, {figures['cpu_seconds']} "
                    f"CPU s, load {figures['load_average']['mean']:.1f}",
                    flush=True,
                )
            budget = {}
            for arm in arms:
                modes = {
                    p.stem: torch.from_numpy(np.load(p))
                    for p in sorted((args.work / f"{arm}-{seed}").glob("*.npy"))
                }
                budget[arm] = score_arm(modes, score)
                if args.sheets:  # the first 64 samples, in the mode that was scored
                    shown = modes[budget[arm].get("sampling", next(iter(modes)))]
                    sheet(shown[:64], args.sheets / f"{args.data}-{args.size}-{arm}-{seed}.png")
            with_snapshots = {arm: a for arm, a in arms.items() if arm != "cascade"}
            reached = (
                set.intersection(*(set(map(int, a["snapshots"])) for a in with_snapshots.values()))
                if with_snapshots
                else set()
            )
            equal = None
            if reached:
                images = max(reached)
                classes = wanted_classes(dataset.labels, args.equal_samples, seed)
                equal = {
                    "images_seen": images,
                    "samples": args.equal_samples,
                    "scores": {
                        arm: score_arm(
                            snapshot_samples(
                                arm, a["snapshots"][str(images)], seed, classes, context
                            ),
                            score,
                        )
                        for arm, a in with_snapshots.items()
                    },
                }
                equal["ratios"] = ratios(equal["scores"])
            per_seed.append(
                {
                    "seed": seed,
                    "arms": {
                        arm: {k: v for k, v in a.items() if k != "snapshots"}
                        for arm, a in arms.items()
                    },
                    "budget": {"scores": budget, "ratios": ratios(budget)},
                    "equal_images": equal,
                }
            )
            print(json.dumps(per_seed[-1]["budget"]["ratios"], indent=2), flush=True)
            # Written after every seed: a long run stopped midway keeps the seeds it finished.
            path = write_record(
                "quality_vs_dcgan",
                {
                    "budget": summarise(per_seed, "budget"),
                    "equal_images": summarise(per_seed, "equal_images"),
                    "seeds": per_seed,
                },
                seeds=[s["seed"] for s in per_seed],
                budget={"minutes_per_arm": args.minutes, "arms_at_once": len(args.arms)},
                threads=args.threads,
                argv=argv,
                commit_measured=measured_at,
                name=f"quality_vs_dcgan-{args.data}-{args.size}",
                results=args.results,
                data=args.data,
                image_size=args.size,
                images=len(dataset.images),
                classes=dataset.num_classes,
                samples=args.samples,
                inception_samples=inception_samples,
                device=args.device,
                scenario={"name": scenario.name, "overrides": args.set},
            )
            print(f"record ({len(per_seed)} of {len(seeds)} seeds): {path}", flush=True)

    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
