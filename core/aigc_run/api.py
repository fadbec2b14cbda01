"""The Python API: a trained run's model in a notebook or a pipeline (docs/api.md).

    import aigc_run
    model = aigc_run.load(3)                         # run 3 of the registry, last checkpoint
    batch = model.generate(16, classes=["Dress"], seed=7, truncation=0.8)
    batch.images.shape                               # (16, H, W, C) uint8
    batch.pil()[0].save("dress.png")

Samples are drawn as ``aigc-run sample`` draws them: sample ``i`` from the noise of
(seed, i), asking for class ``i % K``, scored by the run's quality filters at the
thresholds the run fixed; weights load from safetensors only. It reads the registry and
the run's cached data (the filters compare against the training images).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aigc_run.contract.errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image

    from aigc_run.run.more_samples import Trained


@dataclass(frozen=True)
class Generated:
    """Images drawn by ``TrainedModel.generate``, and what the filters said of each."""

    images: np.ndarray  # uint8 N x H x W x C
    classes: list[str]  # the class each image was asked for ("" unlabelled)
    indices: list[int]  # with the seed, what regenerates each image exactly
    seed: int
    scores: dict[str, np.ndarray]  # quality filter name -> score of each image
    accepted: np.ndarray  # bool N: passed every filter (all True when filtered)

    @property
    def shape(self) -> tuple[int, ...]:
        """The images' shape: N x H x W x C."""
        return tuple(self.images.shape)

    def pil(self) -> list[Image.Image]:
        """The images as PIL images (grayscale or RGB)."""
        from PIL import Image

        return [Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a) for a in self.images]


class TrainedModel:
    """A trained run's model at one checkpoint, with its quality filters: ``aigc_run.load``."""

    def __init__(self, trained: Trained, filters: list[Any]) -> None:
        self._trained = trained
        self._filters = filters
        self.run_id = trained.run_id
        self.step = trained.step
        self.classes = list(trained.class_names)
        self.image_size = trained.scenario.data.image_size
        self.device = trained.device

    def __repr__(self) -> str:
        return (
            f"TrainedModel(run {self.run_id}, step {self.step}, {self.image_size} px, "
            f"classes {self.classes}, {self.device})"
        )

    def generate(
        self,
        count: int,
        classes: Sequence[str] = (),
        seed: int | None = None,
        truncation: float = 1.0,
        filtered: bool = True,
        proportions: str = "even",
    ) -> Generated:
        """``count`` images of ``classes`` (names, any case; default every class, evenly,
        or as often as in the training data with ``proportions="data"``), from ``seed``
        (default the run's sample.seed), each noise scaled by ``truncation`` (psi, 1 =
        off). ``filtered``: only images that pass the run's filters, drawing up to
        sample.max_tries x count; else the first ``count`` drawn, with their scores."""
        import torch

        from aigc_run.run import filtering
        from aigc_run.run.generation import AUTO_BATCH, generate
        from aigc_run.run.more_samples import class_plan

        if count < 1 or not 0 < truncation <= 1:
            raise ConfigError(
                f"generate(count={count}, truncation={truncation})",
                "count must be at least 1 and truncation in (0, 1]",
            )
        trained = self._trained
        unscored = trained.reference is None  # an export made with --no-reference
        if unscored and filtered and self._filters:
            raise ConfigError(
                "this export has no training images (--no-reference), which the filters "
                "compare against",
                "generate(..., filtered=False) draws without them, or export with them",
            )
        cfg = trained.scenario.sample
        seed = cfg.seed if seed is None else seed
        plan = class_plan(trained, classes, proportions) or (lambda d, n: list(range(d, d + n)))
        batch = cfg.batch_size if isinstance(cfg.batch_size, int) else AUTO_BATCH
        tries = count * cfg.max_tries if filtered else count
        parts: list[dict[str, Any]] = []
        kept = drawn = 0
        with torch.inference_mode():
            while kept < count and drawn < tries:
                size = min(batch, count - kept if filtered else count - drawn)
                indices = plan(drawn, size)
                labels = torch.tensor(indices, dtype=torch.int64) % max(len(self.classes), 1)
                images, pixels = generate(
                    trained.model, seed, indices, labels, cfg.truncation, self.device,
                    cfg.noise, truncation,
                )  # fmt: skip
                if unscored:
                    scores = {}
                else:
                    context = dataclasses.replace(trained.reference, labels=labels.to(self.device))
                    scores = filtering.score_all(self._filters, images, context, cfg, {})
                rejected = filtering.decide(self._filters, scores, size)
                keep = np.array([not failed or not filtered for failed in rejected])
                parts.append(
                    {
                        "pixels": pixels.numpy()[keep],
                        "indices": np.asarray(indices)[keep],
                        "labels": labels.numpy()[keep],
                        "scores": {n: s.cpu().numpy()[keep] for n, s in scores.items()},
                        "accepted": np.array([not failed for failed in rejected])[keep],
                    }
                )
                drawn += size
                kept += int(keep.sum())
        return self._collect(parts, count, seed)

    def _collect(self, parts: list[dict[str, Any]], count: int, seed: int) -> Generated:
        names = self.classes or [""]
        labels = np.concatenate([p["labels"] for p in parts])[:count]
        return Generated(
            images=np.concatenate([p["pixels"] for p in parts])[:count].transpose(0, 2, 3, 1),
            classes=[names[int(c)] for c in labels],
            indices=[int(i) for i in np.concatenate([p["indices"] for p in parts])[:count]],
            seed=seed,
            scores={
                name: np.concatenate([p["scores"][name] for p in parts])[:count]
                for name in parts[0]["scores"]
            },
            accepted=np.concatenate([p["accepted"] for p in parts])[:count],
        )


def load(
    run: int | str | os.PathLike[str], step: int | None = None, device: str | None = None
) -> TrainedModel:
    """Run ``run``'s model at checkpoint ``step`` (default: its last), on ``device``
    (default: the run's train.device, "auto" = CUDA when there is a GPU, else the CPU).

    ``run`` a path: the folder ``aigc-run export`` wrote (no registry or data needed; its
    files are checked against their sha256 first); ``step`` does not apply to it."""
    from aigc_run.plugins import load_plugins
    from aigc_run.run.more_samples import load_trained, run_filters
    from aigc_run.settings import Settings

    settings = Settings()
    if isinstance(run, str | os.PathLike):
        from aigc_run.run.export import load_export

        if step is not None:
            raise ConfigError(
                f"aigc_run.load({str(run)!r}, step={step}): an export holds one checkpoint",
                "export the run at that step: aigc-run export RUN_ID --checkpoint STEP",
            )
        plugins = load_plugins(settings.disabled)
        trained = load_export(Path(run), plugins, device)
    elif isinstance(run, int) and not isinstance(run, bool):
        plugins = load_plugins(settings.disabled)
        trained = load_trained(run, step, plugins, settings, device)
    else:
        raise ConfigError(
            f"aigc_run.load({run!r}): give a run id (an int) or an export folder (a path)",
            "aigc-run runs lists the runs",
        )
    return TrainedModel(trained, run_filters(trained, plugins))
