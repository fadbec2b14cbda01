"""The domain classifier as a quality filter's judge: "does this look like its class?".

The same domain network the evaluation uses (trained on the run's training images, cached
by their fingerprint), asked for the probability of the class each generated image was
drawn for. Plugins build filters on it: ecommerce's class-consistency (a "Shoes" sample
that looks like "Pants"), medical's anatomical-plausibility.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from aigc_run.components import FilterContext
    from aigc_run.evaluation.features import DomainFeatures

# Fingerprinting the reference images costs a hash over all of them; a run scores many
# batches against the same reference tensor, so the network is kept for that tensor. The
# tensor itself is held too: an address alone could be reused by a later tensor.
_current: list[tuple[torch.Tensor, DomainFeatures]] = []


def asked_class_probability(images: torch.Tensor, context: FilterContext) -> torch.Tensor:
    """N probabilities, by the domain classifier, that image i shows class labels[i].

    Unlabelled data (fewer than two classes) has no classifier to ask: every image gets
    1.0, so such a filter passes everything rather than guessing.
    """
    import torch

    classes = len(context.class_names)
    if classes < 2 or not len(images):
        return torch.ones(len(images), device=images.device)
    net = _network(context, classes)
    probabilities = net.class_probabilities(images).to(images.device)
    return probabilities.gather(1, context.labels.view(-1, 1).to(images.device)).squeeze(1)


def _network(context: FilterContext, classes: int) -> DomainFeatures:
    from aigc_run.evaluation.features import domain_features
    from aigc_run.settings import Settings

    reference = context.reference
    if not _current or _current[0][0] is not reference:
        net = domain_features(
            reference,
            context.reference_labels,
            classes,
            Settings().cache_dir,
            str(reference.device),
        )
        _current[:] = [(reference, net)]  # one run at a time: only the current reference
    return _current[0][1]
