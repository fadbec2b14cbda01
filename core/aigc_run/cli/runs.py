"""``aigc-run runs`` (list, show, compare, delete) and ``report``: the recorded runs."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from aigc_run.cli.common import JSON_HELP, echo_json, open_registry, parse_since, to_json
from aigc_run.contract.errors import AigcError
from aigc_run.settings import Settings


@click.group(invoke_without_command=True)
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
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
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
    since_time = parse_since(since) if since is not None else None
    registry = open_registry()
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
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def runs_show(run_id: int, as_json: bool) -> None:
    """Show one run: config, checkpoints, metrics, samples."""
    d = open_registry().get_run(run_id)
    if as_json:
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
    if d.parent:
        click.echo(f"  started from: {d.started_from()}")
    if d.dataset:
        classes = ", ".join(d.dataset["classes"]) or "unlabelled"
        click.echo(
            f"  dataset: {d.dataset['images']} images, {d.dataset['channels']} channel(s), "
            f"{d.dataset['image_size']} px; classes: {classes}"
        )
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
        + "".join(
            f"; rejected by {k}: {v}" for k, v in s.rejected_by_filter.items()
        )
    )
    from aigc_run.evaluation import describe

    for line in describe(d.evaluations):
        click.echo(f"  {line}")


# ---------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _rows(values: Sequence[Mapping[str, Any]], sort: bool = False) -> dict[str, list[Any]]:
    """key -> one value per run (None where a run lacks the key), keys in first-seen order."""
    keys = list(dict.fromkeys(k for v in values for k in v))
    return {k: [v.get(k) for v in values] for k in (sorted(keys) if sort else keys)}


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 28 else text[:27] + "…"


@runs.command("compare")
@click.argument("run_ids", type=int, nargs=-1, required=True)
@click.option("--diff-only", is_flag=True, help="Only the config values that differ.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
def runs_compare(run_ids: tuple[int, ...], diff_only: bool, as_json: bool) -> None:
    """Compare runs side by side: config (differences marked *), metrics, evaluations."""
    if len(run_ids) < 2:
        raise click.UsageError("give two or more run ids, e.g. `aigc-run runs compare 3 5`")
    registry = open_registry()
    details = [registry.get_run(i) for i in run_ids]
    sections = {
        "run": _rows(
            [
                {
                    "scenario": d.scenario,
                    "status": d.status,
                    "device": d.device,
                    "started": d.started_at.strftime("%Y-%m-%d %H:%M"),
                    "samples accepted": d.samples.accepted,
                    "samples generated": d.samples.total,
                }
                for d in details
            ]
        ),
        "config": _rows([_flatten(d.config) for d in details]),
        "last training metrics": _rows([d.metrics for d in details], sort=True),
        "evaluations": _rows([d.evaluations for d in details], sort=True),
    }
    if as_json:
        echo_json(
            {
                "runs": list(run_ids),
                **{
                    name: {k: {"values": v, "differs": _differs(v)} for k, v in rows.items()}
                    for name, rows in sections.items()
                },
            }
        )
        return
    width = max(len(k) for rows in sections.values() for k in rows) + 2
    column = max(
        12, *(len(_show(v)) + 2 for rows in sections.values() for vs in rows.values() for v in vs)
    )
    header = " " * (width + 2) + "".join(f"{'run ' + str(i):<{column}}" for i in run_ids)
    click.echo(header.rstrip())
    for name, rows in sections.items():
        click.echo(name)
        for key, values in rows.items():
            differs = _differs(values)
            if diff_only and name == "config" and not differs:
                continue
            mark = "*" if differs else " "
            line = f"{mark} {key:<{width}}" + "".join(f"{_show(v):<{column}}" for v in values)
            line = line.rstrip()
            click.echo(click.style(line, bold=True) if differs else line)


def _differs(values: Sequence[Any]) -> bool:
    first = json.dumps(to_json(values[0]), sort_keys=True)
    return any(json.dumps(to_json(v), sort_keys=True) != first for v in values[1:])


# ---------------------------------------------------------------------------------------
# delete
# ---------------------------------------------------------------------------------------


def _refuse_folder(folder: Path, settings: Settings) -> str | None:
    """Why ``folder`` must not be removed whole, or None. Guards against a run whose
    recorded output folder is somewhere broad (``output.folder`` points where the user
    chose); the run's own files are all inside it."""
    resolved = folder.resolve()
    broad = {Path(resolved.anchor), Path.home().resolve(), settings.home.resolve()}
    if resolved in broad or resolved == settings.runs_dir.resolve():
        return f"{folder} is not a run's own folder"
    database = settings.registry_url.removeprefix("sqlite:///")
    if settings.database_url is None and Path(database).resolve().is_relative_to(resolved):
        return f"{folder} holds the run registry itself"
    if Path.cwd().resolve().is_relative_to(resolved):
        return f"{folder} holds the current directory"
    return None


def _size(folder: Path) -> str:
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    return f"{total / 1e6:.1f} MB"


@runs.command("delete")
@click.argument("run_ids", type=int, nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Do not ask; for scripts.")
def runs_delete(run_ids: tuple[int, ...], yes: bool) -> None:
    """Delete runs: their output folders and everything recorded about them.

    A run is first marked 'deleting', then its folder is removed, then its records: if
    removing files fails, the run stays listed as 'deleting' and deleting it again finishes
    the job. A running run is refused.
    """
    settings = Settings()
    registry = open_registry()
    details = [registry.get_run(i) for i in dict.fromkeys(run_ids)]  # unknown ids fail first
    for d in details:
        if d.status == "running":
            raise AigcError(
                f"run {d.id} is running (process {d.pid} on {d.hostname}); nothing was deleted",
                "stop it first (Ctrl-C), or leave it out",
            )
        folder = Path(d.output_dir)
        if folder.exists() and (why := _refuse_folder(folder, settings)):
            raise AigcError(
                f"run {d.id}: will not remove its output folder: {why}; nothing was deleted",
                "remove the run's files by hand, then delete it again",
            )
    here = socket.gethostname()
    for d in details:
        folder = Path(d.output_dir)
        if folder.exists():
            where = f"{folder} ({_size(folder)})"
        elif d.hostname != here:
            where = f"its files are on {d.hostname} and stay there"
        else:
            where = "no files left"
        click.echo(f"run {d.id}  {d.scenario}  {d.status}  {where}")
    if not yes:
        click.confirm(f"Delete {len(details)} run(s) and their files?", abort=True)
    for d in details:
        registry.start_deleting(d.id)
        folder = Path(d.output_dir)
        try:
            if folder.is_symlink():
                folder.unlink()  # never follow it: what it points at is not the run's
            elif folder.exists():
                shutil.rmtree(folder)
        except OSError as e:
            raise AigcError(
                f"run {d.id}: could not remove {folder}: {e}; the run stays listed as 'deleting'",
                f"fix the cause, then run `aigc-run runs delete {d.id}` again",
            ) from e
        registry.delete_rows(d.id)
        click.echo(f"deleted run {d.id}")


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------


@click.command()
@click.argument("run_id", type=int)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page (default: report.html in the run's folder); its pictures "
    "go to a folder beside it.",
)
def report(run_id: int, out: Path | None) -> None:
    """Write an HTML report of a run: config, curves, samples, filters, evaluations."""
    from aigc_run.report import write_report

    path = write_report(open_registry(), run_id, out)
    click.echo(f"report: {path}")
