"""Discriminator rejection sampling: do the samples the run's own discriminator keeps score
better than as many unfiltered ones?

    python benchmarks/drs.py --data clothing --minutes 10 --seeds 0,1,2
    python benchmarks/drs.py --data pneumoniamnist --minutes 10 --seeds 0,1,2

For each seed the scenario's recipe trains for --minutes through the engine's loop (as in
quality_vs_dcgan.py). Its EMA generator then draws --samples x 1/keep samples (classes in
the real data's proportions); the discriminator scores each (``GenerativeModel.realness``,
what the ``realness`` filter uses), and for each share in --keep the top-scoring share is
compared with the first --samples drawn, unfiltered: domain FID and, unless
--inception-samples is 0, Inception FID and KID against the same real images. Ratios
below 1 mean the filter helps. The record gives the median and spread over the seeds.

Writes benchmarks/results/drs-<data>.json after every seed (``--results`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import quality_vs_dcgan as quality  # noqa: E402
from records import RESULTS, commit, write_record  # noqa: E402


def realness(model: Any, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The discriminator's score of uint8 images, in batches."""
    scores = [
        model.realness(batch.float().div(127.5).sub(1), labels).cpu()
        for batch, labels in zip(images.split(256), classes.split(256), strict=True)
    ]
    return torch.cat(scores)


def one_seed(seed: int, args: argparse.Namespace, context: dict[str, Any]) -> dict[str, Any]:
    scenario = context["scenario"].model_copy(deep=True)
    scenario.train.seed = seed
    dataset, score = context["dataset"], context["score"]
    with tempfile.TemporaryDirectory() as folder:
        model, steps, seconds = quality.train_scenario(
            scenario, dataset, context["plugins"], args.minutes, args.device, Path(folder)
        )
    drawn = int(args.samples / min(args.keep))
    classes = quality.wanted_classes(dataset.labels, drawn, seed)
    images = quality.generate(model, classes, seed)
    scores = realness(model, images, classes)
    unfiltered = score(images[: args.samples])
    result: dict[str, Any] = {"seed": seed, "steps": steps, "seconds": round(seconds, 1)}
    result["unfiltered"] = unfiltered
    for keep in args.keep:
        pool = int(args.samples / keep)  # the top `keep` of this many: args.samples kept
        top = scores[:pool].argsort(descending=True)[: args.samples].sort().values
        kept = score(images[:pool][top])
        result[f"keep {keep:g}"] = {
            **kept,
            "ratios": {k: kept[k] / unfiltered[k] for k in kept if unfiltered.get(k)},
        }
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", choices=sorted(quality.DATASETS), default="clothing")
    p.add_argument("--data-dir", type=Path, default=os.environ.get("AIGC_TEST_DATA"))
    p.add_argument("--image-size", dest="size", type=int, default=32)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--keep", default="0.5,0.7,0.9", help="shares of the samples kept")
    p.add_argument("--samples", type=int, default=2000, help="samples scored per arm")
    p.add_argument("--inception-samples", type=int, default=2000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", type=Path, default=Path("/tmp/aigc-bench"))
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    if args.data_dir is None:
        raise SystemExit("give --data-dir (or set AIGC_TEST_DATA)")
    args.keep = [float(k) for k in args.keep.split(",")]
    measured_at = commit()
    scenario, dataset, plugins = quality.load(
        args.data, args.data_dir, args.cache, args.set, args.size
    )
    index = np.random.default_rng(0).choice(
        len(dataset.images), min(args.samples, len(dataset.images)), replace=False
    )
    real = torch.from_numpy(dataset.images[index])
    inception = min(args.inception_samples, len(real))
    score = quality.make_scorer(
        dataset.images, dataset.labels, dataset.num_classes, real, args.cache, inception
    )
    context = {"scenario": scenario, "dataset": dataset, "plugins": plugins, "score": score}
    per_seed = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        per_seed.append(one_seed(seed, args, context))
        print(json.dumps({k: v for k, v in per_seed[-1].items() if k != "unfiltered"}))
        summary = {
            f"keep {keep:g}": {
                key: quality.spread([s[f"keep {keep:g}"]["ratios"][key] for s in per_seed])
                for key in per_seed[0][f"keep {keep:g}"]["ratios"]
            }
            for keep in args.keep
        }
        path = write_record(
            "drs",
            {"ratios": summary, "seeds": per_seed},
            seeds=[s["seed"] for s in per_seed],
            budget={"minutes": args.minutes},
            threads=torch.get_num_threads(),
            argv=argv if argv is not None else sys.argv[1:],
            commit_measured=measured_at,
            name=f"drs-{args.data}",
            results=args.results,
            data=args.data,
            image_size=args.size,
            samples=args.samples,
            inception_samples=inception,
        )
    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
