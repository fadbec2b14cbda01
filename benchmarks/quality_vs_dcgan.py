"""Quality per minute: the scenario's default recipe against the canonical DCGAN recipe.

Both train on the same images (the scenario's own loading and preprocessing, at 32x32)
for the same wall-clock budget, one after the other in this process, then both are
scored with the same feature networks (the domain network trained on the data, and the
standard Inception network unless --inception-samples 0) and the same number of samples.
Inception runs at about 6 images per second on a 2-core CPU, so it scores the first
--inception-samples (default 2000) of each set. FID on n images is biased upward by about
c/n, by a similar amount for both recipes, which pulls their ratio towards 1: the JSON
also gives the FID on the first 1000 (as runs before scored) and the unbiased KID in the
same feature space. Compare ratios, not figures with published tables (those use 50,000
images). Writes JSON with both recipes' scores, their ratios (scenario / DCGAN: below 1
means the scenario recipe wins), the steps each did and the budget.

    python benchmarks/quality_vs_dcgan.py --data clothing --minutes 10 --out clothing.json
    python benchmarks/quality_vs_dcgan.py --data pneumoniamnist --minutes 10

The canonical recipe is the one of pytorch/examples' dcgan, written out here for 32 px
(three up-sampling blocks instead of four): transposed-conv generator and strided-conv
discriminator of the same width (64), batch norm, BCE loss, Adam lr 2e-4, betas
(0.5, 0.999), batch 64, unconditional, N(0, 0.02) init. The discriminator ends in a logit
scored with BCEWithLogitsLoss: the example's Sigmoid + BCELoss, computed stably. Its
samples are scored twice, with batch norm's running statistics and with each batch's own
(as the example draws them), and each FID takes the better of the two.

Timing figures need a quiet machine: other processes on the same cores shrink both
budgets unevenly.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from aigc_run.contract.kinds import MODEL_FAMILIES

REPO = Path(__file__).resolve().parents[1]
DATASETS = {  # --data name -> (scenario, path under the data folder)
    "clothing": ("ecommerce", "clothing"),
    "pneumoniamnist": ("medical", "pneumoniamnist/pneumoniamnist.npz"),
}
IMAGE_SIZE = 32
SMALL_INCEPTION = 1000  # also scored on the first this many Inception features (see score)


# -- scoring ----------------------------------------------------------------------------


def make_scorer(
    images: np.ndarray,
    labels: np.ndarray,
    classes: int,
    real: torch.Tensor,
    cache: Path,
    inception_samples: int,
) -> Callable[[torch.Tensor], dict[str, float]]:
    """``score(fake)``: FIDs of ``fake`` against ``real`` (uint8 N x C x H x W CPU tensors),
    lower is better, in the evaluation's feature spaces (docs/evaluation.md): the domain
    network trained on this data set (``fid_domain``, on every sample) and, unless
    ``inception_samples`` is 0, the standard TF-Inception network (``fid_inception``,
    comparable with published tables, on the first ``inception_samples`` of each set: it
    runs at about 5 images per second on a 2-core CPU). Both recipes are scored by the same
    networks against the same real features, computed once."""
    from aigc_run.evaluation.features import domain_features
    from aigc_run.evaluation.inception import InceptionFeatures
    from aigc_run.evaluation.metrics import fid, kid

    domain = domain_features(images, labels, classes, cache)
    real_domain = domain(real)
    standard = InceptionFeatures() if inception_samples else None
    real_standard = None
    if standard is not None:  # minutes on a CPU: cached by the exact real pixels
        digest = hashlib.sha256(real[:inception_samples].numpy().tobytes()).hexdigest()[:20]
        path = cache / "features" / f"inception-{digest}.safetensors"
        if path.is_file():
            real_standard = load_file(path)["features"]
        else:
            real_standard = standard(real[:inception_samples])
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"features": real_standard.contiguous()}, path)

    def score(fake: torch.Tensor) -> dict[str, float]:
        scores = {"fid_domain": fid(real_domain, domain(fake))}
        if standard is not None:
            fake_standard = standard(fake[:inception_samples])
            scores["fid_inception"] = fid(real_standard, fake_standard)
            # FID's bias falls as 1/n and lifts both recipes' figures by about the same
            # amount, which pulls their ratio towards 1: the figure on the first 1000
            # (what earlier runs scored) beside the one on all of them shows how far.
            if inception_samples > SMALL_INCEPTION:
                head = slice(0, SMALL_INCEPTION)
                scores[f"fid_inception_{SMALL_INCEPTION}"] = fid(
                    real_standard[head], fake_standard[head]
                )
            # KID has no such bias: an unbiased cross-check of the ratio in the same space.
            scores["kid_inception"] = kid(real_standard, fake_standard, seed=0)[0]
        return scores

    return score


# -- the canonical DCGAN ------------------------------------------------------------------


class DcganGenerator(nn.Module):
    """z (N x 100 x 1 x 1) -> 4x4 x 4w -> 8x8 x 2w -> 16x16 x w -> 32x32 x C, tanh."""

    def __init__(self, latent: int, width: int, channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = latent
        for i, c_out in enumerate((width * 4, width * 2, width)):
            stride, pad = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride, pad, bias=False)]
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(True)]
            c_in = c_out
        layers += [nn.ConvTranspose2d(c_in, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DcganDiscriminator(nn.Module):
    """image -> 16x16 x w -> 8x8 x 2w -> 4x4 x 4w -> one logit per image."""

    def __init__(self, width: int, channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False)]
        layers += [nn.LeakyReLU(0.2, True)]
        c_in = width
        for c_out in (width * 2, width * 4):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out)]
            layers += [nn.LeakyReLU(0.2, True)]
            c_in = c_out
        layers += [nn.Conv2d(c_in, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten()  # N logits


def _dcgan_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def train_dcgan(
    images: np.ndarray, minutes: float, seed: int, width: int, device: str
) -> tuple[DcganGenerator, int, float]:
    """Train the canonical recipe for ``minutes``; returns G, the steps done and the seconds."""
    torch.manual_seed(seed)
    channels = images.shape[1]
    generator = DcganGenerator(100, width, channels).to(device)
    discriminator = DcganDiscriminator(width, channels).to(device)
    generator.apply(_dcgan_init)
    discriminator.apply(_dcgan_init)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    batch, steps, started = 64, 0, time.monotonic()
    while time.monotonic() - started < minutes * 60:
        real = data[torch.randint(len(data), (batch,), device=device)].float() / 127.5 - 1
        fake = generator(torch.randn(batch, 100, 1, 1, device=device))
        ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)
        loss_d = F.binary_cross_entropy_with_logits(discriminator(real), ones)
        loss_d = loss_d + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        steps += 1
    return generator, steps, time.monotonic() - started


@torch.no_grad()
def dcgan_samples(
    generator: DcganGenerator, count: int, seed: int, device: str, batch_stats: bool
) -> torch.Tensor:
    """``count`` samples, with batch norm's running statistics (eval mode) or, as the
    example draws its samples (it never calls ``eval()``), with the statistics of each batch
    of 64. Both are scored and the better one is the baseline, so the comparison does not
    hang on which way suits this generator (main takes each FID's lower figure)."""
    generator.train(batch_stats)
    z = torch.randn(count, 100, 1, 1, generator=torch.Generator().manual_seed(seed))
    out = [generator(chunk.to(device)).cpu() for chunk in z.split(64 if batch_stats else 500)]
    return _to_uint8(torch.cat(out))


# -- the scenario's recipe, through the engine's own training loop ------------------------


def train_scenario(scenario: Any, dataset: Any, plugins: Any, minutes: float, device: str) -> Any:
    """Train the scenario's model with ``aigc_run.run.training.train`` for ``minutes``."""
    from aigc_run.contract.components import RunInfo
    from aigc_run.registry import Registry
    from aigc_run.run.setup import build_model
    from aigc_run.run.training import train

    scenario.train.steps = 10**9  # the budget stops it
    scenario.train.max_minutes = minutes
    scenario.train.checkpoint_every = 10**9  # one checkpoint, at the end
    scenario.train.log_every = 500
    family = plugins.contributions(MODEL_FAMILIES)[scenario.model.family]
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(f"sqlite:///{tmp}/benchmark.db")
        config = scenario.model_dump(mode="json")
        run_id = registry.create_run(scenario.name, config, {}, device, tmp)
        run = RunInfo(run_id, scenario.name, config, Path(tmp), device)
        model = build_model(family, scenario, dataset, device)
        started = time.monotonic()
        last = train(model, dataset.images, dataset.labels, scenario, run, plugins, registry)
        seconds = time.monotonic() - started
        registry.close()
    return model, last.step, seconds


def scenario_samples(model: Any, labels: np.ndarray, count: int, seed: int) -> torch.Tensor:
    """``count`` samples whose classes follow the training set's class frequencies."""
    rng = np.random.default_rng(seed)
    wanted = torch.from_numpy(rng.choice(labels, count))
    z = torch.randn(count, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    pairs = zip(z.split(500), wanted.split(500), strict=True)
    out = [model.generate(zs, ys).cpu() for zs, ys in pairs]
    return _to_uint8(torch.cat(out))


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# -- main ---------------------------------------------------------------------------------


def load(data: str, data_dir: Path, cache: Path, overrides: list[str]) -> tuple[Any, Any, Any]:
    """The scenario for ``data`` at 32x32 (with ``--set`` overrides) and its images, loaded
    as a run would load them."""
    from aigc_run.data import load_dataset
    from aigc_run.plugins import load_plugins
    from aigc_run.scenario import read_toml, resolve

    name, relative = DATASETS[data]
    path = data_dir / relative
    if not path.exists():
        raise SystemExit(f"{path} does not exist: give --data-dir (or set AIGC_TEST_DATA)")
    plugins = load_plugins(set())
    content = read_toml(REPO / "scenarios" / f"{name}.toml")
    scenario = resolve(content, overrides, str(path), environ={})
    scenario.data.image_size = IMAGE_SIZE
    dataset = load_dataset(plugins, scenario, cache, say=lambda text: print(text, flush=True))
    # Off the read-only memory map, once: torch warns about tensors over read-only arrays.
    dataset = dataclasses.replace(dataset, images=np.array(dataset.images))
    return scenario, dataset, plugins


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=sorted(DATASETS), default="clothing")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data")),
        help="the folder holding clothing/ and pneumoniamnist/ (default: $AIGC_TEST_DATA)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each")
    parser.add_argument("--samples", type=int, default=5000, help="generated images per FID")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dcgan-width", type=int, default=64, help="ngf = ndf of the example")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "aigc-bench")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    parser.add_argument(
        "--inception-samples",
        type=int,
        default=2000,
        help="images per set for the standard Inception FID (0 skips it; about 6 images/s "
        "on a 2-core CPU; needs aigc-run[inception]); above 1000 the FID on the first 1000 "
        "is reported too",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change the scenario's recipe, as aigc-run's --set (to compare candidates)",
    )
    args = parser.parse_args(argv)

    scenario, dataset, plugins = load(args.data, args.data_dir, args.cache, args.set)
    print(f"{len(dataset.images)} images {tuple(dataset.images.shape[1:])}", flush=True)
    real_index = np.random.default_rng(args.seed).choice(
        len(dataset.images), min(args.samples, len(dataset.images)), replace=False
    )
    real = torch.from_numpy(dataset.images[real_index])  # shuffled: a prefix is a fair subset
    inception_samples = min(args.inception_samples, len(real))
    score = make_scorer(
        dataset.images, dataset.labels, dataset.num_classes, real, args.cache, inception_samples
    )
    print("real features ready", flush=True)

    generator, dcgan_steps, dcgan_seconds = train_dcgan(
        dataset.images, args.minutes, args.seed, args.dcgan_width, args.device
    )
    print(f"dcgan: {dcgan_steps} steps in {dcgan_seconds:.0f} s", flush=True)
    dcgan_modes = {
        mode: score(dcgan_samples(generator, args.samples, args.seed, args.device, batch_stats))
        for mode, batch_stats in (("running_stats", False), ("batch_stats", True))
    }
    del generator
    # The baseline's figure for each FID is its better mode's: the comparison is against
    # the canonical recipe at its best, whichever way suits it.
    dcgan_scores = {
        key: min(m[key] for m in dcgan_modes.values()) for key in dcgan_modes["batch_stats"]
    }

    recipe = scenario.model.model_dump()
    model, steps, seconds = train_scenario(scenario, dataset, plugins, args.minutes, args.device)
    print(f"scenario {scenario.name}: {steps} steps in {seconds:.0f} s", flush=True)
    fake = scenario_samples(model, dataset.labels, args.samples, args.seed)
    scenario_scores = score(fake)

    result = {
        "data": args.data,
        "image_size": IMAGE_SIZE,
        "images": len(dataset.images),
        "budget_minutes": args.minutes,
        "samples": args.samples,
        "real_samples": len(real),
        "inception_samples": inception_samples,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "dcgan": {
            "steps": dcgan_steps,
            "seconds": round(dcgan_seconds, 1),
            **dcgan_scores,
            "sampling": dcgan_modes,  # each FID above is the lower of the two modes
        },
        "scenario": {
            "name": scenario.name,
            "overrides": args.set,
            "recipe": {"model": recipe, "train": scenario.train.model_dump()},
            "steps": steps,
            "seconds": round(seconds, 1),
            **scenario_scores,
        },
        "ratio": {
            key: scenario_scores[key] / dcgan_scores[key] if dcgan_scores[key] else math.nan
            for key in scenario_scores
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
