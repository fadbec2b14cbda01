"""A Gaussian mixture over a VAE's latent codes, one per class, fitted and sampled in torch.

Sampling a VAE from its N(0, I) prior decodes codes from regions no training image maps
to, and those decode to blurs. Fitting a mixture on the codes of the training images (an
estimate of the aggregate posterior, as in Ghosh et al. 2020's "ex-post density
estimation") and sampling from it instead keeps samples where the decoder was trained.
Its parameters are buffers, so they ride in the safetensors checkpoint.
"""

from __future__ import annotations

import math

import torch
from torch import nn

EM_ITERATIONS = 50
MIN_VARIANCE = 1e-4  # keeps a component that caught a single code from collapsing to a point


class LatentMixture(nn.Module):
    """``components`` diagonal Gaussians per class over ``dim``-dimensional codes."""

    weights: torch.Tensor  # classes x K, summing to 1 per class once fitted
    means: torch.Tensor  # classes x K x dim
    stds: torch.Tensor  # classes x K x dim

    def __init__(self, classes: int, components: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weights", torch.zeros(classes, components))  # all 0: not fitted
        self.register_buffer("means", torch.zeros(classes, components, dim))
        self.register_buffer("stds", torch.ones(classes, components, dim))

    @property
    def fitted(self) -> bool:
        return bool(self.weights.sum() > 0)

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, labels: torch.Tensor) -> None:
        """EM on ``codes`` (N x dim) class by class; a class without codes gets all of them."""
        for c in range(self.weights.shape[0]):
            own = codes[labels == c]
            weights, means, variances = _em(own if len(own) else codes, self.weights.shape[1])
            k = len(weights)
            self.weights[c].zero_()
            self.weights[c, :k] = weights
            self.means[c, :k] = means
            self.stds[c, :k] = variances.sqrt()

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Codes N x dim from standard normal ``noise`` N x dim: a pure function of each row.

        The first noise value picks the component (through its normal CDF, against the
        class's cumulative weights) and is then stretched back to a standard normal within
        the slice it fell in, so each code still gets ``dim`` independent normal values.
        """
        weights = self.weights[labels]  # N x K
        cumulative = weights.cumsum(dim=1)
        u = 0.5 * (1 + torch.erf(noise[:, :1] / math.sqrt(2)))  # N x 1, uniform in (0, 1)
        u = u * cumulative[:, -1:]  # the weights sum to 1 up to rounding
        pick = torch.searchsorted(cumulative, u, right=True).clamp_(max=weights.shape[1] - 1)
        chosen = weights.gather(1, pick)  # N x 1
        low = cumulative.gather(1, pick) - chosen
        stretched = ((u - low) / chosen.clamp_min(1e-12)).clamp(1e-6, 1 - 1e-6)
        first = math.sqrt(2) * torch.erfinv(2 * stretched - 1)  # N x 1, standard normal again
        noise = torch.cat([first, noise[:, 1:]], dim=1)
        rows = labels * weights.shape[1] + pick.squeeze(1)  # index into classes x K
        means = self.means.flatten(0, 1)[rows]  # N x dim
        stds = self.stds.flatten(0, 1)[rows]
        return means + stds * noise


def _em(x: torch.Tensor, components: int) -> tuple[torch.Tensor, ...]:
    """Diagonal-covariance EM on x (N x D): weights K, means K x D, variances K x D."""
    n, d = x.shape
    k = min(components, n)
    means = _spread_out(x, k)
    variances = x.var(dim=0, correction=0).clamp_min(MIN_VARIANCE).expand(k, d).clone()
    log_weights = torch.full((k,), -math.log(k), device=x.device)
    for _ in range(EM_ITERATIONS):
        # E: log N(x | mean_k, var_k) + log w_k, N x K, without forming N x K x D.
        precision = 1 / variances
        log_density = -0.5 * (
            x.square() @ precision.T
            - 2 * x @ (means * precision).T
            + (means.square() * precision).sum(1)
            + variances.log().sum(1)
            + d * math.log(2 * math.pi)
        )
        resp = torch.softmax(log_density + log_weights, dim=1)  # N x K
        # M: weighted means and variances.
        mass = resp.sum(0) + 1e-10  # K
        log_weights = (mass / n).log()
        means = (resp.T @ x) / mass[:, None]
        variances = ((resp.T @ x.square()) / mass[:, None] - means.square()).clamp_min(MIN_VARIANCE)
    return log_weights.exp(), means, variances


def _spread_out(x: torch.Tensor, k: int) -> torch.Tensor:
    """k starting means chosen as in k-means++: each next one far from those chosen so far.

    Started at k random codes, EM often put two means in one cluster and none in another
    and never recovered.
    """
    chosen = [int(torch.randint(len(x), (1,), device=x.device))]
    nearest = (x - x[chosen[0]]).square().sum(1)  # squared distance to the nearest chosen
    for _ in range(k - 1):
        chosen.append(int(torch.multinomial(nearest.clamp_min(1e-12), 1)))
        nearest = torch.minimum(nearest, (x - x[chosen[-1]]).square().sum(1))
    return x[chosen].clone()
