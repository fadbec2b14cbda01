"""The HTML report of a real (tiny) run: every picture it shows exists beside it, and
headless Chromium renders it with its plots and images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from aigc_run.cli import main
from aigc_run.registry import Registry
from aigc_run.report import write_report

# An untrained generator and a near-duplicate threshold no second sample can meet: sample 0
# (nothing before it to duplicate) is kept, the rest are rejected, so every section has content.
TINY_RUN = [
    "scenario",
    "ecommerce",
    "--quiet",
    "--set",
    "train.steps=4",
    "--set",
    "train.log_every=1",
    "--set",
    "train.batch_size=4",
    "--set",
    "model.width=8",
    "--set",
    "data.options.demo_count=60",
    "--set",
    "sample.count=12",
    "--set",
    "sample.max_tries=1",
    "--set",
    "filters.background-clean=off",
    "--set",
    "filters.near-duplicate=1.0",
    "--set",
    "filters.catalogue-copy=off",
    "--set",
    "filters.class-consistency=off",
]


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.others: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                (self.images if tag == "img" else self.others).append(value)


def referenced_images(page: Path) -> list[Path]:
    """Every image the page shows, checked to be a readable PNG inside its assets folder."""
    refs = _References()
    refs.feed(page.read_text(encoding="utf-8"))
    for href in refs.others:  # no stylesheet or script; links only to the run's own samples
        assert "://" not in href and not href.startswith("/"), href
        target = (page.parent / href).resolve()
        assert target.parent.parent.name == "samples" and target.is_file(), href
    found = []
    for src in refs.images:
        assert "://" not in src and not src.startswith("/"), src
        path = (page.parent / src).resolve()
        assert path.is_relative_to(page.with_name(f"{page.stem}_files").resolve()), src
        assert path.is_file(), f"{page.name} shows {src}, which does not exist"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 4 and image.height > 4
        found.append(path)
    return found


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, str]]:
    """One real run for the module: (registry URL, run id, the CLI's output)."""
    home = tmp_path_factory.mktemp("report-home")
    result = CliRunner().invoke(main, TINY_RUN, env={"AIGC_HOME": str(home)})
    assert result.exit_code == 0, result.output
    url = f"sqlite:///{home / 'registry.db'}"
    registry = Registry(url)
    (run,) = registry.list_runs()
    registry.close()
    yield url, run.id, result.output


def test_every_run_ends_with_a_report_whose_pictures_all_exist(tiny_run):
    url, run_id, output = tiny_run
    registry = Registry(url)
    detail = registry.get_run(run_id)
    page = Path(detail.output_dir) / "report.html"
    assert f"report: {page}" in output
    assert detail.samples.accepted >= 1 and detail.samples.total > detail.samples.accepted, (
        "the tiny run should keep some samples and reject others",
        detail.samples,
    )

    html = page.read_text()
    names = {p.name for p in referenced_images(page)}
    assert {"losses.png", "training_metrics.png", "contact_sheet.png"} <= names
    assert "filter-0.png" in names and "filter-1.png" not in names  # only near-duplicate is on
    assert any(n.startswith("class-") for n in names)
    assert 'href="samples/' in html  # each class sheet links its samples at full size
    rejected = [n for n in names if n.startswith("rejected-")]
    assert len(rejected) == min(detail.samples.total - detail.samples.accepted, 24)
    assert "near-duplicate" in html and "threshold 1 (dashed)" in html
    # evaluation runs at the end of every scenario: its closest pairs are on the page
    pairs = json.loads((Path(detail.output_dir) / "evaluation" / "memorisation.json").read_text())
    assert pairs and "Memorisation was not computed for this run" not in html
    shown = sum(n.startswith("memorised-") for n in names)
    assert shown == sum(n.startswith("nearest-") for n in names) == min(len(pairs), 12)
    assert "acceptance-rate" in html
    assert json.dumps(detail.config["train"]["steps"]) in html


def test_report_command_shows_memorisation_and_real_floors(tiny_run, tmp_path):
    url, run_id, _ = tiny_run
    registry = Registry(url)
    run_dir = Path(registry.get_run(run_id).output_dir)
    sample = next(p for p in (run_dir / "samples").rglob("*.png"))
    train = run_dir / "evaluation" / "train" / "0.png"
    train.parent.mkdir(parents=True, exist_ok=True)
    Image.open(sample).rotate(90).save(train)
    entries = [
        {"sample": str(sample.relative_to(run_dir)), "nearest_train": "evaluation/train/0.png",
         "distance": 0.01, "threshold": 0.05},
        # Names in the file are data: one pointing out of the run's folder is not shown.
        {"sample": "../../../etc/passwd", "nearest_train": "/etc/hostname",
         "distance": 0.5, "threshold": 0.05},
    ]  # fmt: skip
    (run_dir / "evaluation" / "memorisation.json").write_text(json.dumps(entries))
    registry.add_evaluation(run_id, "fid", 61.5)
    registry.add_evaluation(run_id, "fid:floor", 3.25)

    out = tmp_path / "shared" / "run-report.html"
    result = CliRunner().invoke(main, ["report", str(run_id), "--out", str(out)],
                                env={"AIGC_DATABASE_URL": url})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"report: {out}" in result.output

    html = out.read_text()
    names = {p.name for p in referenced_images(out)}
    assert {"memorised-0.png", "nearest-0.png"} <= names
    assert "memorised-1.png" not in names and "nearest-1.png" not in names
    assert "1 of 2 samples are closer to a training image than the threshold" in html
    assert "../../../etc/passwd missing" in html
    assert '<td>fid</td><td class="num">61.5</td><td class="num">3.25</td>' in html
    assert "fid:floor" not in html  # shown beside fid, not as a metric of its own
    (run_dir / "evaluation" / "memorisation.json").unlink()


def test_report_replaces_its_own_pictures_but_never_a_foreign_folder(tiny_run, tmp_path):
    url, run_id, _ = tiny_run
    registry = Registry(url)
    out = tmp_path / "report.html"
    write_report(registry, run_id, out)
    stale = out.with_name("report_files") / "stale.png"
    stale.write_bytes(b"")
    write_report(registry, run_id, out)
    assert not stale.exists()
    referenced_images(out)

    foreign = tmp_path / "mine.html"
    (tmp_path / "mine_files").mkdir()
    (tmp_path / "mine_files" / "holiday.jpg").write_bytes(b"precious")
    result = CliRunner().invoke(main, ["report", str(run_id), "--out", str(foreign)],
                                env={"AIGC_DATABASE_URL": url})  # fmt: skip
    assert result.exit_code == 1
    assert "was not written by aigc-run report" in result.output
    assert (tmp_path / "mine_files" / "holiday.jpg").read_bytes() == b"precious"


def test_report_of_a_run_that_failed_before_training(tmp_path):
    registry = Registry(f"sqlite:///{tmp_path / 'runs.db'}")
    run_id = registry.create_run("ecommerce", {"train": {"steps": 5}}, {}, "cpu",
                                 str(tmp_path / "gone"))  # fmt: skip
    registry.finish_run(run_id, "failed", "DataError: <no images> in ./photos")
    page = write_report(registry, run_id, tmp_path / "failed.html")
    html = page.read_text()
    assert referenced_images(page) == []
    assert "No training metrics were recorded" in html
    assert "No accepted samples to show" in html
    assert "DataError: &lt;no images&gt; in ./photos" in html  # escaped, not markup


def test_report_of_an_unknown_run_is_a_short_error():
    result = CliRunner().invoke(main, ["report", "999"])
    assert result.exit_code == 1
    assert "no run with id 999" in result.output


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_chromium_renders_the_plots_and_images(tiny_run, tmp_path):
    chromium = _chromium()
    url, run_id, _ = tiny_run
    page = write_report(Registry(url), run_id, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,4000", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with Image.open(shot) as image:
        assert image.size == (1200, 4000)
        pixels = image.convert("RGB")
        colours = pixels.getcolors(maxcolors=1 << 20) or []
    # A page of text alone has a few hundred colours; plots and samples add thousands.
    assert len(colours) > 2000, len(colours)
    counts = {c: n for n, c in colours}

    def near(target: tuple[int, int, int]) -> int:
        close = (c for c in counts if max(abs(a - b) for a, b in zip(c, target, strict=True)) < 12)
        return sum(counts[c] for c in close)

    assert near((31, 119, 180)) > 50  # matplotlib's first line colour: the loss curves drew
    assert near((221, 85, 85)) > 200  # the histograms' rejected bars drew


def test_every_rejected_sample_shows_in_its_filters_histogram(tmp_path: Path) -> None:
    # Most scores sit near 0.9; four rejected ones lie far below them, beyond the plot's
    # range (3 interquartile ranges): they go in the end bins, never off the plot.
    from aigc_run.registry import SampleInfo
    from aigc_run.report import Page, filter_histograms

    samples = [
        SampleInfo(f"s/{i}.png", "a", 0, i, {"legibility": 0.9 + (i % 5) / 1000}, True, None)
        for i in range(50)
    ] + [
        SampleInfo("", "a", 0, 50 + i, {"legibility": score}, False, "legibility")
        for i, score in enumerate([0.0, 0.2, 0.0, 0.1])
    ]
    assets = tmp_path / "assets"
    assets.mkdir()
    (plot,) = filter_histograms(
        Page(tmp_path / "r.html", assets, tmp_path), samples, {"threshold:legibility": 0.5}
    )
    assert (plot.accepted, plot.rejected, plot.outside) == (50, 4, 4)
    assert plot.shown_rejected == 4
