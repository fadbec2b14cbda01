"""The commands that train, sample or evaluate: ``scenario``, ``resume``, ``sample``,
``evaluate``. Each hands the work to aigc_run.run and prints what came of it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from aigc_run.cli.common import NPROC, load_plugins, output
from aigc_run.contract.errors import AigcError, ConfigError
from aigc_run.contract.kinds import SCENARIOS
from aigc_run.settings import Settings


@click.command()
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
@click.option(
    "--init-from",
    metavar="RUN_ID",
    help="Start from a trained run's model instead of random weights (train.init_from).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@NPROC
def scenario(
    name_or_file: str,
    data_path: str | None,
    overrides: tuple[str, ...],
    init_from: str | None,
    quiet: bool,
    nproc: int,
) -> None:
    """Run a scenario by name (see `aigc-run scenarios`) or from a TOML file."""
    from aigc_run import scenario as scenarios_module

    if init_from is not None:  # the same as --set train.init_from=..., and it wins over that
        overrides = (*overrides, f"train.init_from={init_from}")

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        extra = [a for o in overrides for a in ("--set", o)]
        extra += ["--data", data_path] if data_path else []
        _launch(nproc, ["scenario", name_or_file, *extra, *(["--quiet"] if quiet else [])])
    loaded = load_plugins()
    content = _scenario_content(name_or_file, loaded)
    resolved = scenarios_module.resolve(content, overrides, data_path)
    from aigc_run import dist, threads
    from aigc_run.run.engine import run_scenario

    threads.apply(threads.choose(resolved.train.threads))
    with dist.session(resolved.train.device) as ranks:
        say, progress = output(ranks.main, quiet)
        result = run_scenario(resolved, loaded, Settings(), say=say, progress=progress)
    if ranks.main:
        _report_result(result)


@click.command()
@click.argument("run_id", type=int)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@NPROC
def resume(run_id: int, quiet: bool, nproc: int) -> None:
    """Continue an interrupted or failed run from its last checkpoint."""
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        _launch(nproc, ["resume", str(run_id), *(["--quiet"] if quiet else [])])
    from aigc_run import dist, threads
    from aigc_run.run.resume import resume_run

    threads.apply(threads.choose("auto"))  # the run's own train.threads, when a number, wins

    device = _recorded_device(run_id) if "WORLD_SIZE" in os.environ else "auto"
    with dist.session(device) as ranks:
        say, progress = output(ranks.main, quiet)
        result = resume_run(run_id, load_plugins(), Settings(), say=say, progress=progress)
    if ranks.main:
        _report_result(result)


def _recorded_device(run_id: int) -> str:
    """The train.device run ``run_id`` was recorded with ("auto" when it cannot be read:
    resuming it then says what is wrong)."""
    from aigc_run.registry import Registry

    try:
        registry = Registry(Settings().registry_url)
        try:
            return str(registry.get_run(run_id).config.get("train", {}).get("device", "auto"))
        finally:
            registry.close()
    except AigcError:
        return "auto"


def _launch(nproc: int, argv: list[str]) -> None:
    """Run the command in ``nproc`` worker processes instead of this one, then exit."""
    from aigc_run.cli.launch import launch

    ctx = click.get_current_context()
    debug = ["--debug"] if ctx.find_root().meta.get("aigc_debug") else []
    ctx.exit(launch(nproc, [*debug, *argv]))


@click.command("sample")
@click.argument("run_id", type=int)
@click.option("--count", type=click.IntRange(1, 10_000_000), help="New samples to draw.")
@click.option(
    "--regenerate",
    "indices",
    type=click.IntRange(0),
    multiple=True,
    help="Redraw sample INDEX exactly (repeat for several).",
)
@click.option(
    "--class",
    "classes",
    multiple=True,
    metavar="NAME",
    help="Draw only this class (any case; repeat for several).",
)
@click.option(
    "--proportions",
    type=click.Choice(["even", "data"]),
    default="even",
    show_default=True,
    help="Classes evenly, or as often as in the run's training data.",
)
@click.option(
    "--truncation",
    "psi",
    type=click.FloatRange(0, 1, min_open=True),
    default=1.0,
    show_default=True,
    help="Scale each sample's noise by PSI: below 1, fewer odd samples and less variety.",
)
@click.option(
    "--interpolate",
    "ends",
    type=(click.IntRange(0), click.IntRange(0)),
    metavar="INDEX_A INDEX_B",
    help="Write the frames of a walk from sample INDEX_A to INDEX_B, and a GIF.",
)
@click.option("--frames", type=click.IntRange(2, 1000), default=16, show_default=True)
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
    classes: tuple[str, ...],
    proportions: str,
    psi: float,
    ends: tuple[int, int] | None,
    frames: int,
    seed: int | None,
    step: int | None,
    folder: Path | None,
) -> None:
    """Draw more samples from a trained run, or redraw given ones exactly."""
    from aigc_run.contract.errors import ConfigError
    from aigc_run.run.more_samples import (
        class_plan,
        default_folder,
        interpolate,
        load_trained,
        regenerate,
        sample_more,
    )

    if sum((count is not None, bool(indices), ends is not None)) != 1:
        raise ConfigError(
            "give one of --count N, --regenerate INDEX or --interpolate INDEX_A INDEX_B",
            "e.g. aigc-run sample 3 --count 1000, or aigc-run sample 3 --regenerate 17",
        )
    from aigc_run import threads

    threads.apply(threads.choose("auto"))
    plugins = load_plugins()
    trained = load_trained(run_id, step, plugins, Settings())
    seed = trained.scenario.sample.seed if seed is None else seed
    if ends is not None:
        folder = folder or default_folder(trained, f"walk-{ends[0]}-{ends[1]}")
        for path in interpolate(trained, ends, frames, seed, folder, psi):
            click.echo(str(path))
        return
    if indices:
        if classes or proportions != "even":
            raise ConfigError(
                "--regenerate redraws the given indices; their classes follow from them",
                "leave out --class and --proportions (give --truncation as they were drawn)",
            )
        folder = folder or default_folder(trained, "regenerated")
        for path in regenerate(trained, indices, seed, folder, psi):
            click.echo(str(path))
        return
    assert count is not None
    plan = class_plan(trained, classes, proportions)
    folder = folder or default_folder(trained, "samples")
    result = sample_more(trained, plugins, count, seed, folder, plan, psi)
    click.echo(
        f"{samples(result.accepted)} of {result.generated} drawn (run {run_id}, checkpoint "
        f"step {trained.step}, seed {seed}) in {folder}; manifest: {folder / 'manifest.csv'}"
    )


@click.command("export")
@click.argument("run_id", type=int)
@click.option(
    "--out",
    "folder",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="New or empty folder to write the export to.",
)
@click.option("--checkpoint", "step", type=int, help="Checkpoint step (default: the last).")
@click.option(
    "--no-reference",
    is_flag=True,
    help="Leave out the training images the filters compare against (then the export "
    "draws unfiltered).",
)
def export(run_id: int, folder: Path, step: int | None, no_reference: bool) -> None:
    """Write a trained run as a self-contained folder: weights, config, model card.

    aigc_run.load(FOLDER) draws from it with no registry and no training data."""
    from aigc_run.run.export import export as write_export

    settings = Settings()
    done = write_export(run_id, folder, load_plugins(), settings, step, not no_reference)
    click.echo(f"run {run_id} exported to {done}; model card: {done / 'README.md'}")


@click.command("serve")
@click.argument("source", metavar="RUN_ID|EXPORT_DIR")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--device", help="cpu, cuda, cuda:1 (default: CUDA when there is a GPU).")
@click.option(
    "--max-count",
    type=click.IntRange(1, 10_000),
    default=64,
    show_default=True,
    help="Most images one request may ask for.",
)
@click.option(
    "--batch-wait",
    type=click.FloatRange(0, 10_000),
    default=5.0,
    show_default=True,
    metavar="MS",
    help="Milliseconds to wait after a request for others to draw with it (latency for "
    "throughput).",
)
def serve(
    source: str, host: str, port: int, device: str | None, max_count: int, batch_wait: float
) -> None:
    """Serve a trained run (or an export folder) over HTTP: /generate, /classes, /health.

    Needs the serve extra: pip install "aigc-run[serve]". Set AIGC_API_KEY to require
    Authorization: Bearer <key> on every route but /health."""
    import importlib
    import os

    from aigc_run.contract.errors import ConfigError

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise ConfigError(
            "aigc-run serve needs FastAPI and uvicorn, which are not installed",
            'pip install "aigc-run[serve]"',
        )
    from aigc_run import load, threads
    from aigc_run.serve import KEY_VARIABLE
    from aigc_run.serve import serve as run_server

    threads.apply(threads.choose("auto"))
    model = load(int(source) if source.isdigit() else source, device=device or "auto")
    if host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get(KEY_VARIABLE):
        click.echo(
            f"warning: serving on {host} without {KEY_VARIABLE}: anyone who can reach "
            f"port {port} can generate images",
            err=True,
        )
    click.echo(f"serving {model} on http://{host}:{port} (API docs: /docs); Ctrl-C stops")
    run_server(model, host, port, max_count, batch_wait / 1000)


def samples(count: int) -> str:
    return f"{count} sample" if count == 1 else f"{count} samples"


def _report_result(result: Any) -> None:
    click.echo(
        f"run {result.run_id} completed in {result.seconds:.0f} s: {samples(result.accepted)} "
        f"in {result.output_dir / 'samples'}"
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
    found = loaded.contributions(SCENARIOS)
    if name_or_file not in found:
        raise ConfigError(
            f"no scenario named {name_or_file!r}",
            f"installed: {', '.join(sorted(found)) or 'none'}; or give a path to a .toml file",
        )
    item = found[name_or_file].item
    return read_toml(item.path) if item.path is not None else dict(item.content)


@click.command()
@click.argument("run_id", type=int)
@click.option("--metrics", help="Comma-separated metric names; default: the run's own.")
@click.option("--samples", type=int, help="Generated images to compare (evaluate.samples).")
@click.option("--features", help="Comma-separated feature spaces: domain, inception.")
def evaluate(run_id: int, metrics: str | None, samples: int | None, features: str | None) -> None:
    """Evaluate a finished run again, from its final checkpoint (docs/evaluation.md)."""
    from aigc_run import threads
    from aigc_run.evaluation import describe
    from aigc_run.run.rerun import evaluate_run

    threads.apply(threads.choose("auto"))

    def names(text: str | None) -> list[str] | None:
        return None if text is None else [n.strip() for n in text.split(",") if n.strip()]

    figures = evaluate_run(
        run_id, load_plugins(), Settings(), names(metrics), samples, names(features), click.echo
    )
    for line in describe(figures):
        click.echo(line)
