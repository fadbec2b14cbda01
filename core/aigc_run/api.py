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
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
        sample.max_tries x count; else the first ``count`` drawn, with their scores. Fewer
        than ``count`` pass the filters in that many tries: it returns those, with a warning."""
        draw = self.start(count, classes, seed, truncation, filtered, proportions)
        while draw.wanted:
            self.draw_round([draw])
        if draw.kept < count:
            warnings.warn(
                f"only {draw.kept} of {count} images passed the run's filters after "
                f"{draw.drawn} tries; train longer, or generate(..., filtered=False) for the "
                "images with their scores",
                stacklevel=2,
            )
        return self.result(draw)

    # generate in steps, for a caller that draws several asks at once (aigc-run serve)

    def start(
        self,
        count: int,
        classes: Sequence[str] = (),
        seed: int | None = None,
        truncation: float = 1.0,
        filtered: bool = True,
        proportions: str = "even",
    ) -> Draw:
        """An ask for images, as ``generate`` takes it, checked, with nothing drawn yet."""
        from aigc_run.run.generation import AUTO_BATCH
        from aigc_run.run.more_samples import class_plan

        if count < 1 or not 0 < truncation <= 1:
            raise ConfigError(
                f"generate(count={count}, truncation={truncation})",
                "count must be at least 1 and truncation in (0, 1]",
            )
        if self._trained.reference is None and filtered and self._filters:
            raise ConfigError(
                "this export has no training images (--no-reference), which the filters "
                "compare against",
                "generate(..., filtered=False) draws without them, or export with them",
            )
        cfg = self._trained.scenario.sample
        plan = class_plan(self._trained, classes, proportions) or (
            lambda done, size: list(range(done, done + size))
        )
        return Draw(
            count=count,
            seed=cfg.seed if seed is None else seed,
            psi=truncation,
            filtered=filtered,
            plan=plan,
            tries=count * cfg.max_tries if filtered else count,
            batch=cfg.batch_size if isinstance(cfg.batch_size, int) else AUTO_BATCH,
        )

    def draw_round(self, draws: Sequence[Draw]) -> None:
        """The next batch of every unfinished draw, all through one generator call. Each
        draw's batches are the ones ``generate`` would draw alone. A batch-independent
        filter scores the whole round in one call; any other (one that compares the images
        of a batch) scores each draw's batch by itself. So an image and its scores never
        depend on what else was drawn beside it."""
        import torch

        from aigc_run.noise import noise_for
        from aigc_run.run import filtering
        from aigc_run.run.generation import from_noise

        trained, cfg = self._trained, self._trained.scenario.sample
        classes = max(len(self.classes), 1)
        asks = [(d, d.plan(d.drawn, d.wanted)) for d in draws if d.wanted]
        if not asks:
            return
        noise = torch.cat([
            noise_for(d.seed, indices, trained.model.latent_dim, cfg.truncation, self.device,
                      cfg.noise, d.psi)
            for d, indices in asks
        ])  # fmt: skip
        labels = torch.tensor([i % classes for _, indices in asks for i in indices])

        def alone(f: filtering.ActiveFilter) -> bool:
            return f.filter.batch_independent

        with torch.inference_mode():
            images, pixels = from_noise(trained.model, noise, labels, self.device)
            reference = trained.reference
            if reference is not None:
                context = dataclasses.replace(reference, labels=labels.to(self.device))
                together = filtering.score_all(self._filters, images, context, cfg, {}, alone)
            start = 0
            for draw, indices in asks:
                part = slice(start, start + len(indices))
                start += len(indices)
                scores = {}
                if reference is not None:
                    context = dataclasses.replace(reference, labels=labels[part].to(self.device))
                    own = filtering.score_all(
                        self._filters, images[part], context, cfg, {}, lambda f: not alone(f)
                    )
                    scores = {  # in the filters' order, as generate has them
                        f.name: own[f.name] if f.name in own else together[f.name][part]
                        for f in self._filters
                    }
                rejected = filtering.decide(self._filters, scores, len(indices))
                draw.take(
                    pixels[part].cpu().numpy(), indices, labels[part].numpy(), scores, rejected
                )

    def result(self, draw: Draw) -> Generated:
        """What ``draw`` has drawn, as ``generate`` returns it."""
        names = self.classes or [""]
        parts, count = draw.parts, draw.count

        def joined(key: str) -> np.ndarray:
            return np.concatenate([p[key] for p in parts])[:count]

        return Generated(
            images=joined("pixels").transpose(0, 2, 3, 1),
            classes=[names[int(c)] for c in joined("labels")],
            indices=[int(i) for i in joined("indices")],
            seed=draw.seed,
            scores={
                name: np.concatenate([p["scores"][name] for p in parts])[:count]
                for name in parts[0]["scores"]
            },
            accepted=joined("accepted"),
        )


@dataclass
class Draw:
    """One ask for images, drawn batch by batch (``TrainedModel.start``, ``draw_round``)."""

    count: int
    seed: int
    psi: float
    filtered: bool
    plan: Callable[[int, int], list[int]]  # (drawn so far, how many) -> sample indices
    tries: int  # the most images it may draw
    batch: int  # the most images it draws in one round
    drawn: int = 0
    kept: int = 0
    parts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wanted(self) -> int:
        """How many images its next batch draws; 0 once it is done."""
        if self.kept >= self.count or self.drawn >= self.tries:
            return 0
        return min(self.batch, self.count - (self.kept if self.filtered else self.drawn))

    def take(
        self,
        pixels: np.ndarray,
        indices: Sequence[int],
        labels: np.ndarray,
        scores: Mapping[str, Any],
        rejected: Sequence[Sequence[Any]],
    ) -> None:
        """A batch drawn for it: keep the images that passed (every one, unfiltered)."""
        passed = np.array([not failed for failed in rejected])
        keep = passed | (not self.filtered)
        self.parts.append(
            {
                "pixels": pixels[keep],
                "indices": np.asarray(indices)[keep],
                "labels": labels[keep],
                "scores": {n: v.cpu().numpy()[keep] for n, v in scores.items()},
                "accepted": passed[keep],
            }
        )
        self.drawn += len(indices)
        self.kept += int(keep.sum())


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
