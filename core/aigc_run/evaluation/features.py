"""The domain feature network: a small CNN trained on the scenario's own training images.

Why not only ImageNet features: Inception learnt photos of objects, and on 28-pixel chest
X-rays its features say little. This network learns what matters in the domain from the
training images themselves, in seconds on a CPU. It is cached by the training images'
fingerprint and ``PROTOCOL_VERSION``, so every run and re-evaluation on the same data uses
the same network and their figures compare.

One network serves both cases: an encoder to a ``FEATURES``-long code that is trained to
rebuild the image (an autoencoder, so the code keeps what tells two images apart, which
memorisation and diversity need) and, when the data has two or more classes, to classify
the image from its code (so the code holds what tells classes apart, and the network can
answer "which class is this image" for filters and reports: ``class_probabilities``).

The features are the code standardised by the training images' own codes: their mean is
subtracted and the result divided by one number, the root of their mean per-dimension
variance. One number keeps the geometry (distances and FID's covariances change only in
scale) while putting every data set on the same footing: the training images' features
have mean 0 and variance 1 per dimension, so a domain FID or KID reads like an Inception
one beside its floor (a raw code made KIDs of 1e4 beside floors of -5e3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aigc_run import checkpoints

PROTOCOL_VERSION = 3  # bump when the network, its training or its input changes
FEATURES = 128  # length of the code: the feature vector every domain metric compares
WIDTH = 16  # channels of the first convolution; 32 and 64 follow
STEPS = 500  # optimisation steps at most, whatever the data size: bounded cost
EPOCHS = 20  # ... or this many passes over a small set
MIN_STEPS = 100
BATCH = 64
LEARNING_RATE = 2e-3
SEED = 0
THUMBNAIL = 16  # side of the thumbnail the decoder rebuilds
CHUNK = 512  # images per forward pass when embedding
STEM_FROM = 64  # larger images enter through a strided patch stem, down to this side


class DomainNet(nn.Module):
    """Encoder (image -> code), decoder (code -> image) and, for labelled data, a class head."""

    center: torch.Tensor
    spread: torch.Tensor

    def __init__(self, channels: int, num_classes: int, image_size: int = STEM_FROM) -> None:
        super().__init__()
        w = WIDTH
        # Above STEM_FROM px a learned patch embedding (a k x k conv of stride k) reads
        # every pixel at full size and hands the rest of the network a STEM_FROM-sided map:
        # at 256 px a training step costs about what it costs at 64, not 16 times more.
        patch = max(1, image_size // STEM_FROM)
        stem: list[nn.Module] = []
        if patch > 1:
            stem = [nn.Conv2d(channels, w, patch, patch), nn.LeakyReLU(0.2)]  # -> w x 64 x 64
        self.encoder = nn.Sequential(
            *stem,
            nn.Conv2d(w if stem else channels, w, 3, 2, 1),  # C x S x S -> w x S/2 x S/2
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 3, 2, 1),  # -> 2w x S/4 x S/4
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1),  # -> 4w x S/8 x S/8
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(4),  # -> 4w x 4 x 4 at any image size
            nn.Flatten(),
            nn.Linear(4 * w * 16, FEATURES),  # -> FEATURES
        )
        # The decoder rebuilds a THUMBNAIL-sided thumbnail with two linear layers: enough for
        # the code to keep what tells two images apart, at a fraction of the cost of
        # transposed convolutions (which took 7/8 of the training time on a CPU).
        self.decoder = nn.Sequential(
            nn.Linear(FEATURES, 256),
            nn.LeakyReLU(0.2),
            nn.Linear(256, channels * THUMBNAIL * THUMBNAIL),  # -> C x T x T, flat
            nn.Tanh(),
        )
        self.head = nn.Linear(FEATURES, num_classes) if num_classes >= 2 else None
        # set by ``standardise`` after training, saved with the weights
        self.register_buffer("center", torch.zeros(FEATURES))
        self.register_buffer("spread", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images N x C x S x S in [-1, 1] -> standardised features N x FEATURES."""
        features: torch.Tensor = (self.encoder(x) - self.center) / self.spread
        return features

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Images N x C x S x S in [-1, 1] -> class logits N x classes."""
        assert self.head is not None
        logits: torch.Tensor = self.head(F.leaky_relu(self.encoder(x), 0.2))
        return logits

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        code = self.encoder(x)
        thumbnail = F.adaptive_avg_pool2d(x, THUMBNAIL).flatten(1)  # N x C*T*T
        loss = F.mse_loss(self.decoder(code), thumbnail)
        if self.head is not None:
            loss = loss + F.cross_entropy(self.head(F.leaky_relu(code, 0.2)), labels)
        return loss

    @torch.no_grad()
    def standardise(self, images: torch.Tensor) -> None:
        """Centre and scale the features on these (the training) uint8 images' codes."""
        self.center.zero_()
        self.spread.fill_(1.0)
        codes = _batched(images, str(self.center.device), self).double()
        self.center.copy_(codes.mean(0))
        self.spread.fill_(codes.var(0).mean().sqrt().clamp_min(1e-12).item())


class DomainFeatures:
    """A trained domain network: embeds images and says which class they look like.

    Images are uint8 (0-255) or float in [0, 1], N x C x H x W, on any device.
    """

    num_features = FEATURES

    def __init__(self, net: DomainNet, device: str) -> None:
        self.net = net.to(device).eval()
        self.device = device

    @property
    def num_classes(self) -> int:
        return 0 if self.net.head is None else self.net.head.out_features

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """N x FEATURES float features, on the network's device."""
        return _batched(images, self.device, self.net)

    @torch.no_grad()
    def class_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """N x classes softmax probabilities (the class-consistency question)."""
        if self.net.head is None:
            raise ValueError("the domain network was trained without labels: it has no classes")
        if len(images) == 0:
            return torch.zeros(0, self.num_classes, device=self.device)
        return torch.softmax(_batched(images, self.device, self.net.classify), dim=1)


def domain_features(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    num_classes: int,
    cache_dir: Path,
    device: str = "cpu",
    say: Callable[[str], None] = lambda text: None,
) -> DomainFeatures:
    """The domain network for these training images: from the cache, or trained now.

    ``images`` are the training images, N x C x H x W, uint8 or float in [0, 1] (as a
    quality filter's ``context.reference``), on any device; ``labels`` int64 N class indices
    (ignored when ``num_classes`` < 2). Training is seeded: the same images give the same
    network on the same machine, and the cached file gives it everywhere after.
    """
    pixels = _uint8_cpu(torch.as_tensor(images))
    targets = torch.as_tensor(labels).detach().cpu().long().contiguous()
    classes = num_classes if num_classes >= 2 else 0
    path = network_path(cache_dir, pixels, targets, num_classes)
    if path.is_file():
        net = DomainNet(int(pixels.shape[1]), classes, int(pixels.shape[-1]))
        net.load_state_dict(checkpoints.load(path))
    else:
        say(f"evaluation: training the domain feature network on {len(pixels)} images")
        # on the CPU whatever the run's device: the network is small, and a CPU and a GPU
        # run of the same data then share one network (the cache key has no device in it)
        net = train_network(pixels, targets, classes, "cpu")
        checkpoints.save(path, net.state_dict(), {"protocol": str(PROTOCOL_VERSION)})
    return DomainFeatures(net, device)


def network_path(
    cache_dir: Path,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    num_classes: int,
) -> Path:
    """Where ``domain_features`` keeps the network for these images in ``cache_dir``."""
    pixels = _uint8_cpu(torch.as_tensor(images))
    targets = torch.as_tensor(labels).detach().cpu().long().contiguous()
    key = fingerprint(pixels, targets, num_classes if num_classes >= 2 else 0)
    return cache_dir / "features" / f"domain-v{PROTOCOL_VERSION}-{key}.safetensors"


def _uint8_cpu(images: torch.Tensor) -> torch.Tensor:
    if images.is_floating_point():
        images = images.detach().mul(255).round().clamp(0, 255).to(torch.uint8)
    return images.detach().cpu().contiguous()


def fingerprint(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> str:
    """What the network depends on: the exact training pixels, labels and class count."""
    digest = hashlib.sha256(f"{PROTOCOL_VERSION}:{num_classes}:{tuple(images.shape)}".encode())
    digest.update(images.numpy().tobytes())
    if num_classes:
        digest.update(labels.numpy().tobytes())
    return digest.hexdigest()[:20]


def train_network(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    device: str,
    max_steps: int = STEPS,
) -> DomainNet:
    """A DomainNet trained with a fixed seed on uint8 images (and labels, for >= 2 classes).

    Small sets get fewer steps (``EPOCHS`` passes), so a 50-image test set trains in a blink.
    """
    steps = max(MIN_STEPS, min(max_steps, EPOCHS * len(images) // BATCH))
    # A private random stream: training the network never moves the caller's seeds, on
    # the CPU or on any GPU (manual_seed seeds them all).
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(SEED)
        net = DomainNet(int(images.shape[1]), num_classes, int(images.shape[-1]))
        net = net.to(device).train()
        optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
        picker = torch.Generator().manual_seed(SEED)
        for _ in range(steps):
            index = torch.randint(len(images), (min(BATCH, len(images)),), generator=picker)
            batch = images[index].to(device).float().div_(127.5).sub_(1.0)
            loss = net.loss(batch, labels[index].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        net.eval()
        net.standardise(images)
    return net


def _batched(
    images: torch.Tensor, device: str, net: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    out = []
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK].to(device)
        scaled = chunk.float().div(127.5).sub(1) if chunk.dtype == torch.uint8 else chunk * 2 - 1
        out.append(net(scaled.float()))
    if not out:
        return torch.zeros(0, FEATURES, device=device)
    return torch.cat(out)
