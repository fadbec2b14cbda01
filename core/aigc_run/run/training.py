"""The training loop: batches from the uint8 dataset, logging, checkpoints, hooks.

Every random draw of step ``s`` (the batch's indices, the model's noise, augmentation)
comes from torch's generators seeded with ``step_seed(train.seed, s)`` at the start of
the step. No random state has to be saved: a run resumed from the checkpoint at step
``s`` draws at step ``s + 1`` exactly what the uninterrupted run drew, so on the CPU it
ends with bit-identical weights.

In a run over several processes (see dist.py) rank ``r > 0`` seeds its step with
``step_seed(train.seed, s, r)``, so each rank draws its own batches and noise while rank 0
draws exactly what a one-process run draws; DistributedDataParallel averages the
gradients. Logged values are the mean over ranks; only rank 0 records and checkpoints.

Every step's losses are watched for NaN, infinity or a value beyond ``train.max_loss``;
a checkpoint is only written after its step and its weights were checked, so the last
good checkpoint is never overwritten with bad weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_run import checkpoints, dist, faults
from aigc_run.contract.components import GenerativeModel, RunInfo
from aigc_run.contract.errors import AigcError
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.scenario import Scenario


@dataclass(frozen=True)
class Checkpoint:
    id: int
    step: int
    path: Path
    seconds: float = 0.0  # training time up to this checkpoint, for train.max_minutes
    final: bool = False  # training had ended (last step, or out of time) when it was written


class TrainingDiverged(AigcError):
    pass


_HINT_DIVERGED = (
    "lower train.lr (and train.lr_d), or raise train.max_loss if such losses are expected, "
    "then start the scenario again"
)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of every random draw at ``step``: well mixed, so neighbouring steps differ.

    Rank 0 (and a one-process run) keeps the two-number seed, so its runs and resumes
    stay as they were; every other rank mixes its rank in and draws other batches.
    """
    entropy = [seed % 2**64, step] + ([rank] if rank else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def train(
    model: GenerativeModel,
    images: np.ndarray,
    labels: np.ndarray,
    scenario: Scenario,
    run: RunInfo,
    plugins: Plugins,
    registry: Registry | None,
    progress: Callable[..., object] | None = None,
    start: Checkpoint | None = None,
) -> Checkpoint:
    """Train for ``train.steps`` (or ``train.max_minutes``); return the last checkpoint.

    ``start`` resumes after that checkpoint, whose weights ``model`` already holds.
    ``registry`` None: a rank other than 0, which records nothing, calls no lifecycle
    hook and returns a Checkpoint with id 0 that names no file.
    """
    cfg = scenario.train
    device = run.device
    ranks = dist.current()
    if ranks.active:
        start = dist.share_start(model, start)
        dist.distribute(model, str(scenario.model.family), device)
    # One uint8 copy on the device; batches become float one at a time.
    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # N x C x H x W uint8
    targets = torch.from_numpy(np.ascontiguousarray(labels)).to(device)  # N int64
    if start is not None and start.final:
        return start  # training had ended; the run stopped later (while sampling)
    first = start.step + 1 if start else 1
    weights = class_weights(labels, cfg.balance)
    weights = None if weights is None else weights.to(device)
    spent = start.seconds if start else 0.0
    bar = _progress_bar(progress, cfg.steps, first - 1)
    guard = _DivergenceGuard(cfg.max_loss, device)
    started = time.monotonic() - spent
    last = start
    try:
        for step in range(first, cfg.steps + 1):
            _seed(step_seed(cfg.seed, step, ranks.rank), device)
            # Drawn on the device: a copy from the CPU would make the GPU wait every step.
            if weights is None:
                index = torch.randint(len(data), (cfg.batch_size,), device=device)
            else:
                index = torch.multinomial(weights, cfg.batch_size, replacement=True)
            batch = data[index].float().div_(127.5).sub_(1.0)  # B x C x H x W in [-1, 1]
            values = model.train_step(batch, targets[index])
            faults.point("train-step")  # updated, not yet checked, logged or saved
            guard.watch(step, values)
            seconds = time.monotonic() - started
            out_of_time = cfg.max_minutes is not None and seconds > cfg.max_minutes * 60
            if ranks.active and cfg.max_minutes is not None:
                # All ranks stop at one step. Agreeing waits for the GPU, so the ranks agree
                # on logging steps only: a run stops up to log_every steps past its budget.
                out_of_time = step % cfg.log_every == 0 and dist.any_rank(out_of_time, device)
            final = step == cfg.steps or out_of_time
            logging = step % cfg.log_every == 0 or final
            saving = step % cfg.checkpoint_every == 0 or final
            if logging or saving or device == "cpu":  # on a GPU, wait for it only here
                guard.check(last)
            if logging:
                floats = {k: float(v) for k, v in values.items()}
                if ranks.active:
                    floats = dist.average(floats, device)
                if registry is not None:
                    registry.add_metrics(run.id, step, floats)
                    plugins.after_training_step(run, step, floats)
                bar.set_postfix({k: f"{v:.3f}" for k, v in floats.items()}, refresh=False)
            if final and registry is not None:  # only the recording rank samples
                model.prepare_sampling(data, targets)  # the final checkpoint holds what it fits
            if saving and registry is not None:
                last = _checkpoint(model, step, seconds, final, run, plugins, registry, last)
            elif saving:  # rank 0 writes the file
                last = Checkpoint(0, step, Path(), seconds, final)
            bar.update(1)
            if out_of_time:
                bar.write(f"train.max_minutes={cfg.max_minutes} reached at step {step}")
                break
    finally:
        bar.close()
    assert last is not None  # the final step always writes one
    return last


def _seed(seed: int, device: str) -> None:
    """What ``torch.manual_seed`` does for the generators training draws from (the CPU's
    and the CUDA devices'), at ~1% of its cost: it also visits every other backend, which
    took ~0.3 ms a step on a busy CPU."""
    torch.default_generator.manual_seed(seed)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(seed)


def class_weights(labels: np.ndarray, balance: str) -> torch.Tensor | None:
    """Per-image drawing weights that rebalance a skewed catalogue, or None for uniform.

    Oversampling by weight, not by copying images: the cached data set, the held-out split
    and the filters' reference all stay as they were (copies would leak into the held-out
    images and fool the copy filters). "classes": each class is drawn equally often;
    "sqrt": in proportion to the square root of its size, a gentler middle way.
    """
    if balance == "none" or len(labels) == 0:
        return None
    counts = np.bincount(labels).astype(np.float64)
    per_class = (
        1.0 / counts.clip(min=1) if balance == "classes" else 1.0 / np.sqrt(counts.clip(min=1))
    )
    return torch.from_numpy(per_class[labels])


class _DivergenceGuard:
    """Remembers the first step whose values were NaN, infinite or beyond ``limit``.

    Values that are tensors are compared on their device and only read at ``check``, so
    a GPU is not made to wait every step.
    """

    def __init__(self, limit: float | None, device: str) -> None:
        self.limit = math.inf if limit is None else limit
        self.device = device
        self.first_bad: dict[str, torch.Tensor | int] = {}  # name -> first bad step, 0 = none

    def watch(self, step: int, values: Mapping[str, float | torch.Tensor]) -> None:
        for name, value in values.items():
            seen = self.first_bad.get(name, 0)
            if isinstance(value, torch.Tensor):
                bad = ~(value.detach().abs() <= self.limit)  # NaN compares False: bad too
                if not isinstance(seen, torch.Tensor):
                    seen = torch.zeros((), dtype=torch.int64, device=value.device)
                self.first_bad[name] = torch.where((seen == 0) & bad, step, seen)
            elif not seen and not abs(value) <= self.limit:
                self.first_bad[name] = step

    def check(self, last: Checkpoint | None) -> None:
        bad = {name: int(step) for name, step in self.first_bad.items() if int(step)}
        if bad:
            step = min(bad.values())
            names = ", ".join(name for name, s in bad.items() if s == step)
            limit = "" if math.isinf(self.limit) else f" or beyond train.max_loss={self.limit:g}"
            raise TrainingDiverged(
                f"training diverged at step {step}: {names} became NaN, infinite{limit}; "
                + _kept(last),
                _HINT_DIVERGED,
            )


def _kept(last: Checkpoint | None) -> str:
    if last is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint, intact, is {last.path} (step {last.step})"


def _checkpoint(
    model: GenerativeModel,
    step: int,
    seconds: float,
    final: bool,
    run: RunInfo,
    plugins: Plugins,
    registry: Registry,
    last: Checkpoint | None,
) -> Checkpoint:
    state = model.state_dict()
    broken = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if broken:  # finite losses can still leave non-finite weights behind
        raise TrainingDiverged(
            f"training diverged at step {step}: weights {', '.join(broken[:3])}"
            f"{' ...' if len(broken) > 3 else ''} are not finite; " + _kept(last),
            _HINT_DIVERGED,
        )
    path = run.output_dir / "checkpoints" / f"step-{step:07d}.safetensors"
    metadata = {
        "run": str(run.id),
        "step": str(step),
        "scenario": run.scenario,
        "family": str(run.config["model"]["family"]),
        "train_seconds": f"{seconds:.3f}",
        "final": str(final).lower(),
    }
    digest = checkpoints.save(path, state, metadata)
    checkpoint_id = registry.add_checkpoint(run.id, step, str(path), digest)
    plugins.after_checkpoint(run, str(path))
    return Checkpoint(checkpoint_id, step, path, seconds, final)


def resume_point(checkpoint_id: int, step: int, path: Path) -> Checkpoint:
    """The Checkpoint a resumed run continues from, with the time and state it recorded."""
    metadata = checkpoints.metadata(path)
    seconds = float(metadata.get("train_seconds", "0"))
    return Checkpoint(checkpoint_id, step, path, seconds, metadata.get("final") == "true")


class _Silent:
    def set_postfix(self, *args: object, **kwargs: object) -> None: ...
    def update(self, n: int) -> None: ...
    def write(self, text: str) -> None: ...
    def close(self) -> None: ...


def _progress_bar(progress: Callable[..., Any] | None, total: int, done: int) -> Any:
    if progress is None:
        return _Silent()
    return progress(total=total, initial=done, desc="train", unit="step")
