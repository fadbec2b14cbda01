"""How long domain-feature FID, KID and precision/recall take for 10,000 generated images.

The real set is PneumoniaMNIST's training split at 32 x 32 through the medical scenario's
loader (the engine's split: 4,238 training images); the generated set is 10,000 images from
a GAN generator at the default width (untrained: the timing does not depend on what the
images show). Timed: embedding both sets with the domain network, then FID, KID and
precision/recall as the evaluation computes them. The domain network's training is
reported apart: it happens once per data set and is cached.

    python benchmarks/evaluate_speed.py                   # data from ../shared/data
    python benchmarks/evaluate_speed.py --generated 500   # a quick check that it runs

Target: under 60 s together on a 2-core CPU. Run it on a quiet machine: other processes
on the cores slow every figure down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aigc_run.contract.kinds import SCENARIOS


def main() -> None:
    default = os.environ.get("AIGC_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(default))
    parser.add_argument("--generated", type=int, default=10_000)
    args = parser.parse_args()

    from aigc_run.builtin import register_model_families
    from aigc_run.contract.components import ModelSpec
    from aigc_run.data import load_dataset
    from aigc_run.evaluation import metrics
    from aigc_run.evaluation.features import domain_features
    from aigc_run.evaluation.figures import subset
    from aigc_run.plugins import Plugins
    from aigc_run.run.evaluation import draw
    from aigc_run.scenario import read_toml, resolve

    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as cache:
        plugins = Plugins()
        content = read_toml(plugins.contributions(SCENARIOS)["medical"].item.path)
        path = args.data / "pneumoniamnist" / "pneumoniamnist.npz"
        scenario = resolve(content, data_path=str(path), environ={})
        dataset = load_dataset(plugins, scenario, Path(cache), say=lambda text: None)
        train_idx, _ = dataset.split(scenario.data.holdout, scenario.train.seed)
        real = torch.from_numpy(np.ascontiguousarray(dataset.images[train_idx]))
        labels = torch.from_numpy(dataset.labels[train_idx])

        (gan,) = [f for f in register_model_families() if f.name == "gan"]
        spec = ModelSpec(1, 32, 2, True, scenario.model.for_family(), {}, "cpu")
        torch.manual_seed(0)
        asked = torch.arange(args.generated) % 2
        generated = draw(gan.create(spec), asked, 0, "cpu")
        print(f"real: {len(real)} images, generated: {len(generated)} images, 1 x 32 x 32")

        started = time.perf_counter()
        network = domain_features(real, labels, 2, Path(cache))
        print(f"domain network training (once per data set, cached): {_since(started)}")

        timings = {}
        started = time.perf_counter()
        real_features, fake_features = network(real), network(generated)
        timings["features"] = time.perf_counter() - started
        started = time.perf_counter()
        value = metrics.fid(real_features, fake_features)
        timings["fid"] = time.perf_counter() - started
        started = time.perf_counter()
        kid, _ = metrics.kid(real_features, fake_features, seed=0)
        timings["kid"] = time.perf_counter() - started
        started = time.perf_counter()
        chosen = subset(len(real_features), len(fake_features), 0)
        pr = metrics.precision_recall(real_features[chosen], fake_features)
        timings["precision-recall"] = time.perf_counter() - started
        print(f"fid {value:.4g}, kid {kid:.4g}, precision/recall {pr}")
        for name, seconds in timings.items():
            print(f"  {name}: {seconds:.1f} s")
        total = sum(timings.values())
        print(f"total (features, FID, KID, precision/recall): {total:.1f} s (target < 60 s)")


def _since(started: float) -> str:
    return f"{time.perf_counter() - started:.1f} s"


if __name__ == "__main__":
    main()
