"""The GPU path itself: skipped without CUDA, run on a lent GPU by benchmarks/gpu_check.py
(``pytest -m cuda``). Each test names the reading of the code it checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aigc_run import ModelSpec
from aigc_run.models import gan
from aigc_run.run.generation import generate

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def model(options: dict[str, object] | None = None) -> gan.Gan:
    spec = ModelSpec(3, 32, 3, True, {"width": 16, "latent_dim": 16, **(options or {})},
                     {"precision": "bf16"}, "cuda")  # fmt: skip
    torch.manual_seed(0)
    return gan.create(spec)


def batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 3, 32, 32, device="cuda") * 2 - 1, torch.arange(n, device="cuda") % 3


@pytest.mark.parametrize("d_norm", ["spectral", "batch"])
def test_a_resumed_bf16_gan_takes_its_next_step(d_norm: str) -> None:
    # channels_last networks, contiguous saved moments, fused Adam; spectral norm under
    # bf16 autocast (its power iteration in float32)
    first = model({"d_norm": d_norm})
    for _ in range(3):
        first.train_step(*batch())
    resumed = model({"d_norm": d_norm})
    resumed.load_state_dict(first.state_dict())
    losses = resumed.train_step(*batch())
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())


def test_a_sample_redrawn_alone_is_within_two_grey_levels_of_its_batch() -> None:
    trained = model()
    labels = torch.arange(64) % 3
    _, pixels = generate(trained, 7, range(64), labels, None, "cuda")
    _, alone = generate(trained, 7, [5], labels[5:6], None, "cuda")
    assert (pixels[5].int() - alone[0].int()).abs().max() <= 2


def test_the_domain_network_trains_on_the_cpu_and_leaves_the_gpu_seed(tmp_path: Path) -> None:
    from aigc_run.evaluation.features import domain_features

    images = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(64) % 2
    torch.cuda.manual_seed(123)
    before = torch.cuda.get_rng_state()
    on_gpu = domain_features(images, labels, 2, tmp_path, "cuda")
    assert torch.equal(torch.cuda.get_rng_state(), before)
    on_cpu = domain_features(images, labels, 2, tmp_path, "cpu")  # the cached network
    assert torch.allclose(on_gpu(images).cpu(), on_cpu(images), atol=1e-4)
