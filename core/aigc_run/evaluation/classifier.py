"""The domain classifier as a quality filter's judge: "does this look like its class?".

The same domain network the evaluation uses (trained on the run's training images, cached
by their fingerprint), asked for class probabilities. The engine puts one in every
``FilterContext`` it makes (``context.classifier``); plugins build filters on
``context.asked_class_probability``: ecommerce's class-consistency (a "Shoes" sample that
looks like "Pants"), medical's anatomical-plausibility.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from aigc_run.evaluation.features import DomainFeatures


class DomainClassifier:
    """``classifier(images)`` -> N x classes probabilities, float images in [0, 1].

    The network is trained (or read from the cache) on the first call only: a run whose
    filters never ask pays nothing.
    """

    def __init__(
        self,
        reference: torch.Tensor,
        reference_labels: torch.Tensor,
        classes: int,
        cache_dir: Path,
    ) -> None:
        self.reference = reference
        self.reference_labels = reference_labels
        self.classes = classes
        self.cache_dir = cache_dir
        self._network: DomainFeatures | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self._network is None:
            from aigc_run.evaluation.features import domain_features

            self._network = domain_features(
                self.reference,
                self.reference_labels,
                self.classes,
                self.cache_dir,
                str(self.reference.device),
            )
        return self._network.class_probabilities(images)
