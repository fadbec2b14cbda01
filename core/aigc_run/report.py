"""The HTML report of a run: what a person opens to judge it.

``write_report`` reads everything from the registry (and the run's folder for the images)
and writes ``report.html`` with its pictures in a folder beside it (``report_files/``):
plots drawn with matplotlib's Agg backend, sample images converted to PNG. The page refers
to nothing else, so the two can be copied or zipped together and opened anywhere.

Sections: the run and its config; loss and metric curves; contact sheets per class; a
score histogram per quality filter with its threshold; rejected samples with their reasons;
memorisation worst cases beside their nearest training images (when the evaluation wrote
``evaluation/memorisation.json``); the evaluation table with each metric's real-vs-real
floor (stored as the evaluation ``<metric>:floor``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from aigc_run import faults
from aigc_run.contract.errors import AigcError
from aigc_run.evaluation import COMPANIONS, not_measured
from aigc_run.registry import Registry, SampleInfo
from aigc_run.writing import sheet_size

MARKER = ".aigc-report"  # marks an assets folder as ours, so rewriting may clear it
PER_CLASS = 16  # samples on each class's contact sheet
REJECTED_SHOWN = 24
MEMORISATION_SHOWN = 12
THRESHOLD_PREFIX = "threshold:"
FLOOR_SUFFIX = ":floor"


@dataclass(frozen=True)
class Picture:
    src: str  # relative to the page
    caption: str
    full_size: tuple[str, ...] = ()  # the samples on a sheet, as files relative to the page


def write_report(registry: Registry, run_id: int, out: Path | None = None) -> Path:
    """Write the report of run ``run_id`` to ``out`` (default ``<output_dir>/report.html``)."""
    detail = registry.get_run(run_id)
    run_dir = Path(detail.output_dir)
    out = (out or run_dir / "report.html").absolute()
    assets = _fresh_assets(out)
    page = Page(out, assets, run_dir)

    samples = registry.samples(run_id)
    history = registry.evaluation_history(run_id)
    context = {
        "run": detail,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "config": _config_tables(detail.config),
        "curves": _curves(page, registry.metric_series(run_id), history),
        "contact_sheet": page.copy_image(run_dir / "contact_sheet.png", "contact_sheet.png"),
        "class_sheets": _class_sheets(page, samples),
        "filters": filter_histograms(page, samples, detail.evaluations),
        "rejected": _rejected(page, samples),
        "rejected_by_filter": detail.samples.rejected_by_filter,
        "memorisation": _memorisation(page, run_dir),
        "evaluations": _evaluation_table(detail.evaluations),
    }
    import jinja2

    template = resources.files("aigc_run").joinpath("templates/report.html").read_text("utf-8")
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["num"] = _num
    faults.point("report")  # its pictures are written, the page is not
    out.write_text(environment.from_string(template).render(context), encoding="utf-8")
    return out


# ---------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------


def _fresh_assets(out: Path) -> Path:
    """The empty folder beside ``out`` for its pictures; an earlier report's is replaced,
    a folder of someone else's is never touched."""
    assets = out.with_name(f"{out.stem}_files")
    if assets.exists():
        if not (assets / MARKER).exists():
            raise AigcError(
                f"{assets} exists and was not written by aigc-run report",
                "choose another --out, or move that folder away",
            )
        shutil.rmtree(assets)
    assets.mkdir(parents=True)
    (assets / MARKER).write_text("pictures of the report beside this folder\n")
    return assets


class Page:
    """Where the report and its pictures go: the page, its assets folder and the run's folder."""

    def __init__(self, out: Path, assets: Path, run_dir: Path) -> None:
        self.out, self.assets, self.run_dir = out, assets, run_dir.resolve()

    def src(self, name: str) -> str:
        return f"{self.assets.name}/{name}"

    def link(self, path: Path) -> str:
        """``path`` as a link from the page: relative, so the run's folder can be moved."""
        return Path(os.path.relpath(path, self.out.parent)).as_posix()

    def inside_run(self, relative: str) -> Path | None:
        """``relative`` (from the registry or a JSON file) as a file in the run's folder, or
        None: such names are data, never trusted as paths."""
        if not relative:
            return None
        path = (self.run_dir / relative).resolve()
        return path if path.is_relative_to(self.run_dir) and path.is_file() else None

    def copy_image(self, source: Path | None, name: str) -> str | None:
        """``source`` as a PNG beside the page; None when it is missing or not a picture."""
        from PIL import Image, UnidentifiedImageError

        if source is None or not source.is_file():
            return None
        try:
            with Image.open(source) as image:
                image.save(self.assets / name, format="PNG")
        except (OSError, UnidentifiedImageError):
            return None
        return self.src(name)

    def figure(self, width: float, height: float) -> Any:
        # The object API with no pyplot: no global state, no GUI backend; saves through Agg.
        from matplotlib.figure import Figure

        return Figure(figsize=(width, height), dpi=100, layout="constrained")

    def save(self, figure: Any, name: str) -> str:
        figure.savefig(self.assets / name, format="png")
        return self.src(name)


# ---------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------


def _config_tables(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One table per config section; the scenario's own scalars (name, plugin) come first."""
    tables = {"scenario": {k: v for k, v in config.items() if not isinstance(v, Mapping)}}
    tables.update({k: _flatten(v) for k, v in config.items() if isinstance(v, Mapping)})
    return {name: rows for name, rows in tables.items() if rows}


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if not isinstance(value, str) else value
    return flat


def _curves(
    page: Page, series: Mapping[str, list[tuple[int, float]]], history: Sequence[Any]
) -> list[Picture]:
    """Loss curves, the other training metrics, and evaluations measured at several steps."""
    losses = {n: p for n, p in series.items() if "loss" in n}
    others = {n: p for n, p in series.items() if n not in losses}
    by_step: dict[str, list[tuple[int, float]]] = {}
    for point in history:
        if point.step is not None and not _is_derived(point.metric):
            by_step.setdefault(point.metric, []).append((point.step, point.value))
    evaluated = {n: sorted(p) for n, p in by_step.items() if len({s for s, _ in p}) > 1}
    pictures = []
    for name, title, curves in (
        ("losses.png", "Training losses", losses),
        ("training_metrics.png", "Other training metrics", others),
        ("evaluation_curves.png", "Evaluations by checkpoint step", evaluated),
    ):
        if not curves:
            continue
        figure = page.figure(7, 3.2)
        axes = figure.subplots()
        for label, points in sorted(curves.items()):
            steps = [s for s, _ in points]
            axes.plot(
                steps, [v for _, v in points], label=label, marker="." if len(points) < 30 else None
            )
        axes.set_xlabel("step")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
        pictures.append(Picture(page.save(figure, name), title))
    return pictures


def _class_sheets(page: Page, samples: Sequence[SampleInfo]) -> list[Picture]:
    """One contact sheet of accepted samples per class, from the files in the run's folder."""
    by_class: dict[str, list[Path]] = {}
    for sample in samples:
        path = page.inside_run(sample.file) if sample.accepted else None
        if path is not None and len(by_class.setdefault(sample.label, [])) < PER_CLASS:
            by_class[sample.label].append(path)
    pictures = []
    for k, (label, paths) in enumerate(sorted(by_class.items())):
        name = f"class-{k}.png"
        if _grid(paths, page.assets / name, columns=8):
            links = tuple(page.link(path) for path in paths)
            pictures.append(Picture(page.src(name), label or "samples", links))
    return pictures


def _grid(paths: Sequence[Path], target: Path, columns: int, pad: int = 2) -> bool:
    from PIL import Image, UnidentifiedImageError

    images: list[Image.Image] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (OSError, UnidentifiedImageError):
            continue
    if not images:
        return False
    w, h = images[0].size
    rows = math.ceil(len(images) / columns)
    sheet = Image.new(
        "RGB", (min(columns, len(images)) * (w + pad) + pad, rows * (h + pad) + pad), "white"
    )
    for i, picture in enumerate(images):
        sheet.paste(
            picture.resize((w, h)),
            (pad + (i % columns) * (w + pad), pad + (i // columns) * (h + pad)),
        )
    sheet.resize(*sheet_size(sheet.width, sheet.height, h)).save(target)
    return True


@dataclass(frozen=True)
class FilterPlot:
    name: str
    threshold: float | None
    accepted: int
    rejected: int
    outside: int  # scores beyond the plotted range, drawn in its end bins
    picture: str
    shown_rejected: int = 0  # rejected samples the bars hold: all of them


def filter_histograms(
    page: Page, samples: Sequence[SampleInfo], evaluations: Mapping[str, float]
) -> list[FilterPlot]:
    import numpy as np

    names = sorted({name for s in samples for name in s.scores})
    plots = []
    for k, name in enumerate(names):
        kept = [s.scores[name] for s in samples if s.accepted and _finite(s.scores.get(name))]
        dropped = [
            s.scores[name] for s in samples if not s.accepted and _finite(s.scores.get(name))
        ]
        threshold = evaluations.get(THRESHOLD_PREFIX + name)
        low, high, outside = _score_range(kept + dropped, threshold)
        figure = page.figure(4.5, 2.8)
        axes = figure.subplots()
        # Extreme scores go in the end bins rather than off the plot: a rejected sample
        # scored far below the others must still show as a red bar.
        counts, _, _ = axes.hist(
            [np.clip(kept, low, high), np.clip(dropped, low, high)],
            bins=30,
            range=(low, high),
            stacked=True,
            label=["accepted", "rejected"],
            color=["#3a7", "#d55"],
        )
        if threshold is not None and math.isfinite(threshold):
            axes.axvline(
                threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}"
            )
        axes.set_title(name)
        axes.set_xlabel("score")
        axes.set_ylabel("samples")
        axes.legend(fontsize="small")
        plots.append(
            FilterPlot(
                name,
                threshold,
                len(kept),
                len(dropped),
                outside,
                page.save(figure, f"filter-{k}.png"),
                round(float((counts[1] - counts[0]).sum())),
            )
        )
    return plots


@dataclass(frozen=True)
class Rejected:
    picture: str | None  # None when the rejected image was not kept
    label: str
    index: int
    reason: str


def _rejected(page: Page, samples: Sequence[SampleInfo]) -> list[Rejected]:
    shown = []
    for sample in [s for s in samples if not s.accepted][:REJECTED_SHOWN]:
        picture = page.copy_image(page.inside_run(sample.file), f"rejected-{sample.index}.png")
        shown.append(Rejected(picture, sample.label, sample.index, sample.reason or "unspecified"))
    return shown


@dataclass(frozen=True)
class Memorised:
    sample: str | None
    nearest: str | None
    sample_file: str
    nearest_file: str
    distance: float
    threshold: float


@dataclass(frozen=True)
class Memorisation:
    computed: bool
    problem: str | None  # why the file could not be read
    total: int
    below_threshold: int
    worst: list[Memorised]


def _memorisation(page: Page, run_dir: Path) -> Memorisation:
    """The closest samples to the training set, from ``evaluation/memorisation.json``: a list
    of {"sample", "nearest_train", "distance", "threshold"}, paths relative to the run."""
    path = run_dir / "evaluation" / "memorisation.json"
    if not path.is_file():
        return Memorisation(False, None, 0, 0, [])
    try:
        entries = json.loads(path.read_text())
        rows = [
            (str(e["sample"]), str(e["nearest_train"]), float(e["distance"]), float(e["threshold"]))
            for e in entries
        ]
    except (OSError, ValueError, TypeError, KeyError) as e:
        return Memorisation(True, f"{path}: {type(e).__name__}: {e}", 0, 0, [])
    rows.sort(key=lambda r: r[2])
    worst = [
        Memorised(
            page.copy_image(page.inside_run(sample), f"memorised-{k}.png"),
            page.copy_image(page.inside_run(nearest), f"nearest-{k}.png"),
            sample,
            nearest,
            distance,
            threshold,
        )
        for k, (sample, nearest, distance, threshold) in enumerate(rows[:MEMORISATION_SHOWN])
    ]
    below = sum(1 for r in rows if r[2] < r[3])
    return Memorisation(True, None, len(rows), below, worst)


@dataclass(frozen=True)
class EvaluationRow:
    metric: str
    value: float
    floor: float | None  # the same metric between two halves of the real data
    unmeasured: str | None = None  # why there is no value: too few images


def _evaluation_table(evaluations: Mapping[str, float]) -> list[EvaluationRow]:
    unmeasured = not_measured(evaluations)
    return [
        EvaluationRow(
            metric,
            value,
            evaluations.get(metric + FLOOR_SUFFIX),
            "not measurable: {} images, needs {}".format(*unmeasured[metric])
            if metric in unmeasured
            else None,
        )
        for metric, value in sorted(evaluations.items())
        if not _is_derived(metric)
    ]


def _score_range(scores: Sequence[float], threshold: float | None) -> tuple[float, float, int]:
    """The histogram's range: the scores within 3 interquartile ranges of the middle half,
    and the threshold, so that a few extreme scores (a filter's "no neighbour" sentinel) do
    not squash the rest into one bar. Returns (low, high, how many scores fall outside)."""
    import numpy as np

    values = np.asarray(scores, dtype=float)
    points = [float(threshold)] if threshold is not None and math.isfinite(threshold) else []
    if len(values):
        q1, q3 = np.percentile(values, [25, 75])
        usual = values[(values >= q1 - 3 * (q3 - q1)) & (values <= q3 + 3 * (q3 - q1))]
        points += [float(usual.min()), float(usual.max())]
    low, high = (min(points), max(points)) if points else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    outside = int(((values < low) | (values > high)).sum())
    return low, high, outside


def _is_derived(metric: str) -> bool:
    return metric.startswith(THRESHOLD_PREFIX) or metric.endswith(COMPANIONS)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return "NaN" if math.isnan(value) else f"{value:.4g}"
