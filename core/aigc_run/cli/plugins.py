"""``aigc-run plugins``, ``plugins check``, ``plugin new`` and ``scenarios``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from aigc_run.cli.common import JSON_HELP, echo_json, load_plugins
from aigc_run.contract.kinds import KINDS, SCENARIOS


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List the loaded plugins, their versions and the hooks they implement."""
    if ctx.invoked_subcommand:
        return
    loaded = load_plugins()
    if as_json:
        echo_json(plugins_json(loaded))
        return
    for name, version in loaded.versions.items():
        click.echo(f"{name} {version}")
        click.echo(f"  hooks: {', '.join(loaded.hooks_of(name))}")
    for kind in KINDS:
        found = loaded.contributions(kind)
        if found:
            click.echo(
                f"{kind.label}: " + ", ".join(f"{n} ({c.plugin})" for n, c in sorted(found.items()))
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


@click.group()
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def scenarios(as_json: bool) -> None:
    """List the scenarios the installed plugins ship."""
    found = load_plugins().contributions(SCENARIOS)
    if as_json:
        echo_json(
            [
                {"name": n, "plugin": c.plugin, "description": c.item.description}
                for n, c in sorted(found.items())
            ]
        )
        return
    if not found:
        click.echo("no scenarios installed: pip install aigc-ecommerce or aigc-medical")
    names = max((len(n) for n in found), default=0)
    plugins = max((len(c.plugin) for c in found.values()), default=0)
    for name, contribution in sorted(found.items()):  # columns as wide as their longest
        plugin, description = contribution.plugin, contribution.item.description
        click.echo(f"{name:<{names}}  {plugin:<{plugins}}  {description}")


def plugins_json(loaded: Any) -> dict[str, Any]:
    return {
        "plugins": [
            {"name": name, "version": version, "hooks": loaded.hooks_of(name)}
            for name, version in loaded.versions.items()
        ],
        **{
            kind.name: [
                {"name": n, "plugin": c.plugin}
                for n, c in sorted(loaded.contributions(kind).items())
            ]
            for kind in KINDS
        },
    }
