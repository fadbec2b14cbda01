"""Adam's fused kernel against its per-tensor loop, in the gan and vae families' updates.

    python benchmarks/adam_fused.py [--family gan|vae] [--device cpu|cuda] [--steps 300]
        [--rounds 5] [--batch-size 16] [--width 64] [--set model.KEY=VALUE ...]

Both arms train a fresh model (same seed) of the ecommerce scenario's recipe at 32 px
(``--set`` changes it) with its own ``train_step`` on the same random uint8 images, in
this process, alternating for ``--rounds`` rounds (which goes first alternates too):
  fused  the optimisers as the family builds them (``models.gan.adam``: fused=True)
  loop   the same optimisers rebuilt with fused=False, foreach=False: torch's default on
         the CPU before this, a loop of small ops per parameter tensor
The median steps/s of each and the fused/loop ratio are printed (above 1: fused is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from train_overhead import CLASSES, IMAGES, new_model, plain, timed

from aigc_run.plugins import load_plugins
from aigc_run.scenario import read_toml, resolve

REPO = Path(__file__).resolve().parents[1]


def loop_adam(model: Any) -> None:
    """Replace each of the model's Adam optimisers by the per-tensor loop implementation."""
    for name, value in list(vars(model).items()):
        if isinstance(value, torch.optim.Adam):
            group = value.param_groups[0]
            rebuilt = torch.optim.Adam(
                group["params"], lr=group["lr"], betas=group["betas"], foreach=False, fused=False
            )
            setattr(model, name, rebuilt)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--family", default="gan", choices=["gan", "vae"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300, help="steps per arm and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    content = read_toml(REPO / "scenarios" / "ecommerce.toml")
    content["data"]["image_size"] = 32
    content["model"] |= {"family": args.family, "width": args.width}
    if args.family == "vae":  # the gan family's own keys mean nothing to the vae
        for key in ("upsample", "d_norm", "loss"):
            content["model"].pop(key, None)
    content["train"] |= {"batch_size": args.batch_size, "device": args.device}
    scenario = resolve(content, args.set, environ={})
    run_args = argparse.Namespace(
        device=args.device, family=args.family, image_size=32, batch_size=args.batch_size,
        steps=args.steps, log_every=50,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (IMAGES, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, IMAGES).astype(np.int64)
    plugins = load_plugins(set())

    def fresh(arm: str) -> Any:
        model = new_model(plugins, scenario, run_args)
        if arm == "loop":
            loop_adam(model)
        return model

    warm = fresh("fused")  # first steps allocate; not timed
    plain(warm, images, labels, argparse.Namespace(**{**vars(run_args), "steps": 5}))
    rates: dict[str, list[float]] = {"fused": [], "loop": []}
    for round_ in range(args.rounds):
        for arm in ["fused", "loop"] if round_ % 2 == 0 else ["loop", "fused"]:
            model = fresh(arm)
            seconds = timed(lambda: plain(model, images, labels, run_args), args.device)  # noqa: B023
            rates[arm].append(args.steps / seconds)
            print(f"round {round_ + 1} {arm:<5} {rates[arm][-1]:8.2f} steps/s", flush=True)
    median = {arm: statistics.median(values) for arm, values in rates.items()}
    ratio = median["fused"] / median["loop"]
    print(
        f"median steps/s: fused {median['fused']:.2f}, loop {median['loop']:.2f}; "
        f"fused/loop = {ratio:.3f}"
    )
    result = {"args": vars(args) | {"json": str(args.json)}, "rates": rates}
    result |= {"median": median, "ratio": ratio, "threads": torch.get_num_threads()}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
