"""Writing samples to disk: the writer plugin, inline or in a pool of worker processes.

PNG encoding costs about as much CPU per image as a small generator. For large runs the
writer plugin runs in worker processes, so the generator never waits on disk; results are
handed back in submission order, so the manifest and the registry stay in index order.
Worker processes are started with "spawn": forking a process that has started PyTorch's
thread pools can deadlock the child.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from aigc_run.contract.components import SampleWriter
from aigc_run.contract.errors import PluginError
from aigc_run.plugins import Contribution

POOL_FROM = 1024  # fewer samples than this are written inline: starting workers costs seconds

SHEET_TILE = (96, 128)  # contact sheets draw each sample at least 96 and at most 128 px wide

# (top folder, stems, uint8 images): one call of the writer plugin
Group = tuple[str, list[str], torch.Tensor]
Done = Callable[[list[list[str]]], None]


def write_groups(
    write: Callable[[Path, Sequence[str], torch.Tensor], list[str]],
    out_dir: Path,
    groups: Sequence[Group],
) -> list[list[str]]:
    """Call the writer once per group; runs in a worker process when there is a pool."""
    return [list(write(out_dir / top, stems, pixels)) for top, stems, pixels in groups]


def pool_size(setting: int | str, count: int) -> int:
    """``output.write_processes``: a number, or "auto" (all cores for runs of POOL_FROM+)."""
    if setting != "auto":
        return int(setting)
    return min(os.cpu_count() or 1, 8) if count >= POOL_FROM else 0


class Writers:
    """Submit groups of images; ``done(files)`` is called in order as writes complete."""

    def __init__(self, writer: Contribution[SampleWriter], processes: int) -> None:
        self.writer = writer
        self.pool: ProcessPoolExecutor | None = None
        if processes > 0 and _picklable(writer.item.write):
            context = multiprocessing.get_context("spawn")
            # One torch thread each: the workers encode files, and a full pool apiece would
            # crowd the cores the generator needs.
            self.pool = ProcessPoolExecutor(
                processes, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)
            )
            for _ in range(processes):  # start the workers (importing torch takes seconds)
                self.pool.submit(_warm_up)  # while the first batches are being generated
        self.in_flight = 2 * max(processes, 1)  # enough to keep every worker fed
        self.pending: deque[tuple[Future[list[list[str]]], Sequence[Group], Done]] = deque()

    def submit(self, out_dir: Path, groups: Sequence[Group], done: Done) -> None:
        if self.pool is None:
            write = self.writer.item.write
            done(self._checked(lambda: write_groups(write, out_dir, groups), groups))
            return
        future = self.pool.submit(write_groups, self.writer.item.write, out_dir, groups)
        self.pending.append((future, groups, done))
        self._drain(self.in_flight)

    def close(self) -> None:
        """Finish every pending write (their ``done`` calls run), then stop the workers."""
        try:
            self._drain(0)
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)

    def abort(self) -> None:
        """Stop without recording pending writes (the run is failing or interrupted)."""
        self.pending.clear()
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def _drain(self, keep: int) -> None:
        while len(self.pending) > keep or (self.pending and self.pending[0][0].done()):
            future, groups, done = self.pending.popleft()
            done(self._checked(future.result, groups))

    def _checked(self, call: Callable[[], list[list[str]]], groups: Sequence[Group]) -> Any:
        where = f"sample writer {self.writer.item.name!r}"
        try:
            written = call()
        except Exception as e:  # the plugin's own error, or a worker that died
            raise PluginError(self.writer.plugin, where, f"{type(e).__name__}: {e}") from e
        for files, (_, stems, _) in zip(written, groups, strict=True):
            if len(files) != len(stems):
                raise PluginError(
                    self.writer.plugin,
                    where,
                    f"returned {len(files)} file names for {len(stems)} images",
                )
        return written


def _warm_up() -> None:
    import torch  # noqa: F401  # what unpickling the first batch of images needs


def _picklable(function: Any) -> bool:
    """Worker processes get the writer by reference: a module-level function, not a lambda."""
    try:
        pickle.dumps(function)
    except Exception:
        return False
    return True


def sheet_size(width: int, height: int, side: int) -> tuple[tuple[int, int], int]:
    """The pixel size to draw a contact sheet of ``side``-pixel samples at, and the PIL
    resampling filter: small samples blown up by a whole factor with hard pixel edges (a
    32-px sample shown at 96), large ones shrunk to 128 px with Lanczos, so a sheet of
    256-px samples stays a readable size and a few megabytes."""
    from PIL import Image

    low, high = SHEET_TILE
    if side > high:
        factor = high / side
        return (round(width * factor), round(height * factor)), Image.Resampling.LANCZOS
    scale = max(1, low // max(side, 1))
    return (width * scale, height * scale), Image.Resampling.NEAREST
