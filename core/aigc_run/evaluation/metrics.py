"""The figures, computed on feature vectors (N x D float tensors).

FID and KID are torchmetrics' own implementations, handed the features through an identity
"feature network" (``Precomputed``), so the features of each image set are computed once and
shared by every metric. Precision and recall (Kynkäänniemi et al. 2019) and density and
coverage (Naeem et al. 2020) use k-nearest-neighbour balls around each feature vector.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch
from torch import nn

K_NEAREST = 5  # neighbours that set a ball's radius (Naeem et al.'s choice for both pairs)
KID_SUBSETS = 100  # KID: mean over this many random subsets ...
KID_SUBSET_SIZE = 1000  # ... of at most this many images from each set
CHUNK = 1024  # rows per block of pairwise distances: bounds memory at CHUNK x N floats


class Precomputed(nn.Module):
    """An identity "feature network": torchmetrics gets features computed beforehand."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (each needs >= 2 rows)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    # sync_on_compute=False: the figures are this process's own. In a distributed run only
    # rank 0 evaluates; torchmetrics' default would wait for the other ranks to join in.
    metric = FrechetInceptionDistance(feature=Precomputed(real.shape[1]), sync_on_compute=False)
    metric.update(real.detach().double().cpu(), real=True)
    metric.update(fake.detach().double().cpu(), real=False)
    return float(metric.compute())


def kid(real: torch.Tensor, fake: torch.Tensor, seed: int) -> tuple[float, float]:
    """Kernel distance (unbiased squared MMD, cubic polynomial kernel): mean and std over
    subsets. The subsets are drawn from a private stream seeded with ``seed``."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(KID_SUBSET_SIZE, len(real), len(fake))
    with warnings.catch_warnings():  # "saves all features": ours are computed already
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(
            feature=Precomputed(real.shape[1]),
            subsets=KID_SUBSETS,
            subset_size=size,
            sync_on_compute=False,  # as for FID
        )
    metric.update(real.detach().double().cpu(), real=True)
    metric.update(fake.detach().double().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _distance_blocks(
    query: torch.Tensor, bank: torch.Tensor, dtype: torch.dtype = torch.float32
) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, block of Euclidean distances CHUNK x len(bank)) over the rows of ``query``."""
    for start in range(0, len(query), CHUNK):
        yield start, torch.cdist(query[start : start + CHUNK].to(dtype), bank.to(dtype))


def knn_radii(features: torch.Tensor, k: int = K_NEAREST) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the radius of its ball)."""
    k = min(k, len(features) - 1)
    radii = torch.empty(len(features), device=features.device)
    for start, block in _distance_blocks(features, features):
        # Column 0 of the sorted row is the point itself (distance 0): take column k.
        radii[start : start + len(block)] = block.kthvalue(k + 1, dim=1).values
    return radii


def nearest(query: torch.Tensor, bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row, the distance to its nearest bank row and that row's index.

    In float64: cdist's fast matrix-product form loses about 1e-3 to cancellation in
    float32, and an exact copy must come out at distance 0, not next to a real neighbour.
    """
    distances = torch.empty(len(query), dtype=torch.float64, device=query.device)
    indices = torch.empty(len(query), dtype=torch.int64, device=query.device)
    for start, block in _distance_blocks(query, bank, torch.float64):
        found = block.min(dim=1)
        distances[start : start + len(block)] = found.values
        indices[start : start + len(block)] = found.indices
    return distances, indices


def precision_recall(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Precision: share of fake rows inside some real row's k-NN ball (fidelity). Recall:
    share of real rows inside some fake row's ball (diversity). Kynkäänniemi et al. 2019."""
    real_radii, fake_radii = knn_radii(real), knn_radii(fake)
    return {
        "precision": _share_inside(fake, real, real_radii),
        "recall": _share_inside(real, fake, fake_radii),
    }


def density_coverage(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """Density: how many real balls hold each fake row, over k (about 1 when alike, above 1
    when samples crowd the dense parts). Coverage: share of real rows whose ball holds some
    fake row. Naeem et al. 2020, robust to outliers where precision and recall are not."""
    real_radii = knn_radii(real)
    k = min(K_NEAREST, len(real) - 1)
    inside = 0.0
    for _start, block in _distance_blocks(fake, real):
        inside += float((block <= real_radii[None, :]).sum())
    nearest_fake, _ = nearest(real, fake)
    return {
        "density": inside / (k * len(fake)),
        "coverage": float((nearest_fake <= real_radii).float().mean()),
    }


def _share_inside(query: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    hits = 0
    for _start, block in _distance_blocks(query, centres):
        hits += int((block <= radii[None, :]).any(dim=1).sum())
    return hits / len(query)
