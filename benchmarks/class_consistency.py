"""How often the class-consistency filter flags images of the wrong class, on real data.

    python benchmarks/class_consistency.py [--data-dir ../shared/data] [--scenario ecommerce]

Held-out real photos are scored twice: asked for their own category, and asked for another
category drawn at random (a stand-in for a "Shoes" sample that came out as "Pants"). The
threshold is the one a run uses: the filter's default loosened ("auto") until 90% of the
held-out photos pass under their own category. Prints both flag rates.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

import torch

from aigc_run.contract.kinds import FILTERS, SCENARIOS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = os.environ.get("AIGC_TEST_DATA", str(Path(__file__).parents[1] / "../shared/data"))
    parser.add_argument("--data-dir", type=Path, default=Path(default))
    parser.add_argument("--scenario", default="ecommerce", choices=["ecommerce", "medical"])
    args = parser.parse_args()
    os.environ.setdefault("AIGC_HOME", tempfile.mkdtemp(prefix="aigc-class-consistency-"))
    print(flag_rates(args.scenario, args.data_dir))


def flag_rates(scenario_name: str, data_dir: Path) -> dict[str, float]:
    from aigc_run.contract.components import FilterContext
    from aigc_run.data import load_dataset
    from aigc_run.evaluation.classifier import DomainClassifier
    from aigc_run.plugins import load_plugins
    from aigc_run.run import filtering
    from aigc_run.scenario import resolve
    from aigc_run.settings import Settings

    plugins = load_plugins()
    from aigc_run.scenario import read_toml

    found = plugins.contributions(SCENARIOS)[scenario_name].item
    content = dict(found.content) if found.path is None else read_toml(found.path)
    data = {"ecommerce": "clothing", "medical": "pneumoniamnist/pneumoniamnist.npz"}
    scenario = resolve(content, data_path=str(data_dir / data[scenario_name]), environ={})
    name = {"ecommerce": "class-consistency", "medical": "anatomical-plausibility"}
    chosen = plugins.contributions(FILTERS)[name[scenario_name]]
    dataset = load_dataset(plugins, scenario, Settings().cache_dir, lambda _: None)
    train_idx, held_idx = dataset.split(scenario.data.holdout, scenario.train.seed)

    def pixels(index):
        return torch.from_numpy(dataset.images[index]).float().div(255)

    labels = torch.from_numpy(dataset.labels[held_idx])
    names = dataset.class_names
    reference = pixels(train_idx)
    reference_labels = torch.from_numpy(dataset.labels[train_idx])
    # the run's domain classifier, shared by both contexts as a run shares it
    classifier = DomainClassifier(reference, reference_labels, len(names), Settings().cache_dir)
    right = FilterContext(labels, reference, reference_labels, names, classifier)
    shift = torch.randint(1, len(names), labels.shape, generator=torch.Generator().manual_seed(0))
    wrong = dataclasses.replace(right, labels=(labels + shift) % len(names))
    real = pixels(held_idx)
    (active,) = filtering.calibrate([(chosen, "auto")], real, right)
    score = chosen.item.score
    fails = lambda s: ~torch.tensor([active.filter.passes(float(v), active.threshold) for v in s])  # noqa: E731
    return {
        "images": len(held_idx),
        "classes": len(names),
        "threshold": round(active.threshold, 4),
        "flagged_wrong_class": round(fails(score(real, wrong)).float().mean().item(), 4),
        "flagged_right_class": round(fails(score(real, right)).float().mean().item(), 4),
    }


if __name__ == "__main__":
    main()
