"""Evaluation: how alike, how varied, how private and how useful generated images are.

``protocol.evaluate`` runs the scenario's metrics at the end of every run (and again with
``aigc-run evaluate``); the figures are stored in the registry, each beside its
real-vs-real floor ``<figure>:floor``. This module imports nothing heavy: the CLI uses
``describe`` to print figures.
"""

from __future__ import annotations

from collections.abc import Mapping

FLOOR = ":floor"
# A figure computed from too few images is stored as NaN with these two beside it: the
# images it had on its smaller side and the fewest it needs (``figures.fid``).
IMAGES, NEEDS = ":images", ":needs"
COMPANIONS = (FLOOR, IMAGES, NEEDS)


def not_measured(figures: Mapping[str, float]) -> dict[str, tuple[int, int]]:
    """The figures that had too few images: name -> (images, images needed)."""
    return {
        name[: -len(NEEDS)]: (int(figures.get(name[: -len(NEEDS)] + IMAGES, 0)), int(needs))
        for name, needs in figures.items()
        if name.endswith(NEEDS)
    }


def describe(figures: Mapping[str, float]) -> list[str]:
    """One line per figure, its floor beside it: ``fid:domain: 12.3 (real vs real: 4.5)``."""
    lines = []
    unmeasured = not_measured(figures)
    for name, value in figures.items():
        if name.endswith(COMPANIONS) or name in unmeasured:
            continue
        floor = figures.get(name + FLOOR)
        beside = "" if floor is None else f" (real vs real: {floor:.4g})"
        lines.append(f"{name}: {value:.4g}{beside}")
    for name, value in figures.items():  # a floor whose figure is missing still shows
        if name.endswith(FLOOR) and name[: -len(FLOOR)] not in figures:
            lines.append(f"{name}: {value:.4g}")
    if unmeasured:
        listed = ", ".join(
            f"{name} ({images} images, needs {needs})"
            for name, (images, needs) in unmeasured.items()
        )
        lines.append(
            f"not measurable, from too few images: {listed}; FID needs at least as many "
            "images on each side as its features have dimensions (more held-out images: "
            "raise data.holdout or give more data)"
        )
    return lines
