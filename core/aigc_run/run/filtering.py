"""Quality filters in a run: which ones a scenario turns on, their thresholds ("auto"
calibrated on held-out real images), scoring a batch under a time limit, and the decision
for each sample, kept as data (``Rejection``: filter, score, threshold).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from aigc_run.contract.components import FilterContext, QualityFilter
from aigc_run.contract.errors import ConfigError, PluginError
from aigc_run.contract.kinds import FILTERS
from aigc_run.plugins import Contribution, Plugins
from aigc_run.scenario import SampleConfig, Scenario

AUTO_PASS_RATE = 0.9  # "auto" loosens a threshold until this share of held-out real images pass
#: An "auto" threshold loosened past this factor of the filter's default (towards 0 for a
#: higher-is-better score, away from it otherwise) hardly rejects anything: the run warns.
LOOSENED_TOO_FAR = 10.0


@dataclass(frozen=True)
class ActiveFilter:
    plugin: str
    filter: QualityFilter
    threshold: float

    @property
    def name(self) -> str:
        return self.filter.name

    def loosened_too_far(self) -> bool:
        """Its threshold is more than LOOSENED_TOO_FAR times looser than the filter's
        default (only "auto" loosens; scores of one sign only)."""
        default, mine = self.filter.threshold, self.threshold
        if default <= 0 or mine < 0:
            return False
        if self.filter.higher_is_better:
            return mine * LOOSENED_TOO_FAR < default
        return mine > default * LOOSENED_TOO_FAR


def resolve_filters(
    plugins: Plugins, scenario: Scenario
) -> list[tuple[Contribution[QualityFilter], Any]]:
    known = plugins.contributions(FILTERS)
    chosen = []
    for name, threshold in scenario.filters.items():
        if name not in known:
            raise ConfigError(
                f"filters.{name}: no quality filter named {name!r}",
                f"installed filters: {', '.join(sorted(known)) or 'none'}",
            )
        if threshold != "off":
            chosen.append((known[name], threshold))
    return chosen


def calibrate(
    chosen: Sequence[tuple[Contribution[QualityFilter], Any]],
    real: torch.Tensor,
    context: FilterContext,
    cfg: SampleConfig | None = None,
) -> list[ActiveFilter]:
    """Fix each threshold; "auto" takes the default, loosened to what real images meet.

    With ``cfg.on_filter_error = "skip"`` a filter failing here keeps its default threshold;
    sampling then meets the same failure, drops the filter and reports why.
    """
    active = []
    for contribution, setting in chosen:
        qf = contribution.item
        if setting != "auto":
            active.append(ActiveFilter(contribution.plugin, qf, float(setting)))
            continue
        threshold = qf.threshold
        if len(real):
            timeout = cfg.filter_timeout if cfg else None
            try:
                scores = score_filter(contribution.plugin, qf, real, context, timeout).double()
            except PluginError:
                if cfg is None or cfg.on_filter_error == "fail":
                    raise
                active.append(ActiveFilter(contribution.plugin, qf, threshold))
                continue
            if qf.higher_is_better:
                threshold = min(threshold, torch.quantile(scores, 1 - AUTO_PASS_RATE).item())
            else:
                threshold = max(threshold, torch.quantile(scores, AUTO_PASS_RATE).item())
        active.append(ActiveFilter(contribution.plugin, qf, threshold))
    return active


def score_filter(
    plugin: str,
    qf: QualityFilter,
    images: torch.Tensor,
    context: FilterContext,
    timeout: float | None = None,
) -> torch.Tensor:
    """The filter's scores, checked: a raise, a hang past ``timeout`` s or junk is a PluginError."""
    where = f"quality filter {qf.name!r}"
    hint = (
        f"fix or update plugin {plugin!r}, turn the filter off with --set filters.{qf.name}=off,"
        " or let runs go on without it with --set sample.on_filter_error=skip"
    )
    try:
        scores = _call_with_timeout(lambda: qf.score(images, context), timeout)
    except TimeoutError:
        raise PluginError(
            plugin, where, f"took longer than {timeout:g} s (sample.filter_timeout)", hint
        ) from None
    except Exception as e:
        raise PluginError(plugin, where, f"{type(e).__name__}: {e}", hint) from e
    if not isinstance(scores, torch.Tensor) or scores.shape != (len(images),):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise PluginError(
            plugin,
            where,
            f"returned {shape} for {len(images)} images, not a tensor of shape ({len(images)},)",
            hint,
        )
    if not torch.isfinite(scores).all():
        raise PluginError(plugin, where, "returned NaN or infinite scores", hint)
    return scores.float().cpu()


def _call_with_timeout(call: Callable[[], Any], timeout: float | None) -> Any:
    """``call()`` on the filter thread, abandoned after ``timeout`` s.

    Python cannot kill a thread, but a hung plugin left behind on a daemon thread no longer
    holds up the run (the next call gets a new thread), and does not keep the process
    alive at exit. One thread serves call after call: starting a thread for each, and
    torch setting itself up on it, cost more than a small batch's scoring. Each calling
    thread has its own (aigc-run serve draws on several at once).
    """
    if timeout is None:
        return call()
    if getattr(_filter_threads, "thread", None) is None:
        _filter_threads.thread = _FilterThread()
    done, outcome = threading.Event(), dict[str, Any]()
    _filter_threads.thread.jobs.put((call, done, outcome))
    if not done.wait(timeout):
        _filter_threads.thread = None  # left to the hung call
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _FilterThread:
    """A daemon thread that runs the calls put on ``jobs``, one after another."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="aigc-filter", daemon=True).start()

    def _serve(self) -> None:
        while True:
            call, done, outcome = self.jobs.get()
            try:
                outcome["value"] = call()
            except BaseException as e:  # handed back to the caller's thread
                outcome["error"] = e
            done.set()
            # While it waits for the next job the thread must hold nothing of this one: the
            # call's closure reaches the run's model, whose process group (in a run over
            # several processes) must be gone before the interpreter shuts down.
            del call, done, outcome


_filter_threads = threading.local()  # .thread: the calling thread's _FilterThread


def score_all(
    filters: list[ActiveFilter],
    images: torch.Tensor,
    context: FilterContext,
    cfg: Any,
    skipped: dict[str, str],
    which: Callable[[ActiveFilter], bool] = lambda f: True,
) -> dict[str, torch.Tensor]:
    """Every filter's scores (those ``which`` picks); with ``on_filter_error = "skip"`` a
    failing one is dropped from ``filters``."""
    scores = {}
    for f in [f for f in filters if which(f)]:
        try:
            scores[f.name] = score_filter(f.plugin, f.filter, images, context, cfg.filter_timeout)
        except PluginError as e:
            if cfg.on_filter_error == "fail":
                raise
            with contextlib.suppress(ValueError):  # a round on another thread dropped it
                filters.remove(f)
            skipped[f.name] = str(e.message)
    return scores


class Rejection(NamedTuple):
    """A quality filter that rejected a sample: its score and the threshold it missed."""

    filter: str
    score: float
    threshold: float
    higher_is_better: bool  # so it failed by scoring below the threshold (or else above)


def decide(
    filters: Sequence[ActiveFilter], scores: dict[str, torch.Tensor], size: int
) -> list[list[Rejection]]:
    """For each sample, the filters it failed (none: accepted)."""
    rejections: list[list[Rejection]] = [[] for _ in range(size)]
    for f in filters:
        if f.name not in scores:
            continue
        for k, value in enumerate(scores[f.name].tolist()):
            if not f.filter.passes(value, f.threshold):
                rejections[k].append(
                    Rejection(f.name, value, f.threshold, f.filter.higher_is_better)
                )
    return rejections


def describe_rejections(rejections: Sequence[Rejection]) -> str:
    """For people: ``"near-duplicate 0.0175 < 0.02; ..."`` ("" when accepted)."""
    return "; ".join(
        f"{r.filter} {r.score:.4g} {'<' if r.higher_is_better else '>'} {r.threshold:.4g}"
        for r in rejections
    )
