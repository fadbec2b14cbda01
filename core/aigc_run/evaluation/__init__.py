"""Evaluation: how alike, how varied, how private and how useful generated images are.

``protocol.evaluate`` runs the scenario's metrics at the end of every run (and again with
``aigc-run evaluate``); the figures are stored in the registry, each beside its
real-vs-real floor ``<figure>:floor``. This module imports nothing heavy: the CLI uses
``describe`` to print figures.
"""

from __future__ import annotations

from collections.abc import Mapping

FLOOR = ":floor"


def describe(figures: Mapping[str, float]) -> list[str]:
    """One line per figure, its floor beside it: ``fid:domain: 12.3 (real vs real: 4.5)``."""
    lines = []
    for name, value in figures.items():
        if name.endswith(FLOOR):
            continue
        floor = figures.get(name + FLOOR)
        beside = "" if floor is None else f" (real vs real: {floor:.4g})"
        lines.append(f"{name}: {value:.4g}{beside}")
    for name, value in figures.items():  # a floor whose figure is missing still shows
        if name.endswith(FLOOR) and name[: -len(FLOOR)] not in figures:
            lines.append(f"{name}: {value:.4g}")
    return lines
