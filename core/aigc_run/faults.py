"""Deterministic fault injection: the process kills itself with SIGKILL at a named point.

``AIGC_FAULT=NAME`` kills the process the first time it reaches point ``NAME``;
``AIGC_FAULT=NAME:N`` the N-th time (counting from 1, in this process). Unset, every point
returns at once: the variable is read once, at import. A kill chosen this way lands at the
same place in every run, so the reliability tests can replay any one of them by its name
(tests/reliability/test_kills.py). Each point sits in the middle of an operation, where a
power cut or an OOM killer would do the most harm:

- ``train-step``: a training step's optimiser update is done, the step is not yet
  checked, logged or checkpointed (run/training.py); N is the N-th step this process took.
- ``checkpoint-write``: the checkpoint's temporary file is written and synced, not yet
  renamed to its final name (checkpoints.py); the evaluation's feature network, trained
  once per cache, is saved through it too.
- ``sampling-batch``: a batch's image files are written, its manifest rows, registry rows
  and hooks are not (run/sampling.py).
- ``registry-write``: a registry transaction that wrote rows has run its statements and
  not committed (registry/store.py); transactions that only read are not counted.
- ``evaluation``: a metric's figures are computed, not yet written to evaluation.json or
  the registry (run/evaluation.py); N is the N-th metric.
- ``report``: the report's pictures are written, its page is not (report.py).

Every process reads the variable, so in a run over several processes each one dies at
its own N-th visit.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "AIGC_FAULT"
POINTS = (
    "train-step",
    "checkpoint-write",
    "sampling-batch",
    "registry-write",
    "evaluation",
    "report",
)


def _parse(text: str) -> tuple[str, int] | None:
    """``NAME`` or ``NAME:N`` -> (NAME, N); None when unset. ValueError for a bad value."""
    if not text:
        return None
    name, _, count = text.partition(":")
    occurrence = int(count) if count.isdigit() else 0 if count else 1
    if name not in POINTS or occurrence < 1:
        raise ValueError(
            f"{VARIABLE}={text!r}: expected NAME or NAME:N with N >= 1, NAME one of "
            + ", ".join(POINTS)
        )
    return name, occurrence


_armed = _parse(os.environ.get(VARIABLE, ""))
_reached = 0  # times this process reached the armed point


def armed(name: str) -> bool:
    """Whether ``AIGC_FAULT`` names point ``name`` (for a point that costs work to find)."""
    return _armed is not None and _armed[0] == name


def point(name: str) -> None:
    """Kill this process with SIGKILL if ``AIGC_FAULT`` names this visit of ``name``."""
    global _reached
    if _armed is None or name != _armed[0]:
        return
    _reached += 1
    if _reached == _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
