"""Training overhead: steps per second through the engine against a plain PyTorch loop.

    python benchmarks/train_overhead.py [--device cpu|cuda] [--family gan|vae]
        [--recipe ecommerce|medical|none] [--image-size 32] [--precision auto|fp32|bf16]
        [--batch-size N] [--steps 300] [--rounds 5] [--log-every N]
        [--checkpoint-every N] [--runs 1] [--results DIR]

The model is the shipped scenario's recipe (--recipe, default ecommerce: its [model] and
[train] settings and its [sizes.N] block at --image-size, its batch size, logging and
checkpoint intervals unless given: ecommerce checkpoints every 500 steps, so a 300-step
round writes only its final checkpoint; --checkpoint-every 100 measures a run that saves
more often), or the family's defaults at --width with --recipe none.
Both arms train the same model (a fresh one, same seed, each time) on the same random
uint8 images with the same batch size and optimiser (the family's own ``train_step``), in
this process, one after the other:
  engine  ``training.train`` with everything on: per-step seeding, the divergence guard,
          logging to a real SQLite registry in a temporary folder, the plugins' lifecycle
          hooks (every installed plugin is loaded) and safetensors checkpoints
  plain   the loop a user would write: draw a batch, ``train_step``, read the losses at
          the same logging interval; no checkpoints
The arms alternate for ``--rounds`` rounds (which goes first alternates too) and the
median steps/s of each is reported, which damps the noise of a shared machine. The
engine/plain ratio is the figure to watch (target >= 0.95). ``--runs`` repeats the whole
measurement; the record (benchmarks/results/train_overhead-<recipe>-<size>.json) holds
every run's ratio and their median and spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_run.contract.components import ModelSpec, RunInfo
from aigc_run.contract.kinds import MODEL_FAMILIES, SCENARIOS
from aigc_run.plugins import load_plugins
from aigc_run.registry import Registry
from aigc_run.run import training
from aigc_run.scenario import read_toml, resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or by a test
from records import RESULTS, commit, write_record

CLASSES = 4
IMAGES = 2048


def scenario_for(args: argparse.Namespace, plugins: Any) -> Any:
    """The shipped scenario's recipe at --image-size (its [sizes.N] block applied), or the
    family's defaults with --recipe none; the data is made here, not read."""
    content: dict[str, Any] = {"name": "train-overhead", "data": {"source": "unused"}}
    content["model"] = {"family": args.family, "width": args.width, "latent_dim": 64}
    if args.recipe != "none":
        item = plugins.contributions(SCENARIOS)[args.recipe].item
        content = read_toml(item.path) if item.path is not None else dict(item.content)
    overrides = [
        f"data.image_size={args.image_size}",
        f"model.family={args.family!r}",
        f"train.steps={args.steps}",
        f"train.device={args.device!r}",
        f"train.precision={args.precision!r}",
    ]
    for key in ("batch_size", "log_every", "checkpoint_every"):
        if getattr(args, key) is not None:
            overrides.append(f"train.{key}={getattr(args, key)}")
    return resolve(content, overrides, environ={})


def new_model(plugins: Any, scenario: Any, args: argparse.Namespace) -> Any:
    torch.manual_seed(0)
    spec = ModelSpec(
        channels=3,
        image_size=scenario.data.image_size,
        num_classes=CLASSES,
        conditional=True,
        options=scenario.model.for_family(),
        train=scenario.train.model_dump(),
        device=args.device,
    )
    return plugins.contributions(MODEL_FAMILIES)[scenario.model.family].item.create(spec)


def plain(model: Any, images: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> None:
    """The plain loop: same data on the device, same batch, the model's own update
    (``args.batch_size``: the scenario's)."""
    data = torch.from_numpy(images).to(args.device)
    targets = torch.from_numpy(labels).to(args.device)
    for step in range(1, args.steps + 1):
        index = torch.randint(len(data), (args.batch_size,), device=args.device)
        batch = data[index].float().div_(127.5).sub_(1.0)
        values = model.train_step(batch, targets[index])
        if step % args.log_every == 0:
            _ = {k: float(v) for k, v in values.items()}


def engine(
    images: np.ndarray,
    labels: np.ndarray,
    scenario: Any,
    plugins: Any,
    registry: Registry,
    folder: Path,
) -> Any:
    """The engine's loop, with the run recorded beforehand (a per-run cost, not timed)."""
    config = scenario.model_dump(mode="json")
    output = folder / f"run-{time.monotonic_ns()}"
    run_id = registry.create_run(scenario.name, config, {}, scenario.train.device, str(output))
    run = RunInfo(run_id, scenario.name, config, output, scenario.train.device)
    return lambda model: training.train(model, images, labels, scenario, run, plugins, registry)


def timed(call: Any, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    call()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--family", default="gan", choices=["gan", "vae"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument(
        "--recipe", default="ecommerce", help="a shipped scenario whose [model] and [train] "
        "are trained, or none for the family's defaults at --width"
    )
    parser.add_argument("--width", type=int, default=32, help="with --recipe none")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=300, help="steps per arm and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--log-every", type=int, help="default: the recipe's")
    parser.add_argument("--checkpoint-every", type=int, help="default: the recipe's")
    parser.add_argument("--runs", type=int, default=1, help="repeats of the whole measurement")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the record goes")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    measured_at = commit()
    plugins = load_plugins(set())
    scenario = scenario_for(args, plugins)
    args.batch_size, args.log_every = scenario.train.batch_size, scenario.train.log_every
    runs = [measure(args, plugins, scenario) for _ in range(args.runs)]
    ratios = [run["ratio"] for run in runs]
    figures = {
        "ratio": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
        "target": 0.95,
        "runs": runs,
    }
    if args.device.startswith("cuda"):
        figures["peak_gpu_bytes"] = torch.cuda.max_memory_allocated(args.device)
    path = write_record(
        "train_overhead",
        figures,
        seeds=[0],
        budget={"steps_per_round": args.steps, "rounds": args.rounds, "runs": args.runs},
        threads=torch.get_num_threads(),
        argv=argv,
        commit_measured=measured_at,
        name=f"train_overhead-{args.recipe}-{args.image_size}",
        results=args.results,
        device=args.device,
        model=scenario.model.for_family(),
        batch_size=args.batch_size,
        log_every=args.log_every,
        checkpoint_every=scenario.train.checkpoint_every,
    )
    print(f"engine/plain over {args.runs} run(s): {ratios}; record: {path}")
    return figures


def measure(args: argparse.Namespace, plugins: Any, scenario: Any) -> dict[str, Any]:
    """One measurement: the arms alternating for --rounds rounds."""

    rng = np.random.default_rng(0)
    shape = (IMAGES, 3, args.image_size, args.image_size)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    labels = rng.integers(0, CLASSES, IMAGES).astype(np.int64)
    rates: dict[str, list[float]] = {"engine": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(f"sqlite:///{Path(tmp) / 'registry.db'}")
        arms = {
            "plain": lambda: lambda model: plain(model, images, labels, args),
            "engine": lambda: engine(images, labels, scenario, plugins, registry, Path(tmp)),
        }
        warm = new_model(plugins, scenario, args)  # first steps allocate; not timed
        plain(warm, images, labels, argparse.Namespace(**{**vars(args), "steps": 5}))
        for round_ in range(args.rounds):
            order = ["plain", "engine"] if round_ % 2 == 0 else ["engine", "plain"]
            for name in order:
                model, arm = new_model(plugins, scenario, args), arms[name]()
                seconds = timed(lambda: arm(model), args.device)  # noqa: B023
                rates[name].append(args.steps / seconds)
                print(f"round {round_ + 1} {name:<6} {rates[name][-1]:8.2f} steps/s", flush=True)
        registry.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    ratio = median["engine"] / median["plain"]
    print(
        f"median steps/s: engine {median['engine']:.2f}, plain {median['plain']:.2f}; "
        f"engine/plain = {ratio:.3f} (target >= 0.95)"
    )
    return {"rates": rates, "median": median, "ratio": ratio}


if __name__ == "__main__":
    main()
