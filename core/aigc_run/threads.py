"""How many CPU threads torch uses: a fair share of a machine that may be busy.

torch starts one thread per core. On a machine where other work already keeps some cores
busy, every parallel step then waits for its slowest thread, the one sharing a core with
the other work: on 2 cores with one busy process, a training run went 2.6x slower with 2
threads than with 1. ``choose("auto")`` counts the cores this process may use
(``os.sched_getaffinity``), measures how many of them other processes keep busy over a
fifth of a second (``/proc/stat``), and takes the rest, at least one. The number is chosen
once, when a command starts: a run keeps it, so its arithmetic (and a resume's) stays the
same. An explicit ``OMP_NUM_THREADS`` or a number (``train.threads``, ``AIGC_THREADS``)
is used as given.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")
WINDOW_S = 0.2  # how long the other processes' load is measured


def cores() -> set[int]:
    """The cores this process may run on."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def busy_cores(mine: set[int], window: float = WINDOW_S, stat: Path = PROC_STAT) -> float:
    """How many of the cores ``mine`` other processes kept busy over ``window`` seconds,
    in cores' worth of CPU time (0 where /proc/stat cannot be read). Measured while this
    process sleeps, so it is the others' load."""

    def sample() -> tuple[int, int]:
        total = idle = 0
        for line in stat.read_text().splitlines():
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in mine:
                continue
            fields = [int(v) for v in values]
            total += sum(fields)
            idle += fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return total, idle

    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    spent = total1 - total0
    return 0.0 if spent <= 0 else len(mine) * (1 - (idle1 - idle0) / spent)


def choose(setting: int | str, environ: dict[str, str] | None = None) -> int | None:
    """The thread count for ``setting`` (a number, or "auto"); None leaves torch as
    ``OMP_NUM_THREADS`` set it."""
    environ = dict(os.environ) if environ is None else environ
    if setting != "auto":
        return int(setting)
    if environ.get("AIGC_THREADS", "auto") != "auto":
        return int(environ["AIGC_THREADS"])
    if "OMP_NUM_THREADS" in environ:
        return None
    mine = cores()
    return max(1, min(len(mine), round(len(mine) - busy_cores(mine))))


def apply(count: int | None) -> int:
    """Set torch's thread count (None: leave it); returns the count in use."""
    import torch

    if count is not None and count != torch.get_num_threads():
        torch.set_num_threads(count)
    return torch.get_num_threads()
