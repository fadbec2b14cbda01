"""The sampling loop: seeded batches through the quality filters to the writer, the
manifest and the registry; and the contact sheet.

Sample ``index`` of a run is generated from its own noise, a function of
``(sample.seed, index)`` alone (``noise.noise_for``), and asks for class
``index % num_classes``: any written image can be regenerated from (run, checkpoint, seed,
index) alone, whatever the batch size or device. Rejected samples are written apart with
their reason, never dropped.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from aigc_run import faults
from aigc_run.contract.components import FilterContext, FilteredBatch, GenerativeModel, SampleWriter
from aigc_run.plugins import Contribution
from aigc_run.run.filtering import ActiveFilter, Rejection, decide, describe_rejections, score_all
from aigc_run.run.generation import (
    AUTO_BATCH,
    Compiled,
    generate_on_device,
    pick_batch_size,
    to_host,
)
from aigc_run.run.manifest import Manifest
from aigc_run.scenario import Scenario
from aigc_run.writing import Group, Writers, pool_size, sheet_size

SHEET_PER_CLASS = 64  # accepted images kept in memory per class, for the contact sheet


@dataclass
class SamplingResult:
    generated: int = 0
    accepted: int = 0
    # class -> filter name -> samples of that class it rejected
    rejected_by_class: dict[int, dict[str, int]] = field(default_factory=dict)
    # The first SHEET_PER_CLASS accepted images of each class (uint8 CPU batches) for the
    # contact sheet: a run of millions of samples must not hold them all in memory.
    accepted_images: list[torch.Tensor] = field(default_factory=list)
    accepted_labels: list[torch.Tensor] = field(default_factory=list)
    skipped_filters: dict[str, str] = field(default_factory=dict)  # name -> what went wrong
    _kept: dict[int, int] = field(default_factory=dict)  # class -> images kept for the sheet

    @property
    def rejected_by(self) -> dict[str, int]:
        """Filter name -> samples it rejected, all classes together."""
        total: dict[str, int] = {}
        for counts in self.rejected_by_class.values():
            for name, n in counts.items():
                total[name] = total.get(name, 0) + n
        return total

    def keep_for_sheet(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        chosen = []
        for k, label in enumerate(labels.tolist()):
            if self._kept.get(label, 0) < SHEET_PER_CLASS:
                self._kept[label] = self._kept.get(label, 0) + 1
                chosen.append(k)
        if chosen:
            self.accepted_images.append(pixels[chosen])
            self.accepted_labels.append(labels[chosen])


def safe_names(class_names: Sequence[str]) -> list[str]:
    """Class names made safe as folder names: they come from data, never trusted as paths."""
    safe: list[str] = []
    for i, name in enumerate(class_names or ["samples"]):
        cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._")[:64] or f"class_{i}"
        safe.append(cleaned if cleaned not in safe else f"{cleaned}_{i}")
    return safe


def sample(
    model: GenerativeModel,
    scenario: Scenario,
    filters: Sequence[ActiveFilter],
    writer: Contribution[SampleWriter],
    reference: FilterContext,
    device: str,
    out_dir: Path,
    on_batch: Callable[[FilteredBatch, list[dict[str, Any]]], None],
    part: tuple[int, int] = (0, 1),
    plan: Callable[[int, int], list[int]] | None = None,
) -> SamplingResult:
    """Generate until ``sample.count`` images pass (or ``max_tries`` x count were tried).

    Generation and filtering run here; writing runs in worker processes for large runs
    (``output.write_processes``). ``on_batch`` sees each batch once its files are written.
    ``part`` = (rank, ranks) when several processes share the work (see dist.py):
    this one takes every ranks-th block of ``sample.batch_size`` (AUTO_BATCH for "auto")
    indices, from block ``rank``, until its share of the count passes, and writes its rows
    to ``manifest.part-RANK.csv``, which rank 0 merges. ``plan(done, size)``, when given,
    picks the indices of the next ``size`` samples instead (one process only): which
    indices, and so which classes, ``aigc-run sample --class`` draws.
    """
    cfg = scenario.sample
    generator: Any = Compiled(model) if cfg.compile else model
    batch_size = pick_batch_size(generator, cfg.batch_size, device)
    block = AUTO_BATCH if cfg.batch_size == "auto" else cfg.batch_size
    rank, ranks = part
    count = cfg.count // ranks + (rank < cfg.count % ranks)  # this process's share
    class_names = list(reference.class_names)
    folders = safe_names(class_names)
    num_classes = max(len(class_names), 1)
    result = SamplingResult()
    filters = list(filters)  # a failing filter may be dropped (sample.on_filter_error)
    name = "manifest.csv" if rank == 0 else f"manifest.part-{rank}.csv"
    manifest = Manifest(out_dir / name, {f.name: f.threshold for f in filters}, cfg.psi)
    writers = Writers(writer, pool_size(scenario.output.write_processes, count))
    try:
        while result.accepted < count and result.generated < count * cfg.max_tries:
            size = min(batch_size, count - result.accepted)
            if plan is not None:
                indices = plan(result.generated, size)
            else:
                indices = _part_indices(result.generated, size, block, part)
            labels = torch.tensor(indices, dtype=torch.int64) % num_classes
            images, on_device = generate_on_device(
                generator, cfg.seed, indices, labels, cfg.truncation, device, cfg.noise, cfg.psi
            )
            copy = to_host(on_device)  # travels while the filters score the batch
            context = dataclasses.replace(reference, labels=labels.to(device))
            with torch.inference_mode():
                scores = score_all(filters, images, context, cfg, result.skipped_filters)
            rejections = decide(filters, scores, size)
            accepted = [not failed for failed in rejections]
            keep = torch.tensor(accepted, dtype=torch.bool)
            pixels = copy.wait()
            result.keep_for_sheet(pixels[keep], labels[keep])
            result.generated += size
            result.accepted += int(keep.sum())
            for label, failed in zip(labels.tolist(), rejections, strict=True):
                of_class = result.rejected_by_class.setdefault(label, {})
                for rejection in failed:
                    of_class[rejection.filter] = of_class.get(rejection.filter, 0) + 1
            thresholds = {f.name: f.threshold for f in filters if f.name in scores}
            batch = _Batch(cfg.seed, indices, labels, scores, thresholds, rejections, class_names)
            groups, slots = _groups(
                pixels, indices, labels, folders, accepted, scenario.output.keep_rejected
            )
            writers.submit(out_dir, groups, partial(_written, batch, slots, manifest, on_batch))
        writers.close()
    except BaseException:
        writers.abort()
        raise
    finally:
        manifest.close()
    return result


def _part_indices(done: int, size: int, block: int, part: tuple[int, int]) -> list[int]:
    """The sample indices of this process's next ``size`` samples, ``done`` drawn so far.

    One process: ``done, done + 1, ...``. Several: blocks of ``block`` indices dealt round
    the ranks, so they never overlap and each batch still cycles through the classes.
    """
    rank, ranks = part
    drawn = range(done, done + size)
    return [(k // block * ranks + rank) * block + k % block for k in drawn]


@dataclass(frozen=True)
class _Batch:
    seed: int
    indices: list[int]
    labels: torch.Tensor
    scores: dict[str, torch.Tensor]
    thresholds: dict[str, float]  # of the filters that scored this batch
    rejections: list[list[Rejection]]  # for each sample, the filters it failed
    class_names: list[str]

    @property
    def accepted(self) -> list[bool]:
        return [not failed for failed in self.rejections]


def _groups(
    pixels: torch.Tensor,
    indices: list[int],
    labels: torch.Tensor,
    folders: list[str],
    accepted: list[bool],
    keep_rejected: bool,
) -> tuple[list[Group], list[tuple[str, list[int]]]]:
    """What to hand the writer (samples/ and rejected/), and which batch rows each holds."""
    groups: list[Group] = []
    slots: list[tuple[str, list[int]]] = []
    for keep, top in ((True, "samples"), (False, "rejected")):
        chosen = [k for k in range(len(indices)) if accepted[k] == keep]
        if not chosen or (not keep and not keep_rejected):
            continue
        stems = [f"{folders[int(labels[k])]}/{indices[k]:07d}" for k in chosen]
        groups.append((top, stems, pixels[chosen]))
        slots.append((top, chosen))
    return groups, slots


def _written(
    batch: _Batch,
    slots: list[tuple[str, list[int]]],
    manifest: Manifest,
    on_batch: Callable[[FilteredBatch, list[dict[str, Any]]], None],
    written: list[list[str]],
) -> None:
    """A batch's files are on disk: record it in the manifest, the registry and the hooks."""
    files = [""] * len(batch.indices)
    for (top, chosen), names in zip(slots, written, strict=True):
        for k, name in zip(chosen, names, strict=True):
            files[k] = f"{top}/{name}"
    names_of = batch.class_names
    accepted = batch.accepted
    reasons = [describe_rejections(failed) for failed in batch.rejections]  # for people
    rows = [
        {
            "file": files[k],
            "label": names_of[batch.labels[k]] if names_of else "",
            "seed": batch.seed,
            "index": batch.indices[k],
            "accepted": accepted[k],
            "reason": reasons[k],
            "rejections": [(r.filter, r.score, r.threshold) for r in batch.rejections[k]],
            "scores": {n: float(s[k]) for n, s in batch.scores.items()},
        }
        for k in range(len(batch.indices))
    ]
    faults.point("sampling-batch")  # its files are on disk, not yet in the manifest or registry
    manifest.append(rows)
    on_batch(
        FilteredBatch(
            batch.seed,
            batch.indices,
            [str(r["label"]) for r in rows],
            {n: s.tolist() for n, s in batch.scores.items()},
            accepted,
            reasons,
            files,
            batch.thresholds,
            [[r.filter for r in failed] for failed in batch.rejections],
        ),
        rows,
    )


def contact_sheet(
    path: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    per_class: int = 8,
    class_names: Sequence[str] = (),
    rejected_by_class: Mapping[int, Mapping[str, int]] | None = None,
) -> None:
    """A PNG grid of accepted samples: one row per class, its name on the left ("none
    accepted" where a class has none, with the filters that rejected its samples most,
    from ``rejected_by_class``), or 8 x 8 when unconditional; each sample drawn 96 to 128
    px wide (``writing.sheet_size``)."""
    from PIL import Image, ImageDraw

    if num_classes > 1:
        rows = [images[labels == c][:per_class] for c in range(num_classes)]
        columns = per_class
    else:
        columns = min(8, max(1, math.ceil(math.sqrt(len(images)))))
        rows = [images[i : i + columns] for i in range(0, min(len(images), 64), columns)]
    c, h, w = images.shape[1:] if len(images) else (3, 8, 8)
    pad = 2
    sheet = torch.full(
        (c, len(rows) * (h + pad) + pad, columns * (w + pad) + pad), 255, dtype=torch.uint8
    )
    for r, row in enumerate(rows):
        for k, image in enumerate(row):
            top, left = pad + r * (h + pad), pad + k * (w + pad)
            sheet[:, top : top + h, left : left + w] = image
    array = sheet.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if c == 1 else array)
    picture = picture.resize(*sheet_size(picture.width, picture.height, h))
    names = list(class_names)[:num_classes] if num_classes > 1 else []
    if names:  # a margin on the left with each row's class
        draw = ImageDraw.Draw(picture)
        margin = 8 + max(int(draw.textlength(name)) for name in names)
        labelled = Image.new(picture.mode, (picture.width + margin, picture.height), 255)
        labelled.paste(picture, (margin, 0))
        draw, row_height = ImageDraw.Draw(labelled), picture.height / len(rows)
        for r, name in enumerate(names):
            middle = int((r + 0.5) * row_height)
            draw.text((4, middle - 6), name, fill=0)
            if len(rows[r]) == 0:
                counts = (rejected_by_class or {}).get(r, {})
                worst = sorted(counts.items(), key=lambda item: -item[1])[:3]
                why = ", ".join(f"{name} {n}" for name, n in worst)
                text = f"none accepted: rejected by {why}" if why else "none accepted"
                draw.text((margin + 4, middle - 6), text, fill=128)
        picture = labelled
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
