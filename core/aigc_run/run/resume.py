"""``aigc-run resume RUN_ID``: continue a stopped run from its last checkpoint.

The run keeps its id, config and output folder. Its last checkpoint holds the weights,
the optimiser moments, the EMA generator and the step; the training loop seeds every
step's random draws from (seed, step), so nothing else is needed for the resumed run to
end exactly where an uninterrupted one would. A run is refused, before anything is
changed, when it is unknown, still running, completed, has no checkpoint, or its last
checkpoint is missing or no longer matches the sha256 the registry recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigc_run.contract.errors import AigcError
from aigc_run.plugins import Plugins
from aigc_run.registry import Registry
from aigc_run.run.engine import ResumeFrom, run_scenario
from aigc_run.scenario import recorded
from aigc_run.settings import Settings


class ResumeError(AigcError):
    """A run cannot be resumed; nothing was changed."""


def check_resumable(registry: Registry, run_id: int) -> ResumeFrom:
    """The run and checkpoint to resume, or a ResumeError saying why not and what to do."""
    run = registry.get_run(run_id)  # RegistryError naming the id when there is no such run
    again = f"start it again with `aigc-run scenario {run.scenario}`"
    if run.status == "completed":
        raise ResumeError(
            f"run {run_id} has completed; there is nothing to resume",
            f"see it with `aigc-run runs show {run_id}`, or {again}",
        )
    if run.status == "running":
        raise ResumeError(
            f"run {run_id} is still running (process {run.pid} on {run.hostname})",
            "wait for it to end, or stop that process first",
        )
    if not run.checkpoints:
        raise ResumeError(
            f"run {run_id} stopped before its first checkpoint; there is nothing to resume",
            f"{again} (a smaller train.checkpoint_every saves earlier)",
        )
    step, location, digest = run.checkpoints[-1]
    path = Path(location)
    from aigc_run.checkpoints import problem_with  # imports torch: only once it is needed

    if problem := problem_with(path, digest):
        raise ResumeError(
            f"run {run_id}'s last checkpoint (step {step}) {path} {problem}",
            f"restore the file from a backup, or {again}",
        )
    return ResumeFrom(run_id, step, path, Path(run.output_dir))


def resume_run(
    run_id: int,
    plugins: Plugins,
    settings: Settings,
    say: Callable[[str], None] = print,
    progress: Callable[..., Any] | None = None,
) -> Any:
    """Resume run ``run_id`` through the engine; returns its ``RunResult``."""
    from aigc_run import dist

    if not dist.current().main:  # never opens the registry: rank 0 checks the run
        scenario = dist.receive_scenario()
        return run_scenario(scenario, plugins, settings, say, progress)
    registry = Registry(settings.registry_url)
    try:
        registry.reap_dead_runs()  # a run killed with SIGKILL is still marked running
        target = check_resumable(registry, run_id)
        scenario = recorded(registry.get_run(run_id).config)
    except BaseException:
        dist.send_scenario(None)  # the other ranks stop; rank 0 says why
        raise
    finally:
        registry.close()
    dist.send_scenario(scenario)
    if scenario.train.threads != "auto":  # a number the run was given: the same again
        from aigc_run import threads

        threads.apply(threads.choose(scenario.train.threads))
    return run_scenario(scenario, plugins, settings, say, progress, resume=target)
