"""Errors that reach users: a message saying what was wrong and a hint saying what to do.

The CLI prints ``message`` and ``hint`` in two or three lines and exits non-zero; the
traceback is shown only with ``--debug``.
"""

from __future__ import annotations


class AigcError(Exception):
    """Base of every error meant for a user."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(AigcError):
    """A scenario, setting or ``--set`` value is invalid."""

    exit_code = 2


class DataError(AigcError):
    """The data a scenario points at cannot be used."""


class PluginError(AigcError):
    """A plugin failed to load, raised in a hook, or returned the wrong thing."""

    def __init__(self, plugin: str, hook: str, problem: str, hint: str = "") -> None:
        super().__init__(
            f"plugin {plugin!r} failed in hook {hook!r}: {problem}",
            hint
            or f"fix or update the plugin, or switch it off with AIGC_DISABLE_PLUGINS={plugin}",
        )
        self.plugin = plugin
        self.hook = hook


class RegistryError(AigcError):
    """The run registry cannot be opened or written."""


class PluginCheckError(AigcError):
    """A plugin failed its conformance check (``aigc_run.testing.check_plugin``)."""

    def __init__(self, plugin: str, problems: list[str]) -> None:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"plugin {plugin!r} has {len(problems)} problem(s):\n{listed}",
            "see docs/plugins.md for what each hook must return",
        )
        self.plugin = plugin
        self.problems = problems


def describe(error: BaseException) -> str:
    """An exception in a few words for a message: ``ValueError: bad size``."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
