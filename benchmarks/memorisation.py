"""Does the memorisation check catch copies of training images, and spare real ones?

On each real data set, through its scenario's own loader and preprocessing (32 x 32):
the engine's seeded split with 30% held out; the domain feature network trained on the
training images; the threshold calibrated on half of the held-out images, exactly as a run
calibrates on its held-out set; then the share flagged among

- planted copies: training images put among the "generated" samples unchanged,
- near copies: the same with faint pixel noise (Gaussian, sigma 2 of 255 levels),
- fresh real images: the other half of the held-out images, never trained on (less any
  that are pixel-identical to a training image: data sets hold a few duplicates).

    python benchmarks/memorisation.py                 # data from ../shared/data
    python benchmarks/memorisation.py --data DIR      # or AIGC_TEST_DATA=DIR

The test tests/test_evaluation.py::test_memorisation_on_real_data runs the same function.
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

HOLDOUT = 0.3
PLANTED = 500
NOISE = 2.0  # pixel levels of the near copies' noise
SETS = {  # name: (scenario, path under the data folder)
    "pneumoniamnist": ("medical", "pneumoniamnist/pneumoniamnist.npz"),
    "clothing": ("ecommerce", "clothing"),
}


def rates(scenario_name: str, data_path: Path, cache_dir: Path) -> dict[str, float | int]:
    """Shares flagged: planted copies, near copies and fresh real images."""
    from aigc_run.data import load_dataset
    from aigc_run.evaluation.features import domain_features
    from aigc_run.evaluation.memorisation import check, unseen
    from aigc_run.plugins import Plugins
    from aigc_run.scenario import read_toml, resolve

    plugins = Plugins()
    content = read_toml(plugins.contributions(SCENARIOS)[scenario_name].item.path)
    scenario = resolve(content, [f"data.holdout={HOLDOUT}"], str(data_path), environ={})
    dataset = load_dataset(plugins, scenario, cache_dir, say=lambda text: None)
    train_idx, held_idx = dataset.split(scenario.data.holdout, scenario.train.seed)
    rng = np.random.default_rng(0)
    if len(train_idx) > scenario.evaluate.reference:  # the engine's reference cap
        train_idx = np.sort(rng.choice(train_idx, scenario.evaluate.reference, replace=False))
    train = torch.from_numpy(np.ascontiguousarray(dataset.images[train_idx]))
    held = torch.from_numpy(np.ascontiguousarray(dataset.images[held_idx]))
    calibration, fresh = held[0::2], held[1::2]
    planted = train[torch.from_numpy(rng.choice(len(train), PLANTED, replace=False))]
    noise = torch.from_numpy(rng.normal(0, NOISE, size=tuple(planted.shape)))
    near = (planted.double() + noise).round().clamp(0, 255).to(torch.uint8)

    network = domain_features(
        train, torch.from_numpy(dataset.labels[train_idx]), dataset.num_classes, cache_dir
    )
    samples = torch.cat([planted, near, fresh])
    # As a run does: real data sets hold a few images twice, and a held-out image identical
    # to a training image is a copy, rightly flagged, not a fresh image.
    result = check(
        network(train), network(calibration), network(samples), unseen(calibration, train)
    )
    flagged = result.flagged.cpu()
    new = unseen(fresh, train)
    fresh_flagged = flagged[2 * PLANTED :]
    return {
        "training images": len(train),
        "fresh real images": int(new.sum()),
        "held-out images identical to a training image": int((~new).sum()),
        "planted copies flagged": float(flagged[:PLANTED].double().mean()),
        "near copies flagged": float(flagged[PLANTED : 2 * PLANTED].double().mean()),
        "fresh real flagged": float(fresh_flagged[new].double().mean()),
        "all held-out flagged (identical ones too)": float(fresh_flagged.double().mean()),
        "threshold": result.threshold,
        "nearest fresh real distance": float(
            result.distances[2 * PLANTED :][new.to(result.distances.device)].min()
        ),
        "farthest near copy distance": float(result.distances[PLANTED : 2 * PLANTED].max()),
    }


def main() -> None:
    default = os.environ.get("AIGC_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(default))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        for name, (scenario, relative) in SETS.items():
            started = time.monotonic()
            found = rates(scenario, args.data / relative, Path(cache))
            print(f"{name} ({time.monotonic() - started:.0f} s):")
            for key, value in found.items():
                print(f"  {key}: {value}" if isinstance(value, int) else f"  {key}: {value:.4g}")


if __name__ == "__main__":
    main()
