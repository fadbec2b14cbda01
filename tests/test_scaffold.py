"""`aigc-run plugin new`: a new plugin package that installs, passes its own tests and the
conformance check, and whose scenario runs; names are checked and nothing is overwritten."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aigc_run import ConfigError
from aigc_run.cli import main
from aigc_run.conformance import check_installed
from aigc_run.contract.kinds import SCENARIOS
from aigc_run.plugins import Plugins
from aigc_run.scaffold import engine_range, new_plugin, plugin_names
from aigc_run.scenario import validate

EXPECTED_FILES = {
    "pyproject.toml",
    "README.md",
    "aigc_weave/__init__.py",
    "aigc_weave/plugin.py",
    "aigc_weave/data.py",
    "aigc_weave/quality.py",
    "aigc_weave/scenarios/weave.toml",
    "tests/test_plugin.py",
}


def test_names_follow_from_the_plugin_name():
    names = plugin_names("satellite-tiles")
    assert (names.name, names.dist, names.package) == (
        "satellite-tiles",
        "aigc-satellite-tiles",
        "aigc_satellite_tiles",
    )
    assert plugin_names("aigc-weave").name == "weave"  # the distribution name works too


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("Weave", "e.g. 'weave'"),
        ("tile_set", "e.g. 'tile-set'"),
        ("2d-scans", "starting with a letter"),
        ("a--b", "words joined by '-'"),
        ("dental lab", "e.g. 'dental-lab'"),
        ("", "lowercase letters"),
        ("run", "your industry"),
    ],
)
def test_bad_names_are_refused_with_a_hint(name, hint, tmp_path):
    with pytest.raises(ConfigError) as caught:
        new_plugin(name, tmp_path / "out")
    assert hint in caught.value.hint
    assert not (tmp_path / "out").exists()


def test_the_engine_range_is_this_release_line():
    assert engine_range("0.1.0") == ">=0.1,<0.2"
    assert engine_range("1.4.2") == ">=1.4,<2"


def test_scaffold_writes_a_complete_package(tmp_path):
    _, folder, written = new_plugin("weave", tmp_path / "aigc-weave")
    assert {p.relative_to(folder).as_posix() for p in written} == EXPECTED_FILES
    project = tomllib.loads((folder / "pyproject.toml").read_text())
    assert project["project"]["name"] == "aigc-weave"
    assert f"aigc-run{engine_range()}" in project["project"]["dependencies"]
    assert project["project"]["entry-points"]["aigc_run.plugins"] == {"weave": "aigc_weave.plugin"}
    for path in folder.rglob("*.py"):
        ast.parse(path.read_text(), str(path))  # rendered Python is valid Python
    scenario = validate(tomllib.loads((folder / "aigc_weave/scenarios/weave.toml").read_text()))
    assert (scenario.plugin, scenario.data.source) == ("weave", "weave")
    assert "$" not in "".join(p.read_text() for p in written)


@pytest.mark.parametrize("name", ["weave", "handwritten-digits-from-postal-envelopes"])
def test_a_scaffolded_plugin_passes_ruff_as_its_author_runs_it(tmp_path, name):
    # In the author's own folder, with the ruff settings the scaffold writes: aigc_run is a
    # third-party package there and the plugin's the first-party one, and imports sort so.
    # Names run to 40 characters: the lines that carry one still fit in 100.
    _, folder, _ = new_plugin(name, tmp_path / f"aigc-{name}")
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), "check", "."],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scaffold_never_writes_into_a_folder_that_has_files(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(main, ["plugin", "new", "weave", "--dir", str(target)])
    assert result.exit_code == 2
    assert "is not empty" in result.output and "Traceback" not in result.output
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    created = CliRunner().invoke(main, ["plugin", "new", "weave", "--dir", str(empty)])
    assert created.exit_code == 0, created.output
    assert "pip install -e" in created.output and (empty / "pyproject.toml").is_file()


def test_scaffolded_plugin_registered_by_its_entry_point_passes_the_check(tmp_path, monkeypatch):
    _, folder, _ = new_plugin("weave", tmp_path / "aigc-weave")
    # What `pip install -e` leaves behind: the package importable, a .dist-info naming
    # the entry point and the supported engine range.
    info = tmp_path / "site" / "aigc_weave-0.1.0.dist-info"
    info.mkdir(parents=True)
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: aigc-weave\nVersion: 0.1.0\n"
        + "".join(f"Requires-Dist: {r}\n" for r in project["dependencies"])
    )
    (info / "entry_points.txt").write_text("[aigc_run.plugins]\nweave = aigc_weave.plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(folder))
    assert "weave" in Plugins().contributions(SCENARIOS)
    report = check_installed("weave")
    assert report.ok, str(report)
    assert any(note.startswith("supports aigc-run") for note in report.notes)


# -- the whole path a new user takes, as CONTRIBUTING.md tells it ----------------------

SATELLITE_LOADER = '''
def load_folder(root: Path) -> Iterator[Sample | Skipped]:
    """Satellite tiles: ``root/tiles/*.png`` and ``root/labels.csv`` (tile,land_cover)."""
    import csv

    table = root / "labels.csv"
    if not table.is_file():
        raise DataError(f"no labels.csv in {root}", "give the folder of a tile export")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        path = root / "tiles" / Path(row["tile"]).name  # names from data never leave root
        try:
            with Image.open(path) as image:
                image.load()
                yield Sample(image.convert("RGB"), row["land_cover"])
        except FileNotFoundError:
            yield Skipped(row["tile"], "missing tile")
        except (OSError, UnidentifiedImageError):
            yield Skipped(row["tile"], "unreadable image")


'''


def _make_tiles(root: Path) -> None:
    """Twenty-four 40-pixel tiles of three land covers, a labels.csv, one missing tile."""
    rng = np.random.default_rng(0)
    (root / "tiles").mkdir(parents=True)
    rows = ["tile,land_cover"]
    colours = {"water": (30, 60, 160), "forest": (40, 120, 50), "urban": (150, 150, 150)}
    for i in range(24):
        cover = list(colours)[i % 3]
        noise = rng.integers(-30, 30, (40, 40, 3))
        pixels = np.clip(np.array(colours[cover]) + noise, 0, 255).astype(np.uint8)
        if cover == "urban":
            pixels[::8] = pixels[:, ::8] = 60  # streets
        Image.fromarray(pixels).save(root / "tiles" / f"tile_{i:03d}.png")
        rows.append(f"tile_{i:03d}.png,{cover}")
    rows.append("tile_999.png,water")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_a_new_vertical_from_scaffold_to_scenario_in_a_fresh_environment(tmp_path):
    # A fresh venv beside aigc-run: --system-site-packages would expose the system
    # Python's packages, not this environment's, so a .pth adds this environment instead.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    new_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = sysconfig.get_paths()["purelib"]
    Path(new_site, "aigc-run-beside.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str, cwd: Path = tmp_path) -> str:
        done = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    aigc_run = (python, "-m", "aigc_run.cli")
    # 1. scaffold, install, and the package's own tests pass straight away
    run(*aigc_run, "plugin", "new", "satellite")
    plugin_dir = tmp_path / "aigc-satellite"
    run(
        python,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-e",
        str(plugin_dir),
    )
    assert "6 passed" in run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin_dir)
    # 2. fill in a real loader: satellite tiles listed in a labels.csv
    data_py = plugin_dir / "aigc_satellite" / "data.py"
    source = data_py.read_text()
    start, end = source.index("def load_folder("), source.index("def demo(")
    data_py.write_text(source[:start] + SATELLITE_LOADER.lstrip() + source[end:])
    _make_tiles(tmp_path / "export")
    # 3. aigc-run sees it, it passes the check on the tiles, and its scenario runs
    listed = run(*aigc_run, "plugins")
    assert "satellite 0.1.0" in listed and "satellite-contrast (satellite)" in listed
    assert "satellite " in run(*aigc_run, "scenarios")
    report = run(*aigc_run, "plugins", "check", "satellite", "--data", str(tmp_path / "export"))
    assert "plugin 'satellite' passes" in report
    assert "dataset 'satellite': 16 images read" in report
    tiny = [
        "--set",
        "train.steps=3",
        "--set",
        "model.width=8",
        "--set",
        "data.image_size=16",
        "--set",
        "sample.count=4",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.device=cpu",
    ]
    out = run(
        *aigc_run, "scenario", "satellite", "--data", str(tmp_path / "export"), "--quiet", *tiny
    )
    assert "data: 24 images 3x16x16" in out and "classes: forest, urban, water" in out
    assert "skipped: missing tile 1" in out
    assert "completed" in out
