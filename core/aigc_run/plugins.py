"""Loading plugins and calling hooks: the one place in the engine that calls a hook.

Plugins come from the entry-point group ``aigc_run.plugins`` (the engine's own parts in
``aigc_run.builtin`` are registered the same way, under the name ``aigc-run``, as pytest
registers its default plugins). Each hook is called one plugin at a time so every error
and every contributed object says which plugin it came from.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from aigc_run import __version__, hookspecs
from aigc_run.components import (
    CONTRIBUTIONS,
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
from aigc_run.errors import PluginError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

ENTRY_POINT_GROUP = "aigc_run.plugins"
BUILTIN = "aigc-run"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

T = TypeVar("T")


@dataclass(frozen=True)
class Contribution(Generic[T]):
    """A contributed object and the plugin it came from."""

    plugin: str
    item: T


class Plugins:
    """The loaded plugins: their contributions (validated, cached) and lifecycle calls."""

    def __init__(self, disabled: Iterable[str] = (), load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager("aigc_run")
        self.manager.add_hookspecs(hookspecs)
        self.versions: dict[str, str] = {}
        self.disabled = set(disabled)
        self._contributions: dict[str, dict[str, Contribution[Any]]] = {}
        from aigc_run import builtin

        self.register(builtin, BUILTIN, __version__)
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.disabled or ep.name in self.versions:
                continue
            # Checked before importing: an incompatible plugin may not even import.
            problem = incompatibility(ep.dist) if ep.dist else ""
            if problem:
                raise PluginError(
                    ep.name,
                    "load",
                    problem,
                    f"install a release of {ep.dist.name if ep.dist else ep.name} made for "
                    f"aigc-run {__version__}, or switch it off with "
                    f"AIGC_DISABLE_PLUGINS={ep.name}",
                )
            try:
                module = ep.load()
            except Exception as e:
                raise PluginError(
                    ep.name, "load", f"importing {ep.value} raised {_describe(e)}"
                ) from e
            self.register(module, ep.name, ep.dist.version if ep.dist else "unknown")

    def register(self, plugin: ModuleType | object, name: str, version: str = "unknown") -> None:
        """Register a plugin object; tests and ``aigc_run.testing`` use this directly."""
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as e:
            self.manager.unregister(name=name)
            raise PluginError(
                name,
                "register",
                str(e),
                "check the hook names and arguments against the plugin reference",
            ) from e
        self.versions[name] = version
        self._contributions.clear()

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.manager.get_plugin(name)
        return sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])

    # -- contributions ------------------------------------------------------------------

    def contributions(self, hook: str) -> dict[str, Contribution[Any]]:
        """Every object contributed through ``hook``, by name, each validated once."""
        if hook not in self._contributions:
            self._contributions[hook] = self._collect(hook)
        return self._contributions[hook]

    def _collect(self, hook: str) -> dict[str, Contribution[Any]]:
        expected = CONTRIBUTIONS[hook]
        found: dict[str, Contribution[Any]] = {}
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            plugin = impl.plugin_name
            try:
                returned = impl.function()
            except Exception as e:
                raise PluginError(plugin, hook, f"raised {_describe(e)}") from e
            if returned is None:
                continue
            if not isinstance(returned, list | tuple):
                raise PluginError(plugin, hook, f"returned {type(returned).__name__}, not a list")
            for item in returned:
                problem = _check(item, expected)
                if problem:
                    raise PluginError(plugin, hook, problem)
                if item.name in found:
                    other = found[item.name].plugin
                    raise PluginError(
                        plugin,
                        hook,
                        f"{expected.__name__} {item.name!r} is also registered by plugin {other!r}",
                        f"rename one, or disable one with AIGC_DISABLE_PLUGINS={plugin}",
                    )
                found[item.name] = Contribution(plugin, item)
        return found

    def datasets(self) -> dict[str, Contribution[DatasetSource]]:
        return self.contributions("register_datasets")

    def preprocessors(self) -> dict[str, Contribution[Preprocessor]]:
        return self.contributions("register_preprocessors")

    def quality_filters(self) -> dict[str, Contribution[QualityFilter]]:
        return self.contributions("register_quality_filters")

    def sample_writers(self) -> dict[str, Contribution[SampleWriter]]:
        return self.contributions("register_sample_writers")

    def metrics(self) -> dict[str, Contribution[Metric]]:
        return self.contributions("register_metrics")

    def model_families(self) -> dict[str, Contribution[ModelFamily]]:
        return self.contributions("register_model_families")

    def scenarios(self) -> dict[str, Contribution[ScenarioFile]]:
        return self.contributions("register_scenarios")

    # -- lifecycle ----------------------------------------------------------------------

    def before_run(self, run: RunInfo) -> None:
        self._notify("before_run", run=run)

    def after_training_step(self, run: RunInfo, step: int, values: dict[str, float]) -> None:
        self._notify("after_training_step", run=run, step=step, values=values)

    def after_checkpoint(self, run: RunInfo, checkpoint: str) -> None:
        self._notify("after_checkpoint", run=run, checkpoint=checkpoint)

    def after_samples_filtered(self, run: RunInfo, batch: FilteredBatch) -> None:
        self._notify("after_samples_filtered", run=run, batch=batch)

    def after_run(self, run: RunInfo, status: str) -> None:
        self._notify("after_run", run=run, status=status)

    def on_run_error(self, run: RunInfo, error: BaseException) -> list[PluginError]:
        """Tell every observer; their own failures are returned, not raised, so the run's
        original error is the one the user sees."""
        failures = []
        for impl in reversed(self.manager.hook.on_run_error.get_hookimpls()):
            try:
                impl.function(**_arguments(impl, run=run, error=error))
            except Exception as e:
                failures.append(PluginError(impl.plugin_name, "on_run_error", _describe(e)))
        return failures

    def _notify(self, hook: str, **kwargs: Any) -> None:
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            try:
                impl.function(**_arguments(impl, **kwargs))
            except Exception as e:
                raise PluginError(impl.plugin_name, hook, f"raised {_describe(e)}") from e


def load_plugins(disabled: Iterable[str] = ()) -> Plugins:
    return Plugins(disabled)


def incompatibility(dist: Distribution) -> str:
    """Why an installed plugin cannot run on this engine, or ``""``.

    A plugin says which engine versions it supports the way any Python package does: the
    ``aigc-run`` requirement in its dependencies (``Requires-Dist: aigc-run>=0.1,<0.2``).
    pip honours it when installing; this catches the engine being upgraded (or installed
    with ``--no-deps``) under a plugin made for another version. No range means any version.
    """
    requirement = engine_requirement(dist)
    if requirement is None or requirement.specifier.contains(__version__, prereleases=True):
        return ""
    return (
        f"{dist.name} {dist.version} supports aigc-run{requirement.specifier}, "
        f"but aigc-run {__version__} is installed"
    )


def engine_requirement(dist: Distribution) -> Requirement | None:
    """The plugin's requirement on aigc-run (``aigc-run>=0.1,<0.2``), None when it has none."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != "aigc-run":
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # only for an optional extra of the plugin
        return requirement
    return None


def _arguments(impl: Any, **kwargs: Any) -> dict[str, Any]:
    # pluggy lets an implementation take fewer arguments than the spec: pass only those.
    return {name: kwargs[name] for name in impl.argnames}


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _check(item: object, expected: type) -> str:
    """What is wrong with a contributed object, or ``""``."""
    if not isinstance(item, expected):
        return f"returned a {type(item).__name__} where a {expected.__name__} was expected"
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        return (
            f"{expected.__name__} name {name!r} is not a short name "
            "(letters, digits, '.', '_', '-')"
        )
    for spec in dataclasses.fields(item):  # type: ignore[arg-type]
        value = getattr(item, spec.name)
        if spec.type.startswith("Callable") and not callable(value):
            return f"{expected.__name__} {name!r}: {spec.name} is not callable"
    if isinstance(item, DatasetSource) and item.channels not in (1, 3):
        return f"DatasetSource {name!r}: channels must be 1 or 3, not {item.channels!r}"
    if isinstance(item, QualityFilter) and not (
        isinstance(item.threshold, int | float) and math.isfinite(item.threshold)
    ):
        return f"QualityFilter {name!r}: threshold must be a finite number"
    if isinstance(item, ScenarioFile) and item.path is None and not item.content:
        return f"ScenarioFile {name!r}: give a path or content"
    if isinstance(item, ScenarioFile) and item.path is not None and not item.path.is_file():
        return f"ScenarioFile {name!r}: {item.path} does not exist"
    return ""
