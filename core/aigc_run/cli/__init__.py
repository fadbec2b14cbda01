"""The ``aigc-run`` command line.

Errors meant for users (``AigcError``) print two or three lines and exit non-zero; the
traceback appears only with ``--debug``. Torch, the registry and the plugins are imported
inside the commands that need them, so ``aigc-run --help`` starts fast.
"""

from __future__ import annotations

import os
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


_JSON_HELP = "Print JSON, for scripts."
_NPROC = click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train in N processes on this machine with DistributedDataParallel "
    "(one per GPU, or gloo on the CPU). Started by torchrun, the ranks come from it instead.",
)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List the loaded plugins, their versions and the hooks they implement."""
    if ctx.invoked_subcommand:
        return
    loaded = _plugins()
    if as_json:
        from aigc_run.cli_registry import echo_json, plugins_json

        echo_json(plugins_json(loaded))
        return
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


@plugins.command("check")
@click.argument("name")
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, path_type=Path),
    help="Images for dataset sources that have no built-in data.",
)
def plugins_check(name: str, data_path: Path | None) -> None:
    """Check an installed plugin against the plugin contract: call every hook it
    implements and try what they return. Exits 1 when there are problems."""
    from aigc_run.conformance import check_installed

    report = check_installed(name, data_path)
    click.echo(str(report))
    if not report.ok:
        sys.exit(1)


@main.group()
def plugin() -> None:
    """Write a new plugin (see also `aigc-run plugins`)."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder to create (default ./aigc-NAME); it must be new or empty.",
)
def plugin_new(name: str, folder: Path | None) -> None:
    """Create an installable plugin package for a new industry NAME (e.g. textiles)."""
    from aigc_run.scaffold import new_plugin

    names, created, written = new_plugin(name, folder)
    click.echo(f"created {names.dist} in {created} ({len(written)} files):")
    for path in written:
        click.echo(f"  {path.relative_to(created)}")
    click.echo("next:")
    click.echo(f'  pip install -e "{created}[test]"')
    click.echo(f"  aigc-run plugins check {names.name}")
    click.echo(f"  cd {created} && python -m pytest")
    click.echo(f"  aigc-run scenario {names.name}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def scenarios(as_json: bool) -> None:
    """List the scenarios the installed plugins ship."""
    found = _plugins().scenarios()
    if as_json:
        from aigc_run.cli_registry import echo_json

        echo_json(
            [
                {"name": n, "plugin": c.plugin, "description": c.item.description}
                for n, c in sorted(found.items())
            ]
        )
        return
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
@_NPROC
def scenario(
    name_or_file: str, data_path: str | None, overrides: tuple[str, ...], quiet: bool, nproc: int
) -> None:
    """Run a scenario by name (see `aigc-run scenarios`) or from a TOML file."""
    from aigc_run import scenario as scenarios_module

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        extra = [a for o in overrides for a in ("--set", o)]
        extra += ["--data", data_path] if data_path else []
        _launch(nproc, ["scenario", name_or_file, *extra, *(["--quiet"] if quiet else [])])
    loaded = _plugins()
    content = _scenario_content(name_or_file, loaded)
    resolved = scenarios_module.resolve(content, overrides, data_path)
    from aigc_run import distributed
    from aigc_run.engine import run_scenario

    with distributed.session() as ranks:
        say, progress = _output(ranks.main, quiet)
        result = run_scenario(resolved, loaded, Settings(), say=say, progress=progress)
    if ranks.main:
        _report_result(result)


@main.command()
@click.argument("run_id", type=int)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_NPROC
def resume(run_id: int, quiet: bool, nproc: int) -> None:
    """Continue an interrupted or failed run from its last checkpoint."""
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        _launch(nproc, ["resume", str(run_id), *(["--quiet"] if quiet else [])])
    from aigc_run import distributed
    from aigc_run.resume import resume_run

    with distributed.session() as ranks:
        say, progress = _output(ranks.main, quiet)
        result = resume_run(run_id, _plugins(), Settings(), say=say, progress=progress)
    if ranks.main:
        _report_result(result)


def _launch(nproc: int, argv: list[str]) -> None:
    """Run the command in ``nproc`` worker processes instead of this one, then exit."""
    from aigc_run.distributed import launch

    ctx = click.get_current_context()
    debug = ["--debug"] if ctx.find_root().meta.get("aigc_debug") else []
    ctx.exit(launch(nproc, [*debug, *argv]))


def _output(main_rank: bool, quiet: bool) -> tuple[Any, Any]:
    """What the command prints: everything on rank 0, nothing on the other ranks."""
    if main_rank:
        return click.echo, _progress(quiet)
    return (lambda _: None), _progress(True)


@main.command("sample")
@click.argument("run_id", type=int)
@click.option("--count", type=click.IntRange(1, 10_000_000), help="New samples to draw.")
@click.option(
    "--regenerate",
    "indices",
    type=click.IntRange(0),
    multiple=True,
    help="Redraw sample INDEX exactly (repeat for several).",
)
@click.option("--seed", type=int, help="Sampling seed (default: the run's sample.seed).")
@click.option("--checkpoint", "step", type=int, help="Checkpoint step (default: the last).")
@click.option(
    "--out",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write to (default: a new folder in the run's output folder).",
)
def sample(
    run_id: int,
    count: int | None,
    indices: tuple[int, ...],
    seed: int | None,
    step: int | None,
    folder: Path | None,
) -> None:
    """Draw more samples from a trained run, or redraw given ones exactly."""
    from aigc_run.errors import ConfigError
    from aigc_run.more_samples import default_folder, load_trained, regenerate, sample_more

    if (count is None) == (not indices):
        raise ConfigError(
            "give either --count N or --regenerate INDEX",
            "e.g. aigc-run sample 3 --count 1000, or aigc-run sample 3 --regenerate 17",
        )
    plugins = _plugins()
    trained = load_trained(run_id, step, plugins, Settings())
    seed = trained.scenario.sample.seed if seed is None else seed
    if indices:
        folder = folder or default_folder(trained, "regenerated")
        for path in regenerate(trained, indices, seed, folder):
            click.echo(str(path))
        return
    assert count is not None
    folder = folder or default_folder(trained, "samples")
    result = sample_more(trained, plugins, count, seed, folder)
    click.echo(
        f"{result.accepted} samples of {result.generated} drawn (run {run_id}, checkpoint "
        f"step {trained.step}, seed {seed}) in {folder}; manifest: {folder / 'manifest.csv'}"
    )


def _progress(quiet: bool) -> Any:
    from tqdm.auto import tqdm

    def progress(*args: Any, **kwargs: Any) -> Any:
        return tqdm(*args, disable=quiet, dynamic_ncols=True, **kwargs)

    return progress


def _report_result(result: Any) -> None:
    click.echo(
        f"run {result.run_id} completed in {result.seconds:.0f} s: {result.accepted} "
        f"samples in {result.output_dir / 'samples'}"
    )
    click.echo(f"manifest: {result.output_dir / 'manifest.csv'}")
    if result.accepted:
        click.echo(f"contact sheet: {result.contact_sheet}")
    if result.report is not None:
        click.echo(f"report: {result.report}")


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
@click.option(
    "--status",
    type=click.Choice(["running", "completed", "failed", "interrupted", "deleting"]),
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only runs started since WHEN: a date (2026-05-01), a time, or an age like 7d, 12h.",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.pass_context
def runs(
    ctx: click.Context,
    limit: int,
    scenario_name: str | None,
    status: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """List recorded runs, newest first."""
    if ctx.invoked_subcommand:
        return
    from aigc_run.cli_registry import echo_json, parse_since, to_json

    since_time = parse_since(since) if since is not None else None
    registry = _registry()
    found = registry.list_runs(limit=limit, scenario=scenario_name, status=status, since=since_time)
    if as_json:
        echo_json([to_json(r) for r in found])
        return
    if not found and (scenario_name or status or since):
        click.echo("no runs match")
    elif not found:
        click.echo("no runs recorded yet: try `aigc-run scenario ecommerce`")
    for r in found:
        duration = f"{r.duration_s:.0f}s" if r.duration_s is not None else "-"
        click.echo(
            f"{r.id:>5}  {r.scenario:<16} {r.status:<11} {r.device:<6} "
            f"{r.started_at:%Y-%m-%d %H:%M}  {duration}"
        )


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
def runs_show(run_id: int, as_json: bool) -> None:
    """Show one run: config, checkpoints, metrics, samples."""
    d = _registry().get_run(run_id)
    if as_json:
        from aigc_run.cli_registry import echo_json, to_json

        echo_json(to_json(d))
        return
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
    from aigc_run.report import rejected_by_filter

    s = d.samples
    click.echo(
        f"  samples: {s.total} generated, {s.accepted} accepted"
        + "".join(
            f"; rejected by {k}: {v}" for k, v in rejected_by_filter(s.rejected_by_reason).items()
        )
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


def _add_registry_commands() -> None:
    from aigc_run import cli_registry

    runs.add_command(cli_registry.runs_compare)
    runs.add_command(cli_registry.runs_delete)
    main.add_command(cli_registry.report)


_add_registry_commands()


def _registry() -> Any:
    from aigc_run.registry import Registry

    registry = Registry(Settings().registry_url)
    registry.reap_dead_runs()  # a run whose process was killed shows as interrupted, not running
    return registry


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
