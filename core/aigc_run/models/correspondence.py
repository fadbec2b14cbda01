"""Cross-domain correspondence (CDC, Ojha et al. 2021): a generator fine-tuned on a few
images keeps the variety of the one it started from (``train.cdc``).

Trained on a few photos, a generator drifts towards copying them. CDC keeps a frozen copy
of the generator as it started (the source) and has it draw the same noise as the one in
training. Within each group of GROUP samples, each sample's cosine similarities to the
others, at the output of every block, go through a softmax; the loss is the KL divergence
of the trained generator's distributions from the source's. The samples may change what
they look like (a new class, a new domain) but not how they differ from one another: two
noises that drew alike X-rays keep drawing alike ones. Groups of 4, as the paper's batches
of 4, keep each distribution sharp enough to carry a signal (over a batch of 32 the softmax
of similarities in [-1, 1] is nearly flat). The paper's patch-level discriminator is left
out. Written here rather than taken from a library: it is a few lines over the generator's
own block outputs (``Generator.forward``'s ``features``)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

GROUP = 4  # samples per similarity distribution (the paper's batch)


class Correspondence(nn.Module):
    """The frozen source generator, and the loss that keeps the trained one's sample
    similarities where the source's are."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.source = copy.deepcopy(generator).requires_grad_(False)
        for norm in self.source.modules():
            if isinstance(norm, nn.BatchNorm2d):
                norm.momentum = 0.0  # batch statistics, running ones left as they are

    def restart(self, generator: nn.Module) -> None:
        """Take ``generator``'s weights as the source (once it holds the trained model's)."""
        self.source.load_state_dict(generator.state_dict())

    def loss(
        self, z: torch.Tensor, labels: torch.Tensor, features: list[torch.Tensor]
    ) -> torch.Tensor:
        """The mean KL divergence, over the blocks and the samples, of the similarity
        distributions of ``features`` (the trained generator's block outputs for ``z`` and
        ``labels``) from the source's. The source runs in training mode (batch statistics,
        as the trained one does) without changing its own running statistics."""
        source: list[torch.Tensor] = []
        with torch.no_grad():
            self.source(z, labels, features=source)
        n = len(z) - len(z) % GROUP
        if n == 0:
            return z.new_zeros(())
        losses = [
            F.kl_div(_log_similarities(h[:n]), _log_similarities(h0[:n]), log_target=True,
                     reduction="batchmean")
            for h, h0 in zip(features, source, strict=True)
        ]  # fmt: skip
        return torch.stack(losses).mean()


def _log_similarities(h: torch.Tensor) -> torch.Tensor:
    """Per sample, the log-softmax of its cosine similarities to the other samples of its
    group: (N, ...) -> (N, GROUP - 1)."""
    flat = F.normalize(h.float().flatten(1), dim=1).view(-1, GROUP, h[0].numel())
    similarity = flat @ flat.transpose(1, 2)  # N/G x G x G
    others = ~torch.eye(GROUP, dtype=torch.bool, device=h.device)
    return F.log_softmax(similarity[:, others].view(-1, GROUP - 1), dim=1)
