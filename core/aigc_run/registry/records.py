"""What the registry's reads return: frozen plain objects that outlive their session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


class CheckpointInfo(NamedTuple):
    step: int
    path: str
    sha256: str


@dataclass(frozen=True)
class SampleCounts:
    total: int
    accepted: int
    # filter name -> samples it rejected (a sample two filters rejected counts for both);
    # "unspecified" counts rejected samples that name no filter
    rejected_by_filter: Mapping[str, int]


@dataclass(frozen=True)
class RunSummary:
    id: int
    scenario: str
    status: str
    device: str
    started_at: datetime
    ended_at: datetime | None  # None while running, and for a run found dead (end unknown)
    duration_s: float | None  # up to now while running; None when the end is unknown


@dataclass(frozen=True)
class RunDetail(RunSummary):
    config: Mapping[str, Any]
    plugins: Mapping[str, str]
    error: str | None
    output_dir: str
    hostname: str
    pid: int
    checkpoints: list[CheckpointInfo]  # by step
    metrics: Mapping[str, float]  # name -> value at the highest step
    metric_points: int
    samples: SampleCounts
    evaluations: Mapping[str, float]  # metric -> latest value
    # the data it trained on: "images", "channels", "image_size", "classes" (names in label
    # order); None until the data is loaded (and for runs recorded before it was kept)
    dataset: Mapping[str, Any] | None = None
    # the trained model the run started from (train.init_from): "source" (what was asked
    # for), "run" (its id, or None), "checkpoint", "step", "sha256"; None for a fresh start
    parent: Mapping[str, Any] | None = None

    def started_from(self) -> str | None:
        """Where the run's starting weights came from, in one line; None: random weights."""
        p = self.parent
        if p is None:
            return None
        where = f"run {p['run']}" if p.get("run") is not None else f"base model {p['source']}"
        return f"{where}, checkpoint step {p['step']} (sha256 {str(p['sha256'])[:12]})"


@dataclass(frozen=True)
class EvaluationPoint:
    metric: str
    value: float
    step: int | None  # of the checkpoint it evaluated; None when not tied to one
    created_at: datetime


@dataclass(frozen=True)
class SampleInfo:
    file: str  # relative to the run's output folder; "" when a rejected sample was not kept
    label: str
    seed: int
    index: int
    scores: Mapping[str, float]  # quality filter name -> score
    accepted: bool
    reason: str | None
