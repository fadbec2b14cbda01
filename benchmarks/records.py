"""Where a benchmark's figures go: one JSON record under benchmarks/results/ that says what
was measured, where and how (commit, machine, threads, seeds, budget, command, date).

docs/benchmarks.md quotes these records and tests/test_docs_figures.py checks that every
figure it quotes is in one. A script writes its record with ``write_record``; a test that
runs a benchmark passes a scratch folder (``results``) so the committed records stay put.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def write_record(
    benchmark: str,
    figures: dict[str, Any],
    *,
    seeds: Iterable[int],
    budget: dict[str, Any],
    threads: int,
    argv: list[str],
    commit_measured: str | None = None,
    name: str | None = None,
    results: Path = RESULTS,
    notes: Iterable[str] = (),
    **fields: Any,
) -> Path:
    """Write ``results/<name or benchmark>.json`` and return its path. ``argv``: the
    script's arguments, which the record's command repeats; ``commit_measured``: the
    commit read when the measurement started (``commit()``), for a long run during which
    the checkout may move on (default: the commit now)."""
    record = {
        "benchmark": benchmark,
        "source": f"written by benchmarks/{benchmark}.py",
        "commit": commit_measured or commit(),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "threads": threads,
        "seeds": list(seeds),
        "budget": budget,
        "command": shlex.join(["python", f"benchmarks/{benchmark}.py", *argv]),
        "notes": list(notes),
        **fields,
        "figures": figures,
    }
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name or benchmark}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def commit() -> str | None:
    """The checkout's commit, with "-dirty" when tracked files differ from it (records under
    benchmarks/results/ aside: a benchmark run after another finds the other's record)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ":!benchmarks/results")
    return head + ("-dirty" if changed else "")


def machine() -> str:
    """CPU model and cores, memory, and the GPU if torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        text += f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    import torch

    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    else:
        text += ", no GPU"
    return text
