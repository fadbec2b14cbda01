"""manifest.csv: one row per sample, what it is and why it was kept or not."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class Manifest:
    """manifest.csv, appended batch by batch and flushed, so a crash keeps what was written.

    Per sample: its file, class, seed, index and truncation psi (sample.psi), whether it was
    kept, why not (for people), each filter's score, and the filters that rejected it
    (names, ";"-separated); each filter's threshold is a column too, so a row says
    everything about its decision.
    """

    def __init__(self, path: Path, thresholds: dict[str, float], psi: float = 1.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.thresholds = thresholds
        self.psi = psi
        self.file = path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(
            [
                "file",
                "class",
                "seed",
                "index",
                "truncation",
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
                    f"{self.psi:g}",
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
