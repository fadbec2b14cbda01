"""The code keeps its shape: no module reaches for another module's private names, and
plugins import only the public API, which docs/plugins.md lists name by name.

The layers and the absence of import cycles are import-linter contracts in
pyproject.toml, checked by ``lint-imports`` in .ci/run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import aigc_run

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "core"
PLUGIN_PACKAGES = sorted(p.parent for p in REPO.glob("plugins/*/aigc_*/__init__.py"))


def module_name(path: Path) -> str:
    """``core/aigc_run/run/engine.py`` -> ``aigc_run.run.engine``."""
    for root in (CORE, *(p.parent for p in PLUGIN_PACKAGES)):
        if path.is_relative_to(root):
            parts = path.relative_to(root).with_suffix("").parts
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return path.stem  # a benchmark script


def python_files() -> Iterator[Path]:
    yield from (CORE / "aigc_run").rglob("*.py")
    for package in PLUGIN_PACKAGES:
        yield from package.rglob("*.py")
    yield from (REPO / "benchmarks").glob("*.py")


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: Path) -> list[str]:
    """Where ``path`` imports, or reaches through an imported module for, an underscore
    name of another aigc module."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    found = []
    modules: dict[str, str] = {}  # local name -> the aigc module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aigc_"):
            for alias in node.names:
                if private(alias.name) and node.module != here:
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    found.append(f"{where} {node.module}.{alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("aigc_") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and private(node.attr)
        ):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    found = [use for path in python_files() for use in private_uses(path)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_check_finds_a_private_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from aigc_run.run import setup\n"
        "from aigc_run.data import _open\n"
        "setup._hidden()\n"
        "from aigc_run.plugins import Plugins\n"
    )
    found = [use.split(" ", 1)[1] for use in private_uses_at(sample, tmp_path)]
    assert found == ["aigc_run.data._open", "setup._hidden"]


def private_uses_at(path: Path, root: Path) -> list[str]:
    global REPO
    saved, REPO = REPO, root
    try:
        return private_uses(path)
    finally:
        REPO = saved


def plugin_imports() -> Iterator[tuple[str, str, int, list[str]]]:
    """(file, module, line, names) for every import of aigc_run in the plugins' packages."""
    for package in PLUGIN_PACKAGES:
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aigc_run"):
                    names = [a.name for a in node.names]
                    yield str(path.relative_to(REPO)), str(node.module), node.lineno, names
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith("aigc_run"):
                            yield str(path.relative_to(REPO)), alias.name, node.lineno, []


@pytest.mark.parametrize("package", PLUGIN_PACKAGES, ids=lambda p: p.name)
def test_plugins_import_only_the_public_api(package: Path) -> None:
    outside = [
        f"{file}:{line} {module} {names}"
        for file, module, line, names in plugin_imports()
        if file.startswith(str(package.relative_to(REPO)))
        and (module != "aigc_run" or not set(names) <= set(aigc_run.__all__))
    ]
    assert not outside, "plugins may import only names in aigc_run.__all__:\n" + "\n".join(outside)


def test_the_plugin_reference_lists_every_public_name() -> None:
    reference = (REPO / "docs" / "plugins.md").read_text()
    listed = set(re.findall(r"^#+ `?(\w+)`?", reference, re.MULTILINE))
    listed |= set(re.findall(r"^\| `(\w+)`", reference, re.MULTILINE))
    missing = sorted(set(aigc_run.__all__) - listed - {"__version__"})
    assert not missing, f"docs/plugins.md does not document: {missing}"
