"""The training loop: batches from the uint8 dataset, logging, checkpoints, hooks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_run import checkpoints
from aigc_run.components import GenerativeModel, RunInfo
from aigc_run.errors import AigcError
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.scenario import Scenario


@dataclass(frozen=True)
class Checkpoint:
    id: int
    step: int
    path: Path


class TrainingDiverged(AigcError):
    pass


def train(
    model: GenerativeModel,
    images: np.ndarray,
    labels: np.ndarray,
    scenario: Scenario,
    run: RunInfo,
    plugins: Plugins,
    registry: Registry,
    progress: Callable[..., object] | None = None,
) -> Checkpoint:
    """Train for ``train.steps`` (or ``train.max_minutes``); return the last checkpoint."""
    cfg = scenario.train
    device = run.device
    # One uint8 copy on the device; batches become float one at a time.
    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # N x C x H x W uint8
    targets = torch.from_numpy(np.ascontiguousarray(labels)).to(device)  # N int64
    picker = torch.Generator().manual_seed(cfg.seed)
    weights = class_weights(labels, cfg.balance)
    bar = _progress_bar(progress, cfg.steps)
    started = time.monotonic()
    last: Checkpoint | None = None
    step = 0
    try:
        for step in range(1, cfg.steps + 1):
            if weights is None:
                index = torch.randint(len(data), (cfg.batch_size,), generator=picker)
            else:
                index = torch.multinomial(weights, cfg.batch_size, True, generator=picker)
            index = index.to(device)
            batch = data[index].float().div_(127.5).sub_(1.0)  # B x C x H x W in [-1, 1]
            values = model.train_step(batch, targets[index])
            out_of_time = cfg.max_minutes is not None and (
                time.monotonic() - started > cfg.max_minutes * 60
            )
            if step % cfg.log_every == 0 or step == cfg.steps or out_of_time:
                _check_finite(values, step, last)
                registry.add_metrics(run.id, step, values)
                plugins.after_training_step(run, step, values)
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
                last = _checkpoint(model, step, run, plugins, registry)
            bar.update(1)
            if out_of_time:
                bar.write(f"train.max_minutes={cfg.max_minutes} reached at step {step}")
                break
    finally:
        bar.close()
    assert last is not None  # the final step always writes one
    return last


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


def _check_finite(values: dict[str, float], step: int, last: Checkpoint | None) -> None:
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        kept = f"the last good checkpoint is {last.path}" if last else "no checkpoint was written"
        raise TrainingDiverged(
            f"training diverged at step {step}: {', '.join(bad)} is not finite; {kept}",
            "lower train.lr (and train.lr_d) or the batch size, then run again",
        )


def _checkpoint(
    model: GenerativeModel, step: int, run: RunInfo, plugins: Plugins, registry: Registry
) -> Checkpoint:
    path = run.output_dir / "checkpoints" / f"step-{step:07d}.safetensors"
    metadata = {
        "run": str(run.id),
        "step": str(step),
        "scenario": run.scenario,
        "family": str(run.config["model"]["family"]),
    }
    digest = checkpoints.save(path, model.state_dict(), metadata)
    checkpoint_id = registry.add_checkpoint(run.id, step, str(path), digest)
    plugins.after_checkpoint(run, str(path))
    return Checkpoint(checkpoint_id, step, path)


class _Silent:
    def set_postfix(self, *args: object, **kwargs: object) -> None: ...
    def update(self, n: int) -> None: ...
    def write(self, text: str) -> None: ...
    def close(self) -> None: ...


def _progress_bar(progress: Callable[..., Any] | None, total: int) -> Any:
    return progress(total=total, desc="train", unit="step") if progress else _Silent()
