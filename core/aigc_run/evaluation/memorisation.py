"""Memorisation: are generated images copies of training images?

Each generated image's distance, in the domain feature space, to its nearest training image
(the reference) is compared with the same distance for real images the model never saw
(the held-out set). A sample is flagged when it is closer to a training image than
``MARGIN`` times the distance within which the closest ``QUANTILE`` of held-out real images
lie. Unseen real images are almost never flagged; copies and near copies of training
images always are: on PneumoniaMNIST the closest real neighbours lie at 2.1 and beyond,
copies with faint pixel noise within 0.4, and the threshold at about 1.2.

Held-out images identical in every pixel to a training image (real data sets hold a few
such duplicates) are copies, not unseen images: they are left out of the calibration.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from aigc_run.contract.components import EvaluationContext
from aigc_run.evaluation.metrics import nearest

QUANTILE = 0.01  # the closest 1% of held-out real images ...
MARGIN = 0.5  # ... lie beyond twice the threshold: a margin for the few real near-twins
WORST = 8  # closest samples written out with their nearest training image
SPACE = "domain"  # memorisation is judged in the domain space, whatever evaluate.features


@dataclass(frozen=True)
class Check:
    threshold: float
    distances: torch.Tensor  # float64 N: each sample to its nearest training image
    nearest: torch.Tensor  # int64 N: that training image's index
    flagged: torch.Tensor  # bool N
    held_out_flagged: torch.Tensor  # bool M: the same test on the held-out real images

    @property
    def rate(self) -> float:
        return float(self.flagged.double().mean())

    @property
    def floor(self) -> float:
        return float(self.held_out_flagged.double().mean())


def check(
    train: torch.Tensor,
    held_out: torch.Tensor,
    samples: torch.Tensor,
    calibrate: torch.Tensor | None = None,
) -> Check:
    """Flag samples closer to a training image than ``MARGIN`` x the ``QUANTILE``-quantile
    of the held-out images' distances (all three are feature vectors, N x D).
    ``calibrate`` (bool M) picks the held-out rows the threshold is set on; default all."""
    held_distances, _ = nearest(held_out, train)
    chosen = held_distances if calibrate is None else held_distances[calibrate]
    threshold = MARGIN * float(torch.quantile(chosen.cpu(), QUANTILE))
    distances, index = nearest(samples, train)
    return Check(threshold, distances, index, distances < threshold, held_distances < threshold)


def unseen(held_out: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """bool M: held-out images with no pixel-identical twin among the training images."""
    seen = {image.numpy().tobytes() for image in train}
    return torch.tensor([image.numpy().tobytes() not in seen for image in held_out])


def memorisation(context: EvaluationContext) -> dict[str, float]:
    """The metric: share of samples flagged, beside the share of held-out real images."""
    features = {
        name: context.features(SPACE, name) for name in ("reference", "held_out", "generated")
    }
    calibrate = unseen(context.held_out, context.reference).to(features["held_out"].device)
    result = check(
        features["reference"],
        features["held_out"],
        features["generated"],
        calibrate if calibrate.any() else None,  # all duplicates: calibrate on them all
    )
    write_worst_cases(context, result)
    return {f"memorisation:{SPACE}": result.rate, f"memorisation:{SPACE}:floor": result.floor}


def write_worst_cases(context: EvaluationContext, result: Check) -> Path:
    """``<output>/memorisation.json``: the closest samples, each beside its nearest training
    image, as PNGs under ``memorisation/``; paths are relative to the run's output folder."""
    folder = context.output_dir / "memorisation"
    shutil.rmtree(folder, ignore_errors=True)  # ours: a re-evaluation replaces it
    folder.mkdir(parents=True)
    prefix = f"{context.output_dir.name}/memorisation"
    cases = []
    order = torch.argsort(result.distances.cpu())[:WORST]
    for rank, i in enumerate(order.tolist()):
        j = int(result.nearest[i])
        _png(folder / f"{rank:02d}-sample.png", context.generated[i])
        _png(folder / f"{rank:02d}-train.png", context.reference[j])
        cases.append(
            {
                "sample": f"{prefix}/{rank:02d}-sample.png",
                "nearest_train": f"{prefix}/{rank:02d}-train.png",
                "distance": float(result.distances[i]),
                "threshold": result.threshold,
            }
        )
    path = context.output_dir / "memorisation.json"
    path.write_text(json.dumps(cases, indent=1))
    return path


def _png(path: Path, image: torch.Tensor) -> None:
    from PIL import Image

    pixels = image.permute(1, 2, 0).numpy()  # H x W x C uint8
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)
