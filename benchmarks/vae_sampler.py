"""Does the VAE's fitted latent mixture beat sampling from its prior? Same model, same noise.

Trains the vae family (the scenario's data at 32x32, lr 1e-3, beta1 0.9) for ``--steps``,
then scores samples decoded from N(prior[y], I) and from the mixture fitted on the
training codes with the domain FID of quality_vs_dcgan (the evaluation's domain network).

    OMP_NUM_THREADS=1 python benchmarks/vae_sampler.py --data pneumoniamnist --steps 1000

Measured on the shared 2-core machine (1 thread, 1000 steps, 2000 samples), before the
domain network existed, with a placeholder FID: 1.32 from the prior, 0.98 from the mixture.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from quality_vs_dcgan import DATASETS, REPO, load, make_scorer, scenario_samples

from aigc_run.contract.kinds import MODEL_FAMILIES
from aigc_run.run.setup import build_model


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=sorted(DATASETS), default="pneumoniamnist")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data")),
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/aigc-bench"))
    args = parser.parse_args(argv)

    scenario, dataset, plugins = load(args.data, args.data_dir, args.cache, [])
    # The scenario's model keys, less the gan family's own (the vae family refuses them).
    shared = scenario.model.model_dump(include={"conditional", "latent_dim", "width"})
    scenario.model = type(scenario.model)(family="vae", **shared)
    scenario.train.lr, scenario.train.beta1 = 1e-3, 0.9
    model = build_model(plugins.contributions(MODEL_FAMILIES)["vae"], scenario, dataset, "cpu")
    images, labels = torch.from_numpy(dataset.images), torch.from_numpy(dataset.labels)
    for step in range(1, args.steps + 1):
        torch.manual_seed(step)
        index = torch.randint(len(images), (scenario.train.batch_size,))
        model.train_step(images[index].float() / 127.5 - 1, labels[index])
    chosen = np.random.default_rng(0).choice(len(images), args.samples, replace=False)
    real = images[np.sort(chosen)]
    score = make_scorer(
        dataset.images, dataset.labels, dataset.num_classes, real, args.cache, inception_samples=0
    )
    prior = score(scenario_samples(model, dataset.labels, args.samples, 0))
    model.prepare_sampling(images, labels)
    mixture = score(scenario_samples(model, dataset.labels, args.samples, 0))
    result = {"data": args.data, "steps": args.steps, "prior": prior, "mixture": mixture}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
