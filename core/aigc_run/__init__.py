"""aigc-run: generative image models for vertical scenarios.

This module is the public API for plugin authors: everything a plugin may import from
aigc-run is exported here and documented in docs/plugins.md; the rest of the package is
private and may change. Importing it is cheap: torch and the plugins load only when a
command needs them.
"""

__version__ = "0.1.0"

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
    "write_png",
]
