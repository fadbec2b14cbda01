"""What the command modules share: plugins and the registry opened once per command, the
progress display, JSON output for scripts and ``--since`` parsing.

Nothing heavy is imported at module level: the CLI imports this module at start.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from aigc_run.cli.progress import progress_bars
from aigc_run.settings import Settings

JSON_HELP = "Print JSON, for scripts."
NPROC = click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train in N processes on this machine with DistributedDataParallel "
    "(one per GPU, or gloo on the CPU). Started by torchrun, the ranks come from it instead.",
)


def load_plugins() -> Any:
    from aigc_run.plugins import load_plugins

    return load_plugins(Settings().disabled)


def open_registry() -> Any:
    from aigc_run.registry import Registry

    registry = Registry(Settings().registry_url)
    registry.reap_dead_runs()  # a run whose process was killed shows as interrupted, not running
    return registry


def output(main_rank: bool, quiet: bool) -> tuple[Any, Any]:
    """What a command prints: everything on rank 0, nothing on the other ranks."""
    if main_rank:
        return click.echo, progress_bars(quiet)
    return (lambda _: None), progress_bars(True)


_AGE = re.compile(r"(\d+)\s*([mhdw])")
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` ago, or an ISO date or time (local time if no zone)."""
    if age := _AGE.fullmatch(text.strip()):
        amount, unit = age.groups()
        return datetime.now(UTC) - timedelta(**{_AGE_UNITS[unit]: int(amount)})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a date (2026-05-01), a time (2026-05-01T14:00) nor an age "
            "(30m, 12h, 7d, 2w)",
            param_hint="'--since'",
        ) from None
    return when.astimezone(UTC)  # a naive time is taken as local time


def to_json(value: Any) -> Any:
    """Registry records as JSON values: datetimes in ISO 8601, NaN as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "_asdict"):  # a NamedTuple
        return to_json(value._asdict())
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def echo_json(value: Any) -> None:
    click.echo(json.dumps(to_json(value), indent=2, allow_nan=False))
