"""The ``catalogue`` output: a folder per category and a product feed, for a shop or a
labelling tool.

``output.writer = "catalogue"`` writes each accepted sample as a PNG in a folder per
category (``samples/Shoes/0000012.png``; the folder names are the engine's safe names,
never the raw labels) and keeps a feed beside them, in two formats with the same rows:

- ``samples/feed.csv``: ``file,category,seed,index,score:<filter>...``
- ``samples/feed.jsonl``: ``{"file", "category", "seed", "index", "scores": {...}}``

``file`` is relative to ``samples/``; ``category`` is the class name as the data spelt
it; (seed, index) regenerates the image. Rejected samples stay out of the feed (they are
in ``rejected/`` and the run's manifest).

Why the feed is written from the ``after_samples_filtered`` hook and not by the writer:
a SampleWriter is handed only (folder, stems, pixels), while the hook receives the batch's
seed, indices, class names, scores and the files just written. Building the feed there
needs no change to the engine's contract, and each batch is appended and flushed as it
comes, so a run that stops halfway keeps a feed that matches the images on disk.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_run import FilteredBatch, RunInfo, write_png

if TYPE_CHECKING:
    import torch

WRITER = "catalogue"
FOLDER = "samples"  # where the engine puts accepted samples


def write_catalogue(folder: Path, stems: Sequence[str], images: torch.Tensor) -> list[str]:
    """The images: one PNG per sample in its category folder (marked as synthetic)."""
    return write_png(folder, stems, images)


def uses_catalogue(run: RunInfo) -> bool:
    return run.config.get("output", {}).get("writer") == WRITER


def append_feed(output_dir: Path, batch: FilteredBatch) -> int:
    """Append the batch's accepted samples to feed.csv and feed.jsonl; return how many."""
    folder = output_dir / FOLDER
    names = sorted(batch.scores)
    rows: list[dict[str, Any]] = []
    for k, accepted in enumerate(batch.accepted):
        if not accepted or not batch.files[k]:
            continue
        file = batch.files[k]
        rows.append(
            {
                "file": file[len(FOLDER) + 1 :] if file.startswith(f"{FOLDER}/") else file,
                "category": batch.labels[k],
                "seed": batch.seed,
                "index": batch.indices[k],
                "scores": {n: batch.scores[n][k] for n in names},
            }
        )
    if not rows:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "feed.csv"
    new = not csv_path.exists()
    with csv_path.open("a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["file", "category", "seed", "index", *(f"score:{n}" for n in names)])
        for r in rows:
            scores = [f"{r['scores'][n]:.6g}" for n in names]
            writer.writerow([r["file"], r["category"], r["seed"], r["index"], *scores])
    with (folder / "feed.jsonl").open("a", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return len(rows)
