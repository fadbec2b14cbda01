"""The kinds of objects plugins contribute: one table that the whole engine reads.

Each ``register_<things>()`` hook returns a list of one kind of object. This table says,
per kind, which hook returns it, its type, the name it is listed under (``aigc-run
plugins``, its ``--json`` keys, ``Plugins.contributions``) and what makes one valid. The
loader, the listings and the conformance check all go through it, so adding a kind is a
hookspec, a component type and a row here (CONTRIBUTING.md says the rest).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aigc_run.contract.components import (
    BaseModel,
    DatasetSource,
    Metric,
    ModelFamily,
    Preprocessor,
    QualityFilter,
    SampleWriter,
    ScenarioFile,
)

T = TypeVar("T")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Kind(Generic[T]):
    """One kind of contributed object."""

    name: str  # listed as, and the --json key: "datasets", "model_families"
    hook: str  # the hook that returns a list of them: "register_datasets"
    type: type[T]
    noun: str  # one of them, in messages: "model family"

    @property
    def label(self) -> str:
        """How ``aigc-run plugins`` heads its list: "model families"."""
        return self.name.replace("_", " ")

    def problem(self, item: object) -> str:
        """What is wrong with a contributed object, or ``""``."""
        kind = self.type.__name__
        if not isinstance(item, self.type):
            return f"returned a {type(item).__name__} where a {kind} was expected"
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not NAME.match(name):
            return f"{kind} name {name!r} is not a short name (letters, digits, '.', '_', '-')"
        for spec in dataclasses.fields(item):  # type: ignore[arg-type]
            value = getattr(item, spec.name)
            if str(spec.type).startswith("Callable") and not callable(value):
                return f"{kind} {name!r}: {spec.name} is not callable"
        return _specific_problem(item)


def _specific_problem(item: object) -> str:
    """The checks that only one kind has."""
    if isinstance(item, DatasetSource) and item.channels not in (1, 3):
        return f"DatasetSource {item.name!r}: channels must be 1 or 3, not {item.channels!r}"
    if isinstance(item, QualityFilter) and not (
        isinstance(item.threshold, int | float) and math.isfinite(item.threshold)
    ):
        return f"QualityFilter {item.name!r}: threshold must be a finite number"
    if isinstance(item, ScenarioFile) and item.path is None and not item.content:
        return f"ScenarioFile {item.name!r}: give a path or content"
    if isinstance(item, ScenarioFile) and item.path is not None and not item.path.is_file():
        return f"ScenarioFile {item.name!r}: {item.path} does not exist"
    if isinstance(item, BaseModel):
        return _base_model_problem(item)
    return ""


def _base_model_problem(item: BaseModel) -> str:
    where = f"BaseModel {item.name!r}"
    if not item.checkpoint.is_file():
        return f"{where}: {item.checkpoint} does not exist"
    if not re.fullmatch(r"[0-9a-f]{64}", item.sha256):
        return f"{where}: sha256 must be 64 lower-case hex digits"
    if item.channels not in (1, 3):
        return f"{where}: channels must be 1 or 3, not {item.channels!r}"
    if item.image_size < 8 or item.image_size & (item.image_size - 1):
        return f"{where}: image_size must be a power of two, not {item.image_size!r}"
    return ""


DATASETS = Kind("datasets", "register_datasets", DatasetSource, "dataset")
STEPS = Kind("steps", "register_preprocessors", Preprocessor, "preprocessor")
FILTERS = Kind("filters", "register_quality_filters", QualityFilter, "quality filter")
MODEL_FAMILIES = Kind("model_families", "register_model_families", ModelFamily, "model family")
WRITERS = Kind("writers", "register_sample_writers", SampleWriter, "sample writer")
METRICS = Kind("metrics", "register_metrics", Metric, "metric")
SCENARIOS = Kind("scenarios", "register_scenarios", ScenarioFile, "scenario")
BASE_MODELS = Kind("base_models", "register_base_models", BaseModel, "base model")

#: Every kind, in the order the listings show them and conformance probes them (datasets
#: first: the images they yield feed the preprocessor and filter probes).
KINDS: tuple[Kind[Any], ...] = (
    DATASETS,
    STEPS,
    FILTERS,
    MODEL_FAMILIES,
    WRITERS,
    METRICS,
    SCENARIOS,
    BASE_MODELS,
)
BY_HOOK = {kind.hook: kind for kind in KINDS}
