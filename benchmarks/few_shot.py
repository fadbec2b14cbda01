"""A new product line from a few photos: fine-tuning from a base model against training
from scratch, with and without adaptive augmentation, side by side.

    python benchmarks/few_shot.py --data clothing --held-out Skirt --minutes 5 --seeds 0,1,2
    python benchmarks/few_shot.py --data pneumoniamnist --held-out pneumonia --minutes 5

Protocol. A base model is trained once, on every class but the held-out one, for
--base-minutes with all threads (not counted in the budget; cached under --cache). Then,
for each number of photos N (--shots) and each seed, N photos of the held-out class are
drawn and the rest of that class is the test set. (With --base-sees M the base also
trains on M photos of the held-out class, under its name, a fixed draw that no seed draws
or tests on: a base that already knows the new class, to tell what the base's knowledge
is worth.) The arms train at the same time, each in its own process with one thread
(--threads), for --minutes each:
  scratch        the scenario's recipe from random weights
  finetune       the same recipe started from the base model (train.init_from, so the
                 scenario's [fine_tune] settings apply, but the budget, not its
                 train.steps, ends the arm), with train.freeze_d = --freeze-d
  scratch-ada    the scratch arm with adaptive augmentation (model.augment_p = "ada"; the
  finetune-ada   policies of --ada-policies when the recipe has none)
A fine-tuning arm starts as ``aigc-run --init-from`` does (run/transfer.py). Variants of an
arm: name it ARM/LABEL (finetune-ada/slow) and give it settings with --arm-set
finetune-ada/slow:train.lr_g_coarse=0.1 (or finetune-ada/nearest:train.new_class_from=nearest);
an arm given train.steps stops at that step, or at the budget if that comes first.
An arm named in --with-base-photos trains on the base model's photos too, the new class as
one more class beside theirs (drawn as train.balance says), as a shop would point --data
at its whole catalogue with the new line added; its samples are of the new class.
Each arm draws --samples images, scored against the test photos: KID (unbiased at small
N) and FID in the domain space (the evaluation's network, trained on the whole data set)
and the memorisation rate (evaluation/memorisation.py: the share of samples closer to one
of the N photos than unseen photos of the class ever are). Ratios ("finetune/scratch", ...)
are per seed, below 1 the first arm wins; the record gives their median and spread.
Two yardsticks are scored the same way beside the arms, with no training ("references"):
  photos         --samples draws from the N photos themselves (with repeats): what handing
                 out the photos would score, and what a model that only learnt them nears
  unseen         --samples other photos of the class (at most half the test set), against
                 the rest of it: the floor, what a model that drew the class's whole
                 variety would near
--arms "" scores only these.

Writes benchmarks/results/few_shot-<data>-<held out>.json after every seed (``--results``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # run as a script or loaded by a test

import quality_vs_dcgan as quality  # noqa: E402
from records import RESULTS, commit, write_record  # noqa: E402

SEEN_BY_BASE = 2**31 - 1  # the seed of --base-sees's draw, apart from the runs' seeds
ARMS = ("scratch", "finetune", "scratch-ada", "finetune-ada")
PAIRS = (
    ("finetune-ada", "scratch-ada"),
    ("scratch-ada", "scratch"),
    ("finetune-ada", "finetune"),
)  # and every arm against scratch


def kind(arm: str) -> str:
    """One of ARMS: what ``arm`` (e.g. finetune-ada/slow) trains."""
    name = arm.split("/")[0]
    if name not in ARMS:
        raise SystemExit(f"arm {arm!r}: give one of {', '.join(ARMS)}, optionally followed by "
                         "/LABEL")  # fmt: skip
    return name


def split(dataset: Any, held_out: str) -> tuple[Any, np.ndarray]:
    """The base data (every class but ``held_out``, relabelled) and the held-out class's
    image indices."""
    names = [n.casefold() for n in dataset.class_names]
    if held_out.casefold() not in names:
        raise SystemExit(f"--held-out {held_out!r}: the classes are {dataset.class_names}")
    held = names.index(held_out.casefold())
    keep = dataset.labels != held
    labels = dataset.labels[keep]
    base = dataclasses.replace(
        dataset,
        images=dataset.images[keep],
        labels=labels - (labels > held),
        class_names=[n for i, n in enumerate(dataset.class_names) if i != held],
    )
    return base, np.flatnonzero(~keep)


def new_line(dataset: Any, index: np.ndarray, name: str, beside: Any = None) -> Any:
    """The photos ``index`` as a data set of one class, ``name``; with ``beside`` (the base
    data) as its last class, after the base's."""
    if beside is None:
        return dataclasses.replace(
            dataset,
            images=dataset.images[index],
            labels=np.zeros(len(index), np.int64),
            class_names=[name],
        )
    return dataclasses.replace(
        dataset,
        images=np.concatenate([beside.images, dataset.images[index]]),
        labels=np.concatenate([beside.labels, np.full(len(index), beside.num_classes)]),
        class_names=[*beside.class_names, name],
    )


def train(
    scenario: Any,
    dataset: Any,
    plugins: Any,
    minutes: float,
    folder: Path,
    base: Path | None = None,
    base_classes: list[str] | None = None,
    steps: int | None = None,
) -> tuple[Any, int]:
    """Train through the engine's loop for ``minutes``, or ``steps`` when given and reached
    first (from ``base``'s weights when given, started as ``--init-from`` starts a run);
    returns the model and the steps done. The final checkpoint is ``folder/checkpoints``."""
    from aigc_run.checkpoints import sha256_of
    from aigc_run.contract.kinds import MODEL_FAMILIES
    from aigc_run.run import transfer

    def start_from_base(model: Any) -> None:
        if base is None:
            return
        parent = transfer.Parent.of_file(
            str(base), base, sha256_of(base), scenario.model.family,
            scenario.model.for_family(),
            {"channels": dataset.images.shape[1], "image_size": dataset.images.shape[-1],
             "classes": base_classes or []},
        )  # fmt: skip
        family = plugins.contributions(MODEL_FAMILIES)[scenario.model.family]
        trained = transfer.check_fits(parent, scenario, family)
        transfer.start(model, trained, dataset, print, None, scenario.train.new_class_from)

    model, steps, _ = quality.train_scenario(
        scenario, dataset, plugins, minutes, "cpu", folder, 0, start_from_base, steps
    )
    return model, steps


def base_model(args: argparse.Namespace) -> tuple[Path, list[str], int]:
    """The base model's checkpoint (trained now, or found in the cache), its classes and
    steps."""
    scenario, dataset, plugins = quality.load(
        args.data, args.data_dir, args.cache, args.set, args.size
    )
    base, _ = split(dataset, args.held_out)
    key = f"few-shot-base-{args.data}-{args.size}-{args.held_out}-{args.base_minutes:g}min"
    if args.base_sees:  # the held-out class too, some of its photos, under its own name
        base = new_line(dataset, seen_by_base(dataset, args.held_out, args.base_sees),
                        args.held_out, beside=base)  # fmt: skip
        key += f"-sees-{args.base_sees}"
    folder = args.cache / key
    found = sorted((folder / "checkpoints").glob("step-*.safetensors"))
    if found:
        return found[-1], base.class_names, int(found[-1].stem.split("-")[1])
    folder.mkdir(parents=True, exist_ok=True)
    print(f"training the base model on {len(base.images)} images for {args.base_minutes} min")
    _, steps = train(scenario, base, plugins, args.base_minutes, folder)
    (path,) = sorted((folder / "checkpoints").glob("step-*.safetensors"))
    return path, base.class_names, steps


def run_arm(arm: str, shots: int, seed: int, args: argparse.Namespace) -> None:
    """One arm, in its own process: train, draw the samples, save them and its figures."""
    torch.set_num_threads(args.threads)
    overrides = list(args.set)
    finetune = kind(arm).startswith("finetune")
    if finetune:  # set as --init-from sets it: the scenario's [fine_tune] block applies
        overrides += [f"train.freeze_d={args.freeze_d}", f"train.init_from={args.base_checkpoint}"]
    if kind(arm).endswith("-ada"):
        overrides.append('model.augment_p="ada"')
    elif finetune:  # a fixed 1 over no policies: the arm without the fine-tuning default, ADA
        overrides.append("model.augment_p=1.0")
    own = [s.split(":", 1)[1] for s in args.arm_set if s.split(":", 1)[0] == arm]
    overrides += own
    scenario, dataset, plugins = quality.load(
        args.data, args.data_dir, args.cache, overrides, args.size
    )
    if kind(arm).endswith("-ada") and not scenario.model.model_extra.get("augment"):
        scenario.model.augment = args.ada_policies.split(",")  # type: ignore[attr-defined]
    scenario.train.seed = seed
    train_index, _ = photos(dataset, args.held_out, shots, seed, args.base_sees)
    beside = split(dataset, args.held_out)[0] if arm in args.with_base_photos.split(",") else None
    line = new_line(dataset, train_index, args.held_out, beside)
    folder = args.work / f"{arm.replace('/', '_')}-{shots}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    # An arm given train.steps by --arm-set stops there, or at the budget if that comes first
    cap = scenario.train.steps if any(s.startswith("train.steps=") for s in own) else None
    watch, cpu, started = quality.LoadWatch(), time.process_time(), time.monotonic()
    if finetune:
        base, classes = Path(args.base_checkpoint), args.base_classes.split("\n")
        model, steps = train(scenario, line, plugins, args.minutes, folder, base, classes, cap)
    else:
        model, steps = train(scenario, line, plugins, args.minutes, folder, steps=cap)
    seconds = time.monotonic() - started
    new_class = line.num_classes - 1
    samples = quality.generate(model, torch.full((args.samples,), new_class), seed)
    np.save(folder / "samples.npy", samples.numpy())
    figures = {
        "arm": arm,
        "steps": steps,
        "trained_on": {"photos": len(line.images), "classes": line.class_names},
        "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average": watch.stop(),
        "recipe": {"model": scenario.model.model_dump(), "train": scenario.train.model_dump()},
    }
    (folder / "arm.json").write_text(json.dumps(figures, indent=2))


def seen_by_base(dataset: Any, held_out: str, count: int) -> np.ndarray:
    """The ``count`` photos of the held-out class that --base-sees gives the base model: a
    fixed draw, the same for every seed."""
    _, index = split(dataset, held_out)
    if count >= len(index) // 2:
        raise SystemExit(f"--base-sees {count}: give less than half of the class's "
                         f"{len(index)} photos, the rest are drawn from and tested on")  # fmt: skip
    return np.sort(np.random.default_rng(SEEN_BY_BASE).permutation(index)[:count])


def photos(
    dataset: Any, held_out: str, shots: int, seed: int, base_sees: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(training photos, test photos) of the held-out class for ``shots`` and ``seed``, from
    its photos that the base model did not see."""
    _, index = split(dataset, held_out)
    index = np.setdiff1d(index, seen_by_base(dataset, held_out, base_sees))
    if shots >= len(index):
        raise SystemExit(f"--shots {shots}: the class has only {len(index)} photos")
    order = np.random.default_rng(seed).permutation(index)
    return np.sort(order[:shots]), np.sort(order[shots:])


def score(fake: torch.Tensor, seen: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """KID and FID of the samples ``fake`` against the test photos ``real``, and the
    memorisation rate against the training photos ``seen`` (all in the domain space)."""
    from aigc_run.evaluation.memorisation import check
    from aigc_run.evaluation.metrics import fid, kid

    remembered = check(seen, real, fake)
    return {
        "kid_domain": kid(real, fake, seed=0)[0],
        "fid_domain": fid(real, fake),
        "memorisation": remembered.rate,
        "memorisation_floor": remembered.floor,
    }


def references(
    seen: torch.Tensor, real: torch.Tensor, samples: int, seed: int
) -> dict[str, dict[str, float]]:
    """The yardsticks (module docstring), scored as ``score`` scores an arm's samples, from
    the training and test photos' domain features."""
    draws = np.random.default_rng(seed)
    photos = seen[torch.from_numpy(draws.integers(0, len(seen), samples))]
    order = torch.from_numpy(draws.permutation(len(real)))
    count = min(samples, len(real) // 2)  # a small class: half its test photos against half
    return {
        "photos": score(photos, seen, real),
        "unseen": score(real[order[:count]], seen, real[order[count:]]),
    }


def ratios(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``"a/b"``: arm a's KID and FID over arm b's, for every arm against scratch and PAIRS."""
    pairs = [(a, "scratch") for a in scores if a != "scratch"] + list(PAIRS)
    return {
        f"{a}/{b}": {
            key: scores[a][key] / scores[b][key]
            for key in ("kid_domain", "fid_domain")
            if scores[b][key] > 0
        }
        for a, b in dict.fromkeys(pairs)
        if a in scores and b in scores
    }


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and spread over the seeds, per number of photos, of each figure and ratio."""
    summary: dict[str, Any] = {}
    for shots in sorted({s["shots"] for s in per_seed}):
        runs = [s for s in per_seed if s["shots"] == shots]
        summary[str(shots)] = {}
        for group in ("scores", "ratios", "references"):
            summary[str(shots)][group] = {
                name: {
                    key: quality.spread([r[group][name][key] for r in runs])
                    for key in runs[0][group][name]
                }
                for name in runs[0][group]
            }
    return summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=sorted(quality.DATASETS), default="clothing")
    p.add_argument("--data-dir", type=Path, default=os.environ.get("AIGC_TEST_DATA"))
    p.add_argument("--held-out", default="Skirt", help="the class the base model never sees")
    p.add_argument("--image-size", dest="size", type=int, default=32)
    p.add_argument("--shots", default="25,50,100", help="photos of the new class, per run")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget of each arm")
    p.add_argument("--base-minutes", type=float, default=10.0)
    p.add_argument("--base-sees", type=int, default=0, metavar="N",
                   help="the base also trains on N photos of the held-out class")  # fmt: skip
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--freeze-d", type=int, default=0, help="train.freeze_d of finetune arms")
    p.add_argument("--arm-set", action="append", default=[], metavar="ARM:SECTION.KEY=VALUE",
                   help="a setting of one arm only")  # fmt: skip
    p.add_argument("--ada-policies", default="color,translation")
    p.add_argument("--with-base-photos", default="", metavar="ARM,...",
                   help="arms that train on the base's photos too")  # fmt: skip
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--cache", type=Path, default=Path("/tmp/aigc-bench"))
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    # internal: one arm, started by the parent
    for name in ("--arm", "--shots-of-arm", "--seed-of-arm", "--work", "--base-checkpoint"):
        p.add_argument(name, help=argparse.SUPPRESS)
    p.add_argument("--base-classes", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.data_dir is None:
        raise SystemExit("give --data-dir (or set AIGC_TEST_DATA)")
    if args.arm:
        args.work = Path(args.work)
        run_arm(args.arm, int(args.shots_of_arm), int(args.seed_of_arm), args)
        return {}
    arms = [a for a in args.arms.split(",") if a]
    for arm in arms:
        kind(arm)
    beside = [a for a in args.with_base_photos.split(",") if a]
    named = {s.split(":", 1)[0] for s in args.arm_set} | set(beside)
    if stray := sorted(named - set(arms)):
        raise SystemExit(f"--arm-set or --with-base-photos names arm(s) {stray} that --arms "
                         "does not list")  # fmt: skip
    measured_at = commit()
    if any(kind(arm).startswith("finetune") for arm in arms):
        checkpoint, base_classes, base_steps = base_model(args)
    else:  # no arm starts from the base model: no need to train it
        checkpoint, base_classes, base_steps = None, [], 0
    scenario, dataset, _ = quality.load(args.data, args.data_dir, args.cache, args.set, args.size)
    base_classes = base_classes or split(dataset, args.held_out)[0].class_names
    from aigc_run.evaluation.features import domain_features

    domain = domain_features(dataset.images, dataset.labels, dataset.num_classes, args.cache)
    threads = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    per_seed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for shots in [int(s) for s in args.shots.split(",")]:
                extra = ["--shots-of-arm", str(shots), "--seed-of-arm", str(seed)]
                extra += ["--work", work, "--base-checkpoint", str(checkpoint)]
                extra += ["--base-classes", "\n".join(base_classes)]
                command = [sys.executable, __file__, *argv, *extra]
                processes = {
                    arm: subprocess.Popen([*command, "--arm", arm], env=threads)
                    for arm in arms
                }
                if failed := [a for a, p in processes.items() if p.wait() != 0]:
                    raise SystemExit(f"arm(s) {failed} of {shots} photos, seed {seed} failed")
                drawn = photos(dataset, args.held_out, shots, seed, args.base_sees)
                train_index, test_index = drawn
                # embedded once per seed: every arm and yardstick is scored against them
                seen = domain(torch.from_numpy(dataset.images[train_index]))
                real = domain(torch.from_numpy(dataset.images[test_index]))
                yardsticks = references(seen, real, args.samples, seed)
                figures, scores = {}, {}
                for arm in arms:
                    folder = Path(work) / f"{arm.replace('/', '_')}-{shots}-{seed}"
                    figures[arm] = json.loads((folder / "arm.json").read_text())
                    samples = torch.from_numpy(np.load(folder / "samples.npy"))
                    scores[arm] = score(domain(samples), seen, real)
                per_seed.append(
                    {"seed": seed, "shots": shots, "test_photos": len(test_index),
                     "arms": figures, "scores": scores, "ratios": ratios(scores),
                     "references": yardsticks}
                )  # fmt: skip
                print(json.dumps({"seed": seed, "shots": shots, **per_seed[-1]["ratios"]}))
            path = write_record(
                "few_shot",
                {"summary": summarise(per_seed), "runs": per_seed},
                seeds=sorted({s["seed"] for s in per_seed}),
                budget={"minutes_per_arm": args.minutes, "arms_at_once": len(arms),
                        "base_minutes": args.base_minutes, "base_steps": base_steps},
                threads=args.threads,
                argv=argv,
                commit_measured=measured_at,
                name=f"few_shot-{args.data}-{args.held_out.casefold()}",
                results=args.results,
                data=args.data,
                image_size=args.size,
                held_out=args.held_out,
                base_classes=base_classes,
                samples=args.samples,
                freeze_d=args.freeze_d,
                arm_settings=args.arm_set,
                with_base_photos=beside,
                base_sees=args.base_sees,
                scenario={"name": scenario.name, "overrides": args.set},
            )  # fmt: skip
            print(f"record ({len(per_seed)} runs): {path}", flush=True)
    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
