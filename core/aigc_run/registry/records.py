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


