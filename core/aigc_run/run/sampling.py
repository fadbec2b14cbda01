"""Seeded sampling, quality filters, writing and the manifest.

Sample ``index`` of a run is generated from its own noise, a function of
``(sample.seed, index)`` alone (``noise.noise_for``), and asks for class
``index % num_classes``: any written image can be regenerated from (run, checkpoint, seed,
index) alone, whatever the batch size or device. Rejected samples are written apart with
their reason, never dropped.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch

from aigc_run import faults
from aigc_run.contract.components import (
    FilterContext,
    FilteredBatch,
    GenerativeModel,
    QualityFilter,
    SampleWriter,
)
from aigc_run.contract.errors import ConfigError, PluginError
from aigc_run.contract.kinds import FILTERS
from aigc_run.noise import Scheme, noise_for
from aigc_run.plugins import Contribution, Plugins
from aigc_run.scenario import SampleConfig, Scenario
from aigc_run.writing import Group, Writers, pool_size

AUTO_PASS_RATE = 0.9  # "auto" loosens a threshold until this share of held-out real images pass
SHEET_PER_CLASS = 64  # accepted images kept in memory per class, for the contact sheet
#: sample.batch_size = "auto" on a CPU, and in a distributed run the block of indices dealt
#: to each process in turn whatever batch each one picks, so the ranks never overlap.
AUTO_BATCH = 256
MEMORY_SHARE = 0.5  # of the free device memory that an "auto" batch may take


@dataclass(frozen=True)
class ActiveFilter:
    plugin: str
    filter: QualityFilter
    threshold: float

    @property
    def name(self) -> str:
        return self.filter.name


@dataclass
class SamplingResult:
    generated: int = 0
    accepted: int = 0
    rejected_by: dict[str, int] = field(default_factory=dict)
    # The first SHEET_PER_CLASS accepted images of each class (uint8 CPU batches) for the
    # contact sheet: a run of millions of samples must not hold them all in memory.
    accepted_images: list[torch.Tensor] = field(default_factory=list)
    accepted_labels: list[torch.Tensor] = field(default_factory=list)
    skipped_filters: dict[str, str] = field(default_factory=dict)  # name -> what went wrong
    _kept: dict[int, int] = field(default_factory=dict)  # class -> images kept for the sheet

    def keep_for_sheet(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        chosen = []
        for k, label in enumerate(labels.tolist()):
            if self._kept.get(label, 0) < SHEET_PER_CLASS:
                self._kept[label] = self._kept.get(label, 0) + 1
                chosen.append(k)
        if chosen:
            self.accepted_images.append(pixels[chosen])
            self.accepted_labels.append(labels[chosen])


def resolve_filters(
    plugins: Plugins, scenario: Scenario
) -> list[tuple[Contribution[QualityFilter], Any]]:
    known = plugins.contributions(FILTERS)
    chosen = []
    for name, threshold in scenario.filters.items():
        if name not in known:
            raise ConfigError(
                f"filters.{name}: no quality filter named {name!r}",
                f"installed filters: {', '.join(sorted(known)) or 'none'}",
            )
        if threshold != "off":
            chosen.append((known[name], threshold))
    return chosen


def calibrate(
    chosen: Sequence[tuple[Contribution[QualityFilter], Any]],
    real: torch.Tensor,
    context: FilterContext,
    cfg: SampleConfig | None = None,
) -> list[ActiveFilter]:
    """Fix each threshold; "auto" takes the default, loosened to what real images meet.

    With ``cfg.on_filter_error = "skip"`` a filter failing here keeps its default threshold;
    sampling then meets the same failure, drops the filter and reports why.
    """
    active = []
    for contribution, setting in chosen:
        qf = contribution.item
        if setting != "auto":
            active.append(ActiveFilter(contribution.plugin, qf, float(setting)))
            continue
        threshold = qf.threshold
        if len(real):
            timeout = cfg.filter_timeout if cfg else None
            try:
                scores = score_filter(contribution.plugin, qf, real, context, timeout).double()
            except PluginError:
                if cfg is None or cfg.on_filter_error == "fail":
                    raise
                active.append(ActiveFilter(contribution.plugin, qf, threshold))
                continue
            if qf.higher_is_better:
                threshold = min(threshold, torch.quantile(scores, 1 - AUTO_PASS_RATE).item())
            else:
                threshold = max(threshold, torch.quantile(scores, AUTO_PASS_RATE).item())
        active.append(ActiveFilter(contribution.plugin, qf, threshold))
    return active


def score_filter(
    plugin: str,
    qf: QualityFilter,
    images: torch.Tensor,
    context: FilterContext,
    timeout: float | None = None,
) -> torch.Tensor:
    """The filter's scores, checked: a raise, a hang past ``timeout`` s or junk is a PluginError."""
    where = f"quality filter {qf.name!r}"
    hint = (
        f"fix or update plugin {plugin!r}, turn the filter off with --set filters.{qf.name}=off,"
        " or let runs go on without it with --set sample.on_filter_error=skip"
    )
    try:
        scores = _call_with_timeout(lambda: qf.score(images, context), timeout)
    except TimeoutError:
        raise PluginError(
            plugin, where, f"took longer than {timeout:g} s (sample.filter_timeout)", hint
        ) from None
    except Exception as e:
        raise PluginError(plugin, where, f"{type(e).__name__}: {e}", hint) from e
    if not isinstance(scores, torch.Tensor) or scores.shape != (len(images),):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise PluginError(
            plugin,
            where,
            f"returned {shape} for {len(images)} images, not a tensor of shape ({len(images)},)",
            hint,
        )
    if not torch.isfinite(scores).all():
        raise PluginError(plugin, where, "returned NaN or infinite scores", hint)
    return scores.float().cpu()


def _call_with_timeout(call: Callable[[], Any], timeout: float | None) -> Any:
    """``call()`` in a daemon thread, abandoned after ``timeout`` s.

    Python cannot kill a thread, but a hung plugin left behind in a daemon thread no longer
    holds up the run, and does not keep the process alive at exit.
    """
    if timeout is None:
        return call()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:  # handed back to the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=target, name="aigc-filter", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def safe_names(class_names: Sequence[str]) -> list[str]:
    """Class names made safe as folder names: they come from data, never trusted as paths."""
    safe: list[str] = []
    for i, name in enumerate(class_names or ["samples"]):
        cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._")[:64] or f"class_{i}"
        safe.append(cleaned if cleaned not in safe else f"{cleaned}_{i}")
    return safe


def generate(
    model: GenerativeModel,
    seed: int,
    indices: Sequence[int],
    labels: torch.Tensor,
    truncation: float | None,
    device: str,
    scheme: Scheme = "counter",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``indices`` as float images in [0, 1] on the device, and as uint8 on the CPU."""
    images, pixels = generate_on_device(model, seed, indices, labels, truncation, device, scheme)
    return images, to_host(pixels).wait()


def generate_on_device(
    model: GenerativeModel,
    seed: int,
    indices: Sequence[int],
    labels: torch.Tensor,
    truncation: float | None,
    device: str,
    scheme: Scheme = "counter",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples ``indices`` as float images in [0, 1] and as uint8, both on the device.

    The noise is drawn on the device and the conversion to uint8 happens there, so only a
    quarter of the bytes cross to the host. bf16 autocast on CUDA: the generator's output
    is rounded to 8 bits anyway.
    """
    noise = noise_for(seed, indices, model.latent_dim, truncation, device, scheme)
    cuda = device.startswith("cuda")
    with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
        images = model.generate(noise, labels.to(device)).float().clamp_(-1, 1).add_(1).div_(2)
        pixels = images.mul(255).round_().to(torch.uint8)  # N x C x H x W
    return images, pixels


@dataclass
class HostCopy:
    """Pixels on their way to the host; ``wait()`` returns them once they have arrived."""

    pixels: torch.Tensor
    arrived: Any = None  # a torch.cuda.Event while the copy is in flight

    def wait(self) -> torch.Tensor:
        if self.arrived is not None:
            self.arrived.synchronize()
        return self.pixels


def to_host(pixels: torch.Tensor) -> HostCopy:
    """Start copying device pixels to the CPU. On CUDA the copy runs on a side stream into
    pinned memory, so the filters score the batch on the device while its pixels travel."""
    if pixels.device.type != "cuda":
        return HostCopy(pixels.cpu())
    compute = torch.cuda.current_stream(pixels.device)
    stream = _copy_streams.setdefault(pixels.device, torch.cuda.Stream(pixels.device))
    stream.wait_stream(compute)  # the pixels are computed before they are read
    host = torch.empty(pixels.shape, dtype=pixels.dtype, pin_memory=True)
    with torch.cuda.stream(stream):
        host.copy_(pixels, non_blocking=True)
        arrived = torch.cuda.Event()
        arrived.record(stream)
    pixels.record_stream(stream)  # the allocator keeps them until the copy has read them
    return HostCopy(host, arrived)


_copy_streams: dict[torch.device, Any] = {}


class Compiled:
    """The model with ``generate`` through torch.compile (``sample.compile = true``).

    Worth it for long runs: compiling takes tens of seconds, then the generator's small
    kernels are fused. Compiled kernels round differently from eager ones, so an image
    regenerated later (eagerly) can differ from the written one by a grey level.
    """

    def __init__(self, model: GenerativeModel) -> None:
        self.latent_dim = model.latent_dim
        self.generate = torch.compile(model.generate)


def pick_batch_size(model: GenerativeModel, setting: int | str, device: str) -> int:
    """``sample.batch_size``; for "auto", AUTO_BATCH on a CPU and on CUDA the largest power
    of two whose generation fits in MEMORY_SHARE of the free memory, measured on a probe."""
    if setting != "auto":
        return int(setting)
    if not device.startswith("cuda"):
        return AUTO_BATCH
    probe = 64
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    labels = torch.zeros(probe, dtype=torch.int64)
    generate_on_device(model, 0, range(probe), labels, None, device)
    per_image = (torch.cuda.max_memory_allocated(device) - before) / probe
    free, _ = torch.cuda.mem_get_info(device)
    return batch_for_memory(free, per_image)


def batch_for_memory(free_bytes: float, bytes_per_image: float, cap: int = 65536) -> int:
    """The largest power of two, at most ``cap``, whose images take at most MEMORY_SHARE of
    ``free_bytes``; 1 when even one image does not fit (and the first batch runs out of memory)."""
    fits = int(free_bytes * MEMORY_SHARE / max(bytes_per_image, 1.0))
    return min(cap, 1 << max(fits.bit_length() - 1, 0))


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
) -> SamplingResult:
    """Generate until ``sample.count`` images pass (or ``max_tries`` x count were tried).

    Generation and filtering run here; writing runs in worker processes for large runs
    (``output.write_processes``). ``on_batch`` sees each batch once its files are written.
    ``part`` = (rank, ranks) when several processes share the work (see dist.py):
    this one takes every ranks-th block of ``sample.batch_size`` (AUTO_BATCH for "auto")
    indices, from block ``rank``, until its share of the count passes, and writes its rows
    to ``manifest.part-RANK.csv``, which rank 0 merges.
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
    manifest = _Manifest(out_dir / name, {f.name: f.threshold for f in filters})
    writers = Writers(writer, pool_size(scenario.output.write_processes, count))
    try:
        while result.accepted < count and result.generated < count * cfg.max_tries:
            size = min(batch_size, count - result.accepted)
            indices = _part_indices(result.generated, size, block, part)
            labels = torch.tensor(indices, dtype=torch.int64) % num_classes
            images, on_device = generate_on_device(
                generator, cfg.seed, indices, labels, cfg.truncation, device, cfg.noise
            )
            copy = to_host(on_device)  # travels while the filters score the batch
            context = dataclasses.replace(reference, labels=labels.to(device))
            with torch.inference_mode():
                scores = _score_all(filters, images, context, cfg, result.skipped_filters)
            rejections = _decide(filters, scores, size)
            accepted = [not failed for failed in rejections]
            keep = torch.tensor(accepted, dtype=torch.bool)
            pixels = copy.wait()
            result.keep_for_sheet(pixels[keep], labels[keep])
            result.generated += size
            result.accepted += int(keep.sum())
            for failed in rejections:
                for rejection in failed:
                    name = rejection.filter
                    result.rejected_by[name] = result.rejected_by.get(name, 0) + 1
            thresholds = {f.name: f.threshold for f in filters if f.name in scores}
            batch = _Batch(
                cfg.seed, indices, labels, scores, thresholds, rejections, class_names
            )
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
    manifest: _Manifest,
    on_batch: Callable[[FilteredBatch, list[dict[str, Any]]], None],
    written: list[list[str]],
) -> None:
    """A batch's files are on disk: record it in the manifest, the registry and the hooks."""
    files = [""] * len(batch.indices)
    for (top, chosen), names in zip(slots, written, strict=True):
        for k, name in zip(chosen, names, strict=True):
            files[k] = f"{top}/{name}"
    names_of = batch.class_names
    rows = [
        {
            "file": files[k],
            "label": names_of[batch.labels[k]] if names_of else "",
            "seed": batch.seed,
            "index": batch.indices[k],
            "accepted": batch.accepted[k],
            "reason": describe_rejections(batch.rejections[k]),
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
            batch.accepted,
            [describe_rejections(failed) for failed in batch.rejections],
            files,
            batch.thresholds,
            [[r.filter for r in failed] for failed in batch.rejections],
        ),
        rows,
    )


def _score_all(
    filters: list[ActiveFilter],
    images: torch.Tensor,
    context: FilterContext,
    cfg: Any,
    skipped: dict[str, str],
) -> dict[str, torch.Tensor]:
    """Every filter's scores; with ``on_filter_error = "skip"`` a failing one is dropped."""
    scores = {}
    for f in list(filters):
        try:
            scores[f.name] = score_filter(f.plugin, f.filter, images, context, cfg.filter_timeout)
        except PluginError as e:
            if cfg.on_filter_error == "fail":
                raise
            filters.remove(f)
            skipped[f.name] = str(e.message)
    return scores


class Rejection(NamedTuple):
    """A quality filter that rejected a sample: its score and the threshold it missed."""

    filter: str
    score: float
    threshold: float
    higher_is_better: bool  # so it failed by scoring below the threshold (or else above)


def _decide(
    filters: Sequence[ActiveFilter], scores: dict[str, torch.Tensor], size: int
) -> list[list[Rejection]]:
    """For each sample, the filters it failed (none: accepted)."""
    rejections: list[list[Rejection]] = [[] for _ in range(size)]
    for f in filters:
        if f.name not in scores:
            continue
        for k, value in enumerate(scores[f.name].tolist()):
            if not f.filter.passes(value, f.threshold):
                rejections[k].append(
                    Rejection(f.name, value, f.threshold, f.filter.higher_is_better)
                )
    return rejections


def describe_rejections(rejections: Sequence[Rejection]) -> str:
    """For people: ``"near-duplicate 0.0175 < 0.02; ..."`` ("" when accepted)."""
    return "; ".join(
        f"{r.filter} {r.score:.4g} {'<' if r.higher_is_better else '>'} {r.threshold:.4g}"
        for r in rejections
    )


class _Manifest:
    """manifest.csv, appended batch by batch and flushed, so a crash keeps what was written.

    Per sample: its file, class, seed and index, whether it was kept, why not (for people),
    each filter's score, and the filters that rejected it (names, ";"-separated); each
    filter's threshold is a column too, so a row says everything about its decision.
    """

    def __init__(self, path: Path, thresholds: dict[str, float]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.thresholds = thresholds
        self.file = path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(
            [
                "file",
                "class",
                "seed",
                "index",
                "accepted",
                "reason",
                *(f"score:{n}" for n in thresholds),
                "rejected_by",
                *(f"threshold:{n}" for n in thresholds),
            ]
        )

    def append(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            self.writer.writerow(
                [
                    r["file"],
                    r["label"],
                    r["seed"],
                    r["index"],
                    int(r["accepted"]),
                    r["reason"],
                    *(_number(r["scores"].get(n)) for n in self.thresholds),
                    ";".join(name for name, _, _ in r["rejections"]),
                    *(_number(t) for t in self.thresholds.values()),
                ]
            )
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"  # blank: the filter was skipped


def contact_sheet(
    path: Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    per_class: int = 8,
    scale: int = 3,
) -> None:
    """A PNG grid of accepted samples: one row per class (or 8 x 8 when unconditional)."""
    from PIL import Image

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
    picture = picture.resize(
        (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
