"""``aigc-run plugin new NAME``: write a new, installable plugin package from templates.

The templates under ``templates/`` are ``string.Template`` files shipped as package data;
``PACKAGE`` and ``NAME`` in their paths become the import package and the plugin name.
Every file is rendered before the first one is written, and nothing is ever overwritten:
the target folder must be new or empty.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from packaging.version import Version

from aigc_run import __version__
from aigc_run.contract.errors import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
RESERVED = {"run"}  # aigc-run is the engine itself


@dataclass(frozen=True)
class PluginNames:
    name: str  # the entry-point name: "satellite-tiles"
    dist: str  # the distribution: "aigc-satellite-tiles"
    package: str  # the import package: "aigc_satellite_tiles"
    title: str  # for prose: "satellite tiles"


def plugin_names(name: str) -> PluginNames:
    """Check a plugin name and derive the others from it; ``aigc-`` in front is dropped."""
    short = name.removeprefix("aigc-")
    if not _NAME.match(short) or len(short) > 40:
        suggestion = re.sub(r"[^a-z0-9]+", "-", short.lower()).strip("-")
        hint = "use lowercase letters and digits, words joined by '-', starting with a letter"
        if suggestion and _NAME.match(suggestion) and suggestion != short:
            hint += f", e.g. {suggestion!r}"
        raise ConfigError(f"{name!r} is not a valid plugin name", hint)
    if short in RESERVED:
        raise ConfigError(f"{name!r} is the engine's own name", "choose the name of your industry")
    package = "aigc_" + short.replace("-", "_")
    assert package.isidentifier() and not keyword.iskeyword(package)
    return PluginNames(short, f"aigc-{short}", package, short.replace("-", " "))


def engine_range(version: str = __version__) -> str:
    """The engine versions a new plugin supports: this release line (``>=0.1,<0.2``).

    Before 1.0 a minor release may change the contract; from 1.0 only a major one does.
    """
    v = Version(version)
    upper = f"{v.major}.{v.minor + 1}" if v.major == 0 else f"{v.major + 1}"
    return f">={v.major}.{v.minor},<{upper}"


def render(names: PluginNames) -> dict[Path, str]:
    """Every file of the new package, by path relative to its folder."""
    values = {
        "name": names.name,
        "dist": names.dist,
        "package": names.package,
        "title": names.title,
        "engine_range": engine_range(),
    }
    placeholders = {"PACKAGE": names.package, "NAME": names.name}
    rendered = {}
    for relative, template in _templates(files("aigc_run.scaffold") / "templates", Path()):
        parts = []
        for part in relative.with_suffix("").parts:  # "NAME.toml" -> "textiles.toml"
            stem, dot, extension = part.partition(".")
            parts.append(placeholders.get(stem, stem) + dot + extension)
        rendered[Path(*parts)] = Template(template.read_text("utf-8")).substitute(values)
    return rendered


def _templates(folder: Traversable, relative: Path) -> list[tuple[Path, Traversable]]:
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            found += _templates(entry, relative / entry.name)
        elif entry.name.endswith(".tmpl"):
            found.append((relative / entry.name, entry))
    return found


def new_plugin(name: str, target: Path | None = None) -> tuple[PluginNames, Path, list[Path]]:
    """Write the package for plugin ``name`` into ``target`` (default ``./aigc-NAME``).

    Returns the names, the folder and the files written.
    """
    names = plugin_names(name)
    folder = (target or Path(names.dist)).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder", "choose another --dir")
    if folder.is_dir() and any(folder.iterdir()):
        raise ConfigError(
            f"{folder} is not empty", "choose a new or empty folder with --dir; nothing was changed"
        )
    rendered = render(names)
    written = []
    for relative, text in rendered.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as f:  # "x": never overwrite a file
            f.write(text)
        written.append(path)
    return names, folder, written
