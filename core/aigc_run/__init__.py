"""aigc-run: generative image models for vertical scenarios.

This module is the public API for plugin authors: everything a plugin may import from
aigc-run is exported here and documented in docs/plugins.md; the rest of the package is
private and may change. Importing it is cheap: torch and the plugins load only when a
command needs them.
"""

__version__ = "0.1.0"

from os import PathLike
from typing import Any

from aigc_run.contract.components import (
    BaseModel,
    DataRequest,
    DatasetSource,
    Download,
    EvaluationContext,
    FilterContext,
    FilteredBatch,
    GenerativeModel,
    Metric,
    ModelFamily,
    ModelSpec,
    Preprocessor,
    QualityFilter,
    RunInfo,
    Sample,
    SampleWriter,
    ScenarioFile,
    Skipped,
)
from aigc_run.contract.errors import (
    AigcError,
    ConfigError,
    DataError,
    PluginError,
)
from aigc_run.contract.hookspecs import hookimpl
from aigc_run.contract.images import write_png


def load(
    run: int | str | PathLike[str], step: int | None = None, device: str | None = None
) -> Any:
    """A trained run's model (a run id, or the folder ``aigc-run export`` wrote), to draw
    images from in Python (docs/api.md): returns an ``aigc_run.api.TrainedModel``. Imports
    torch when called, not when aigc_run is."""
    # This package is also the plugins' API, which every layer of the engine imports; the
    # API module sits at the top, beside the CLI. It is reached by name when called, so
    # that importing aigc_run never pulls the layers above in (pyproject's import contracts).
    import importlib

    return importlib.import_module("aigc_run.api").load(run, step, device)


__all__ = [
    "AigcError",
    "BaseModel",
    "ConfigError",
    "DataError",
    "DataRequest",
    "DatasetSource",
    "Download",
    "EvaluationContext",
    "FilterContext",
    "FilteredBatch",
    "GenerativeModel",
    "Metric",
    "ModelFamily",
    "ModelSpec",
    "PluginError",
    "Preprocessor",
    "QualityFilter",
    "RunInfo",
    "Sample",
    "SampleWriter",
    "ScenarioFile",
    "Skipped",
    "__version__",
    "hookimpl",
    "load",
    "write_png",
]
