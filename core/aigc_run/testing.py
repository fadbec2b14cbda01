"""Helpers for testing an aigc-run plugin with pytest.

Installing aigc-run registers this module as a pytest plugin (entry point ``pytest11``), so
a plugin's tests get these fixtures without a conftest:

``aigc_plugins(*plugins)``
    a fresh plugin manager holding only the engine's built-ins and the plugins given
    (modules or objects, or ``(name, plugin)`` pairs), whatever else is installed.
``aigc_tiny_run(scenario, data=None, overrides=(), plugins=None)``
    runs a scenario (a name, a TOML path or a mapping) on the CPU with tiny settings
    (a few training steps, 16-pixel images, 4 samples) in a throwaway ``AIGC_HOME`` and
    returns its ``RunResult``; ``plugins`` defaults to every installed plugin.

``filter_context(labels, reference, reference_labels, class_names)`` is a
``FilterContext`` as the engine makes one, its domain classifier included, for testing a
quality filter outside a run; and ``check_plugin(plugin)`` is the conformance check that
``aigc-run plugins check`` runs:
``check_plugin(plugin).raise_for_problems()`` fails with every problem listed at once.

Nothing here imports torch until a fixture is used: pytest imports this module in every
session of an environment where aigc-run is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aigc_run.conformance import PluginReport, check_installed, check_plugin, plugin_name
from aigc_run.contract.components import FilterContext
from aigc_run.contract.kinds import SCENARIOS
from aigc_run.plugins import Plugins

if TYPE_CHECKING:
    import torch

    from aigc_run.run.engine import RunResult

__all__ = [
    "TINY",
    "PluginReport",
    "aigc_plugins",
    "aigc_tiny_run",
    "check_installed",
    "check_plugin",
    "filter_context",
    "plugin_manager",
    "run_tiny_scenario",
]

#: The ``--set`` overrides of a tiny run: seconds on a CPU, not a useful model.
TINY = (
    "train.steps=2",
    "train.batch_size=4",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.device=cpu",
    "model.width=8",
    "model.latent_dim=8",
    "data.image_size=16",
    "data.max_images=32",
    "sample.count=4",
    "sample.batch_size=4",
)


def filter_context(
    labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    class_names: Sequence[str],
    cache_dir: Path | None = None,
) -> FilterContext:
    """A FilterContext as the engine makes one for a batch asked for ``labels``, with the
    domain classifier trained on ``reference`` (float images in [0, 1]), cached in
    ``cache_dir`` (default: the current AIGC_HOME's cache)."""
    from aigc_run.evaluation.classifier import DomainClassifier
    from aigc_run.settings import Settings

    classifier = DomainClassifier(
        reference, reference_labels, len(class_names), cache_dir or Settings().cache_dir
    )
    return FilterContext(labels, reference, reference_labels, class_names, classifier)


def plugin_manager(*plugins: object | tuple[str, object]) -> Plugins:
    """The engine's built-ins and exactly these plugins, none of the installed ones."""
    manager = Plugins(load_entry_points=False)
    for plugin in plugins:
        name, obj = plugin if isinstance(plugin, tuple) else (plugin_name(plugin), plugin)
        manager.register(obj, name)
    return manager


def run_tiny_scenario(
    scenario: str | Path | Mapping[str, Any],
    data: str | Path | None = None,
    overrides: Sequence[str] = (),
    plugins: Plugins | None = None,
) -> RunResult:
    """Run a scenario with the ``TINY`` settings (yours come after and win).

    Runs in the current ``AIGC_HOME``; the ``aigc_tiny_run`` fixture points it at a
    temporary folder first.
    """
    from aigc_run.run.engine import run_scenario
    from aigc_run.scenario import read_toml, resolve
    from aigc_run.settings import Settings

    if plugins is None:
        plugins = Plugins(Settings().disabled)
    if isinstance(scenario, Mapping):
        content = dict(scenario)
    elif isinstance(scenario, Path) or str(scenario).endswith(".toml"):
        content = read_toml(Path(scenario))
    else:
        found = plugins.contributions(SCENARIOS)
        if scenario not in found:
            raise KeyError(f"no scenario {scenario!r}; loaded: {sorted(found)}")
        item = found[scenario].item
        content = read_toml(item.path) if item.path is not None else dict(item.content)
    resolved = resolve(content, [*TINY, *overrides], None if data is None else str(data))
    return run_scenario(resolved, plugins, Settings(), say=lambda _: None)


@pytest.fixture
def aigc_plugins() -> Callable[..., Plugins]:
    """``aigc_plugins(plugin, ...)``: a fresh manager with the built-ins and these plugins."""
    return plugin_manager


@pytest.fixture
def aigc_tiny_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., RunResult]]:
    """``aigc_tiny_run(scenario, data=None, overrides=(), plugins=None)``: a tiny CPU run
    in a temporary ``AIGC_HOME``; returns the ``RunResult`` (output_dir, accepted, ...)."""
    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "aigc-home"))
    monkeypatch.delenv("AIGC_DATABASE_URL", raising=False)
    yield run_tiny_scenario
