"""The ``aigc-run`` command line.

Errors meant for users (``AigcError``) print two or three lines and exit non-zero; the
traceback appears only with ``--debug``. Torch, the registry and the plugins are imported
inside the commands that need them, so ``aigc-run --help`` starts fast.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import click

from aigc_run import __version__
from aigc_run.errors import AigcError, ConfigError
from aigc_run.settings import Settings


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AigcError as e:
            if ctx.meta.get("aigc_debug"):
                traceback.print_exc()
            click.secho(f"Error: {e.message}", fg="red", err=True)
            if e.hint:
                click.echo(f"Hint: {e.hint}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=_Cli)
@click.option("--debug", is_flag=True, help="Show the full traceback of errors.")
@click.version_option(__version__, prog_name="aigc-run")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Train generative image models for your industry, filter and write their samples."""
    ctx.meta["aigc_debug"] = debug


def _plugins() -> Any:
    from aigc_run.plugins import load_plugins

    return load_plugins(Settings().disabled)


@main.command()
def plugins() -> None:
    """List the loaded plugins, their versions and the hooks they implement."""
    loaded = _plugins()
    for name, version in loaded.versions.items():
        click.echo(f"{name} {version}")
        click.echo(f"  hooks: {', '.join(loaded.hooks_of(name))}")
    for hook, label in (
        ("register_datasets", "datasets"),
        ("register_preprocessors", "steps"),
        ("register_quality_filters", "filters"),
        ("register_model_families", "model families"),
        ("register_sample_writers", "writers"),
        ("register_metrics", "metrics"),
    ):
        found = loaded.contributions(hook)
        if found:
            click.echo(
                f"{label}: " + ", ".join(f"{n} ({c.plugin})" for n, c in sorted(found.items()))
            )


@main.command()
def scenarios() -> None:
    """List the scenarios the installed plugins ship."""
    found = _plugins().scenarios()
    if not found:
        click.echo("no scenarios installed: pip install aigc-ecommerce or aigc-medical")
    for name, contribution in sorted(found.items()):
        click.echo(f"{name:<20} {contribution.plugin:<14} {contribution.item.description}")


@main.command()
@click.argument("name_or_file")
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=str),
    help="Your data: a folder or file the scenario's dataset source reads.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override a scenario value, e.g. --set train.steps=2000 (repeatable).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def scenario(
    name_or_file: str, data_path: str | None, overrides: tuple[str, ...], quiet: bool
) -> None:
    """Run a scenario by name (see `aigc-run scenarios`) or from a TOML file."""
    from aigc_run import scenario as scenarios_module

    loaded = _plugins()
    content = _scenario_content(name_or_file, loaded)
    resolved = scenarios_module.resolve(content, overrides, data_path)
    from tqdm.auto import tqdm

    from aigc_run.engine import run_scenario

    def progress(*args: Any, **kwargs: Any) -> Any:
        return tqdm(*args, disable=quiet, dynamic_ncols=True, **kwargs)

    result = run_scenario(resolved, loaded, Settings(), say=click.echo, progress=progress)
    click.echo(
        f"run {result.run_id} completed in {result.seconds:.0f} s: {result.accepted} "
        f"samples in {result.output_dir / 'samples'}"
    )
    click.echo(f"manifest: {result.output_dir / 'manifest.csv'}")
    if result.accepted:
        click.echo(f"contact sheet: {result.contact_sheet}")


def _scenario_content(name_or_file: str, loaded: Any) -> dict[str, Any]:
    from aigc_run.scenario import read_toml

    path = Path(name_or_file)
    if path.suffix == ".toml" or path.is_file():
        return read_toml(path)
    found = loaded.scenarios()
    if name_or_file not in found:
        raise ConfigError(
            f"no scenario named {name_or_file!r}",
            f"installed: {', '.join(sorted(found)) or 'none'}; or give a path to a .toml file",
        )
    item = found[name_or_file].item
    return read_toml(item.path) if item.path is not None else dict(item.content)


@main.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@click.option("--scenario", "scenario_name", help="Only runs of this scenario.")
@click.option("--status", type=click.Choice(["running", "completed", "failed", "interrupted"]))
@click.pass_context
def runs(ctx: click.Context, limit: int, scenario_name: str | None, status: str | None) -> None:
    """List recorded runs, newest first."""
    if ctx.invoked_subcommand:
        return
    registry = _registry()
    found = registry.list_runs(limit=limit, scenario=scenario_name, status=status)
    if not found:
        click.echo("no runs recorded yet: try `aigc-run scenario ecommerce`")
    for r in found:
        duration = f"{r.duration_s:.0f}s" if r.duration_s is not None else "-"
        click.echo(
            f"{r.id:>5}  {r.scenario:<16} {r.status:<11} {r.device:<6} "
            f"{r.started_at:%Y-%m-%d %H:%M}  {duration}"
        )


@runs.command("show")
@click.argument("run_id", type=int)
def runs_show(run_id: int) -> None:
    """Show one run: config, checkpoints, metrics, samples."""
    d = _registry().get_run(run_id)
    click.echo(f"run {d.id}: {d.scenario} [{d.status}] on {d.device}")
    click.echo(
        f"  started {d.started_at:%Y-%m-%d %H:%M:%S}"
        + (f", ended {d.ended_at:%Y-%m-%d %H:%M:%S}" if d.ended_at else "")
    )
    if d.error:
        click.echo(f"  error: {d.error}")
    click.echo(f"  output: {d.output_dir}")
    click.echo("  plugins: " + ", ".join(f"{k} {v}" for k, v in d.plugins.items()))
    for section in ("data", "model", "train", "sample", "filters"):
        click.echo(f"  {section}: {d.config.get(section)}")
    for step, path, digest in d.checkpoints:
        click.echo(f"  checkpoint step {step}: {path} (sha256 {digest[:12]})")
    if d.metrics:
        click.echo("  last metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in d.metrics.items()))
    s = d.samples
    click.echo(
        f"  samples: {s.total} generated, {s.accepted} accepted"
        + "".join(f"; rejected by {k}: {v}" for k, v in s.rejected_by_reason.items())
    )
    from aigc_run.evaluation import describe

    for line in describe(d.evaluations):
        click.echo(f"  {line}")


@main.command()
@click.argument("run_id", type=int)
@click.option("--metrics", help="Comma-separated metric names; default: the run's own.")
@click.option("--samples", type=int, help="Generated images to compare (evaluate.samples).")
@click.option("--features", help="Comma-separated feature spaces: domain, inception.")
def evaluate(run_id: int, metrics: str | None, samples: int | None, features: str | None) -> None:
    """Evaluate a finished run again, from its final checkpoint (docs/evaluation.md)."""
    from aigc_run.evaluation import describe
    from aigc_run.evaluation.rerun import evaluate_run

    def names(text: str | None) -> list[str] | None:
        return None if text is None else [n.strip() for n in text.split(",") if n.strip()]

    figures = evaluate_run(
        run_id, _plugins(), Settings(), names(metrics), samples, names(features), click.echo
    )
    for line in describe(figures):
        click.echo(line)


def _registry() -> Any:
    from aigc_run.registry import Registry

    registry = Registry(Settings().registry_url)
    registry.reap_dead_runs()  # a run whose process was killed shows as interrupted, not running
    return registry


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
