"""Loading plugins and calling hooks: the one place in the engine that calls a hook.

Plugins come from the entry-point group ``aigc_run.plugins`` (the engine's own parts in
``aigc_run.builtin`` are registered the same way, under the name ``aigc-run``, as pytest
registers its default plugins). Each hook is called one plugin at a time so every error
and every contributed object says which plugin it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from aigc_run import __version__, builtin, interrupts
from aigc_run.contract import hookspecs
from aigc_run.contract.components import FilteredBatch, RunInfo
from aigc_run.contract.errors import PluginError, describe
from aigc_run.contract.kinds import Kind

if TYPE_CHECKING:
    from packaging.requirements import Requirement

ENTRY_POINT_GROUP = "aigc_run.plugins"
BUILTIN = "aigc-run"

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
                    ep.name, "load", f"importing {ep.value} raised {describe(e)}"
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

    def call_each(
        self, hook: str, errors: list[PluginError] | None = None, **kwargs: Any
    ) -> list[tuple[str, Any]]:
        """Call every plugin's implementation of ``hook``, one plugin at a time, in the
        order they registered; returns (plugin name, what it returned) pairs.

        An implementation that raises is a PluginError naming the plugin and the hook;
        with ``errors`` it is appended there and the other plugins are still called.
        """
        results = []
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            try:
                # Ctrl-C waits for the hook to return: no plugin is left half way.
                with interrupts.deferred():
                    returned = _call(impl, kwargs)
            except Exception as e:
                failure = PluginError(impl.plugin_name, hook, f"raised {describe(e)}")
                if errors is None:
                    raise failure from e
                errors.append(failure)
                continue
            results.append((impl.plugin_name, returned))
        return results

    def call_plugin(self, name: str, hook: str, **kwargs: Any) -> Any:
        """Call plugin ``name``'s own implementation of ``hook`` (with the arguments it takes);
        what it raises is raised unchanged. For checking one plugin (conformance.py)."""
        (impl,) = [
            i for i in getattr(self.manager.hook, hook).get_hookimpls() if i.plugin_name == name
        ]
        return _call(impl, kwargs)

    # -- contributions ------------------------------------------------------------------

    def contributions(self, kind: Kind[T]) -> dict[str, Contribution[T]]:
        """Every object of ``kind`` the plugins contributed, by name, each validated once."""
        if kind.hook not in self._contributions:
            self._contributions[kind.hook] = self._collect(kind)
        return self._contributions[kind.hook]

    def _collect(self, kind: Kind[T]) -> dict[str, Contribution[T]]:
        found: dict[str, Contribution[T]] = {}
        for plugin, returned in self.call_each(kind.hook):
            if returned is None:
                continue
            if not isinstance(returned, list | tuple):
                raise PluginError(
                    plugin, kind.hook, f"returned {type(returned).__name__}, not a list"
                )
            for item in returned:
                problem = kind.problem(item)
                if problem:
                    raise PluginError(plugin, kind.hook, problem)
                if item.name in found:
                    other = found[item.name].plugin
                    raise PluginError(
                        plugin,
                        kind.hook,
                        f"{kind.type.__name__} {item.name!r} is also registered by plugin "
                        f"{other!r}",
                        f"rename one, or disable one with AIGC_DISABLE_PLUGINS={plugin}",
                    )
                found[item.name] = Contribution(plugin, item)
        return found

    # -- lifecycle ----------------------------------------------------------------------

    def before_run(self, run: RunInfo) -> None:
        self.call_each("before_run", run=run)

    def after_training_step(self, run: RunInfo, step: int, values: dict[str, float]) -> None:
        self.call_each("after_training_step", run=run, step=step, values=values)

    def after_checkpoint(self, run: RunInfo, checkpoint: str) -> None:
        self.call_each("after_checkpoint", run=run, checkpoint=checkpoint)

    def after_samples_filtered(self, run: RunInfo, batch: FilteredBatch) -> None:
        self.call_each("after_samples_filtered", run=run, batch=batch)

    def after_run(self, run: RunInfo, status: str) -> None:
        self.call_each("after_run", run=run, status=status)

    def on_run_error(self, run: RunInfo, error: BaseException) -> list[PluginError]:
        """Tell every observer; their own failures are returned, not raised, so the run's
        original error is the one the user sees."""
        failures: list[PluginError] = []
        self.call_each("on_run_error", failures, run=run, error=error)
        return failures


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


def _call(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    # pluggy lets an implementation take fewer arguments than the spec: pass only those.
    return impl.function(**{name: kwargs[name] for name in impl.argnames})
