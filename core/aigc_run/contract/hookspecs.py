"""The plugin contract: every hook aigc-run calls, in one place.

Plugins implement these with ``@aigc_run.hookimpl`` and register through the entry-point
group ``aigc_run.plugins``. Hooks only ever gain arguments; pluggy lets an implementation
accept fewer arguments than the spec, so adding one never breaks a plugin.

Contribution hooks (``register_*``) are called once per plugin when the plugins load; each
returns a list of small objects from ``aigc_run.contract.components`` whose ``name`` must be unique
across all plugins. ``None`` or an empty list means "nothing to add".

Lifecycle hooks (``before_run`` ... ``on_run_error``) observe a run. Their return value is
ignored, they never decide control flow, and an exception raised in one fails the run with
an error naming the plugin and the hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from aigc_run.contract.components import (
        BaseModel,
        DatasetSource,
        FilteredBatch,
        Metric,
        ModelFamily,
        Preprocessor,
        QualityFilter,
        RunInfo,
        SampleWriter,
        ScenarioFile,
    )

hookspec = pluggy.HookspecMarker("aigc_run")

#: Marker for hook implementations: ``@aigc_run.hookimpl``.
hookimpl = pluggy.HookimplMarker("aigc_run")


# ---------------------------------------------------------------------------------------
# contributions: called once per plugin at load time
# ---------------------------------------------------------------------------------------


@hookspec
def register_datasets() -> list[DatasetSource] | None:
    """Return the dataset sources this plugin provides.

    Called once, when plugins load. A scenario picks one with ``data.source``.
    Return ``None`` or ``[]`` to add nothing.
    """


@hookspec
def register_preprocessors() -> list[Preprocessor] | None:
    """Return named preprocessing steps (``letterbox-white``, ``grayscale``, ...).

    Called once, when plugins load. A scenario lists them in order under
    ``preprocess.steps``; each runs once per training image before the set is cached.
    Return ``None`` or ``[]`` to add nothing.
    """


@hookspec
def register_quality_filters() -> list[QualityFilter] | None:
    """Return quality filters that score generated images.

    Called once, when plugins load. A scenario turns them on under ``[filters]`` with a
    threshold. Return ``None`` or ``[]`` to add nothing.
    """


@hookspec
def register_sample_writers() -> list[SampleWriter] | None:
    """Return writers that store generated samples (PNG folder, DICOM, ...).

    Called once, when plugins load. A scenario picks one with ``output.writer``.
    Return ``None`` or ``[]`` to add nothing.
    """


@hookspec
def register_metrics() -> list[Metric] | None:
    """Return metrics that compare real and generated images.

    Called once, when plugins load. A scenario lists them under ``evaluate.metrics``; they
    run at the end of every run and with ``aigc-run evaluate``. ``Metric.compute`` takes
    ``(real, generated)``, or an ``EvaluationContext`` when ``uses_context`` is set (see
    ``Metric``). Return ``None`` or ``[]`` to add nothing.
    """


@hookspec
def register_model_families() -> list[ModelFamily] | None:
    """Return model families (the engine's own ``gan`` and ``vae`` arrive here too).

    Called once, when plugins load. A scenario picks one with ``model.family``.
    Return ``None`` or ``[]`` to add nothing.
    """


@hookspec
def register_scenarios() -> list[ScenarioFile] | None:
    """Return the scenario recipes this plugin ships.

    Called once, when plugins load. They are listed by ``aigc-run scenarios`` and run by
    ``aigc-run scenario NAME``. Return ``None`` or ``[]`` to add nothing.
    """


@hookspec
def register_base_models() -> list[BaseModel] | None:
    """Return trained models that runs can start from (``--init-from PLUGIN:NAME``).

    Called once, when plugins load. Each names a checkpoint file with its sha256 and how
    it was trained. Return ``None`` or ``[]`` to add nothing.
    """


# ---------------------------------------------------------------------------------------
# lifecycle: observers of a run
# ---------------------------------------------------------------------------------------


@hookspec
def before_run(run: RunInfo) -> None:
    """Called once a run is recorded in the registry, before its data is loaded.

    ``run`` says the run id, scenario, resolved config, output folder and device.
    """


@hookspec
def after_training_step(run: RunInfo, step: int, values: dict[str, float]) -> None:
    """Called at every logging interval (``train.log_every`` steps), not every step.

    ``step`` counts from 1; ``values`` are the losses of that step by name.
    """


@hookspec
def after_checkpoint(run: RunInfo, checkpoint: str) -> None:
    """Called after a checkpoint was written completely; ``checkpoint`` is its path."""


@hookspec
def after_samples_filtered(run: RunInfo, batch: FilteredBatch) -> None:
    """Called after each batch of generated samples was scored, decided and written."""


@hookspec
def after_run(run: RunInfo, status: str) -> None:
    """Called when a run ends without an error; ``status`` is ``"completed"``."""


@hookspec
def on_run_error(run: RunInfo, error: BaseException) -> None:
    """Called when a run fails or is interrupted, before the error is re-raised."""
