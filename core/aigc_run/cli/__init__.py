"""The ``aigc-run`` command line.

Errors meant for users (``AigcError``) print two or three lines and exit non-zero; the
traceback appears only with ``--debug``. Torch, the registry and the plugins are imported
inside the commands that need them, so ``aigc-run --help`` starts fast.
"""

from __future__ import annotations

import traceback
from typing import Any

import click

from aigc_run import __version__
from aigc_run.contract.errors import AigcError


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


def _add_commands() -> None:
    from aigc_run.cli import plugins, run, runs

    for command in (
        plugins.plugins,
        plugins.plugin,
        plugins.scenarios,
        run.scenario,
        run.resume,
        run.sample,
        run.export,
        run.serve,
        run.evaluate,
        runs.runs,
        runs.report,
    ):
        main.add_command(command)


_add_commands()
