"""The ``gan`` family: a class-conditional DCGAN-style GAN that trains in minutes on a CPU.

Generator (generator.py): DCGAN layout, 4x4 up to the image size, doubling each block,
with class-conditional batch norm. Discriminator (below): strided convs with spectral
norm, a minibatch-std feature and a projection head for the class; or DCGAN's own layers
(``upsample = "transposed"``, ``d_norm = "batch"``). Hinge or non-saturating loss, Adam,
and an exponential moving average (EMA) of the generator for sampling, whose batch-norm
statistics are re-measured after training. Options for small data and long runs, off by
default: DiffAugment (``augment``, with a fixed or adaptive probability, ``augment_p``), a
lazy R1 penalty (``r1``), a separate D learning rate (``train.lr_d``), D's first blocks
frozen (``train.freeze_d``, for fine-tuning from ``train.init_from``; transfer.py), and the
cascade (``upscale``: G and D at a fraction of the image size, a learned upscaler to lift
the samples, upscaler.py). On CUDA the passes run under bfloat16
autocast in channels_last layout (``train.precision``); on the CPU nothing changes.

Every key and its default is in ``GanOptions`` (the [model] section) and the scenario's
``TrainConfig`` ([train]); what each recipe scored is in docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import torch
from pydantic import ConfigDict, Field
from torch import nn
from torch.nn import functional as F

from aigc_run.contract.components import GenerativeModel, ModelSpec
from aigc_run.contract.errors import ConfigError
from aigc_run.models import transfer
from aigc_run.models.augment import AdaptiveProbability, augment
from aigc_run.models.base import (
    adam,
    channels_at,
    check_geometry,
    flat_state,
    load_flat_state,
    parse_options,
    parse_train,
    spectral_norm,
    uses_bf16,
)
from aigc_run.models.generator import Generator, dcgan_init
from aigc_run.models.upscaler import Upscaler, downscale
from aigc_run.scenario import ModelConfig

UPSCALER_LR = 1e-3  # the upscaler's Adam learning rate (a regression, not a game)
# ADA: p steers E[sign(D(real))] to 0.6, as in the paper; it could go from 0 to 1 in 20,000
# images, where the paper takes 500,000: runs here are thousands of steps, not millions.
ADA_TARGET, ADA_IMAGES = 0.6, 20_000
#: What a run started from a trained model (train.init_from) augments with when its
#: scenario sets neither model.augment nor model.augment_p.
FINE_TUNE_AUGMENT: dict[str, Any] = {"augment": ["color", "translation"], "augment_p": "ada"}
R1_EVERY = 4  # lazy R1 (StyleGAN2): the penalty, scaled up, on every 4th D step only
# prepare_sampling's BN statistics: 4 batches of 256 samples at 32 px and below; above,
# batches of as many pixels (64 at 64 px), at least 16 samples each.
STANDING_BATCHES, STANDING_BATCH, STANDING_MIN = 4, 256, 16


class GanOptions(ModelConfig):
    """The gan family's [model] keys: the shared ones (``ModelConfig``) and its own."""

    model_config = ConfigDict(extra="forbid")

    loss: Literal["hinge", "nonsaturating"] = "hinge"
    ema: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.999  # EMA decay of G; 0 = sample from G itself
    # DiffAugment policies applied to everything D sees (see augment.py); for small data sets.
    augment: list[Literal["color", "translation", "cutout"]] = Field(default_factory=list)
    # The probability each image gets each policy: a number, or "ada" (adapted every step
    # from how sure D is of the real images, ADA; logged as augment_p).
    augment_p: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["ada"] = 1.0
    r1: Annotated[float, Field(ge=0.0, le=1000.0)] = 0.0  # R1 penalty weight (gamma); 0 = off
    # DCGAN's layers, for data where they score better: G up-samples with 4x4 stride-2
    # transposed convs, D uses batch norm instead of spectral norm (see Discriminator).
    upsample: Literal["nearest", "transposed"] = "nearest"
    d_norm: Literal["spectral", "batch"] = "spectral"
    # The cascade: G and D train at image_size / upscale, and a small upscaler, trained on
    # the same real images (averaged down, against the originals), lifts every sample to
    # the image size (upscaler.py). 1 = off.
    upscale: Literal[1, 2, 4] = 1


class MinibatchStd(nn.Module):
    """Append one feature map: the spread of the features across a group of images.

    From ProGAN/StyleGAN. D can then see that a batch of fakes is too alike, which stopped
    the generator from giving every sample of a class the same colour in short runs.
    Groups are ``group`` consecutive images, so a batch of reals followed by as many fakes
    never mixes the two as long as ``group`` divides the half.
    """

    def forward(self, h: torch.Tensor, group: int) -> torch.Tensor:
        n, c, s, _ = h.shape
        # In float32 even under bf16 autocast: a spread rounded to 0 gives sqrt an infinite
        # gradient.
        grouped = h.float().view(n // group, group, c, s, s)
        # Written out rather than .var(1): torch's var over a middle dim is ~6x slower on CPU.
        spread = (grouped - grouped.mean(1, keepdim=True)).square().mean(1)  # N/g x C x s x s
        spread = (spread + 1e-8).sqrt().mean(dim=(1, 2, 3))  # N/g
        spread = spread.repeat_interleave(group).view(n, 1, 1, 1).expand(n, 1, s, s)
        return torch.cat([h, spread.to(h.dtype)], dim=1)  # N x C+1 x s x s


class Discriminator(nn.Module):
    """image (+ class) -> realness score N. Mirrors the generator.

    ``norm="spectral"``: spectral norm on every layer, then a minibatch-std feature and a
    3x3 conv at 4x4. ``norm="batch"``: DCGAN's discriminator, batch norm after every conv
    but the first and no spectral norm; batch statistics would mix reals and fakes, so the
    model scores the two in separate passes (``batch_norm``).
    """

    def __init__(
        self, width: int, channels: int, levels: int, classes: int, norm: str = "spectral"
    ):
        super().__init__()
        self.batch_norm = norm == "batch"
        wrap: Callable[[nn.Module], nn.Module] = (lambda m: m) if self.batch_norm else spectral_norm
        layers: list[nn.Module] = []
        ends: list[int] = []
        c_in = channels
        for level in reversed(range(levels)):  # halves the size each time: H -> H/2 ... -> 4
            c_out = channels_at(width, level, levels)
            layers.append(wrap(nn.Conv2d(c_in, c_out, 4, 2, 1)))
            if self.batch_norm and c_in != channels:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, True))
            ends.append(len(layers))
            c_in = c_out
        self.features = nn.Sequential(*layers)  # N x c0 x 4 x 4
        self.block_ends = ends  # index in ``features`` after each block's activation
        self.mbstd = None if self.batch_norm else MinibatchStd()
        self.head = (
            nn.Identity()
            if self.batch_norm
            else nn.Sequential(
                spectral_norm(nn.Conv2d(c_in + 1, c_in, 3, 1, 1)), nn.LeakyReLU(0.2, True)
            )
        )  # N x c0 x 4 x 4
        self.linear = wrap(nn.Linear(c_in * 16, 1))
        # Projection discriminator (Miyato & Koyama 2018): the class score is the inner
        # product of a class embedding with the features summed over the 4x4 positions,
        # which conditions D far more reliably than feeding the label in as an extra input
        # channel. Summed, as in SNGAN, rather than one embedding per position (16x fewer
        # class parameters): in 10-minute runs with DCGAN's layers on 2 CPU cores it scored
        # as well, within the spread of repeated runs (Inception FID on PneumoniaMNIST 34.8
        # and 40.3 summed, 37.6 per position; on clothing 96.6 summed, 94.9 and 96.2).
        embed = nn.Embedding(classes, c_in) if classes > 1 else None
        if self.batch_norm:
            self.apply(dcgan_init)
            if embed is not None:  # N(0, 1) rows would swamp the score without spectral norm
                nn.init.normal_(embed.weight, 0.0, 0.02)
        self.embed = wrap(embed) if embed is not None else None

    def blocks(self, count: int) -> nn.Module:
        """The first ``count`` blocks, from the image side (what train.freeze_d fixes)."""
        return self.features[: self.block_ends[count - 1]] if count else nn.Sequential()

    def forward(self, images: torch.Tensor, labels: torch.Tensor, group: int) -> torch.Tensor:
        h = self.features(images)
        h = self.head(h if self.mbstd is None else self.mbstd(h, group))  # N x c0 x 4 x 4
        out = self.linear(h.flatten(1)).squeeze(1)  # N
        if self.embed is not None:
            out = out + (self.embed(labels) * h.sum(dim=(2, 3))).sum(dim=1)
        return out


class Gan(GenerativeModel):
    """The GenerativeModel the engine drives."""

    def __init__(self, spec: ModelSpec):
        options = parse_options(spec, GanOptions)
        train = parse_train(spec)
        if train.init_from is not None and not {"augment", "augment_p"} & options.model_fields_set:
            # Fine-tuning on a few photos: adaptive augmentation, unless the scenario says
            # otherwise (benchmarks/few_shot.py: it beat fine-tuning without it on both data sets)
            options = options.model_copy(update=FINE_TUNE_AUGMENT)
        self.options = options
        levels = check_geometry(spec) - int(math.log2(options.upscale))
        if levels < 2:
            raise ConfigError(
                f"model.upscale: the GAN would train at {spec.image_size // options.upscale} "
                "px, under the 16 px the built-in models need",
                "lower model.upscale or raise data.image_size",
            )
        self.latent_dim = options.latent_dim
        self.image_size = spec.image_size
        width = options.width
        self.classes = spec.num_classes if spec.conditional and spec.num_classes > 1 else 0
        self.device = torch.device(spec.device)
        self.bf16 = uses_bf16(self.device, train.precision)

        self.generator = Generator(
            self.latent_dim, width, spec.channels, levels, self.classes, options.upsample
        )
        self.discriminator = Discriminator(
            width, spec.channels, levels, self.classes, options.d_norm
        )
        self.upscaler = Upscaler(spec.channels, options.upscale) if options.upscale > 1 else None
        if options.augment_p == "ada" and not options.augment:
            raise ConfigError(
                'model.augment_p: "ada" adapts the probability of model.augment\'s policies, '
                "and none is set",
                "set model.augment, e.g. --set \"model.augment=['color', 'translation']\"",
            )
        self.ada = (
            AdaptiveProbability(self.device, ADA_TARGET, ADA_IMAGES)
            if options.augment_p == "ada"
            else None
        )
        # channels_last lets bf16 convs use tensor cores; on the CPU the layout stays as is.
        for net in (self.generator, self.discriminator, self.upscaler):
            if net is None:
                continue
            net.to(self.device)
            if self.bf16:  # torch's stubs lack Module.to's memory_format keyword
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        # The EMA copy is never trained; it only follows G's weights (and copies its BN stats).
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        # What the updates call: the networks themselves, or their DistributedDataParallel
        # wrappers in a run over several processes (``distribute``). Checkpoints always hold
        # the plain networks, so their format does not depend on the number of processes.
        self.generator_train: nn.Module = self.generator
        self.discriminator_train: nn.Module = self.discriminator
        self.upscaler_train: nn.Module | None = self.upscaler

        lr, lr_d = train.lr, train.lr_d
        betas = (train.beta1, train.beta2)
        if train.freeze_d >= levels:
            raise ConfigError(
                f"train.freeze_d: the discriminator has {levels} blocks at this size; "
                f"freezing {train.freeze_d} would leave none to train",
                f"set train.freeze_d to at most {levels - 1}",
            )
        # FreezeD: D's first blocks keep the weights they start with (from train.init_from).
        frozen = {id(p) for p in self.discriminator.blocks(train.freeze_d).parameters()}
        self.d_trained = [p for p in self.discriminator.parameters() if id(p) not in frozen]
        for p in self.discriminator.blocks(train.freeze_d).parameters():
            p.requires_grad_(False)
        self.opt_g = adam(self.generator.param_groups(lr, train.lr_g_coarse), lr, betas)
        self.opt_d = adam(self.d_trained, float(lr_d or lr), betas)
        self.opt_sr = (
            adam(self.upscaler.parameters(), UPSCALER_LR, betas) if self.upscaler else None
        )
        self.step = 0

    # -- training ------------------------------------------------------------------------

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> bool:
        """Train G and D through DistributedDataParallel wrappers (``wrap``), which average
        their gradients over the processes of the run.

        D's update runs one wrapped forward (reals and fakes in one batch) and one backward;
        a batch-norm D runs two, the first inside ``no_sync`` (see ``train_step``). G's
        update scores the fakes with the plain D: D's weights get no gradient there, and a
        second wrapped forward would wait for a gradient sync that never comes. BatchNorm
        statistics are per process; DDP copies rank 0's buffers (G's and D's BN statistics,
        D's spectral-norm vectors) to every rank at each wrapped forward.
        """
        if self.options.r1:
            raise ConfigError(
                "model.r1: the R1 penalty needs a double backward through D, which "
                "DistributedDataParallel does not support",
                "set model.r1=0 to train over several processes, or train in one process",
            )
        self.generator_train = wrap(self.generator)
        self.discriminator_train = wrap(self.discriminator)
        if self.upscaler is not None:
            self.upscaler_train = wrap(self.upscaler)
        return True

    def _d(
        self, images: torch.Tensor, labels: torch.Tensor, group: int, net: nn.Module | None = None
    ) -> torch.Tensor:
        if self.options.augment:
            p = self.ada.p if self.ada is not None else float(self.options.augment_p)
            images = augment(images, self.options.augment, p)
        net = self.discriminator if net is None else net
        return net(images, labels, group).float()  # N, float32 for the losses

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16)

    def _d_loss(self, scores: torch.Tensor, real: bool) -> torch.Tensor:
        """D's loss on scores of reals (``real``) or of fakes."""
        sign = -1.0 if real else 1.0
        if self.options.loss == "hinge":
            return F.relu(1 + sign * scores).mean()
        return F.softplus(sign * scores).mean()  # non-saturating: softplus(-x) = -log sigmoid(x)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D and one G update (and one of the upscaler, in a cascade). Returns 0-dim
        tensors, read only when logged (no GPU wait)."""
        full = images
        if self.upscaler is not None:  # G and D see the images at their own, smaller size
            images = downscale(full, self.upscaler.factor)
        n = images.shape[0]
        group = math.gcd(4, n)  # minibatch-std groups: 4 images, or what divides the batch
        if not self.classes:
            labels = torch.zeros_like(labels)
        if self.bf16:
            images = images.contiguous(memory_format=torch.channels_last)
        z = torch.randn(n, self.latent_dim, device=self.device)
        with self._autocast():
            # One generator pass serves both updates (as in the PyTorch DCGAN example): D
            # sees it detached, then G is scored by the updated D. It saves a G forward pass.
            fake = self.generator_train(z, labels)  # N x C x H x W
        fake_in = fake.detach().to(images.dtype)
        net = self.discriminator_train
        self.opt_d.zero_grad(set_to_none=True)
        if self.discriminator.batch_norm:
            # Batch statistics must not mix reals and fakes: two passes, each with its own
            # backward. Over several processes the first one only accumulates (no_sync)
            # and the second averages the sum over the processes, as one backward would.
            with _no_sync(net), self._autocast():
                real_score = self._d(images, labels, group, net)
                loss_real = self._d_loss(real_score, real=True)
            loss_real.backward()
            with self._autocast():
                fake_score = self._d(fake_in, labels, group, net)
                loss_fake = self._d_loss(fake_score, real=False)
                penalty = self._r1(images, labels, group) if self.options.r1 else None
            (loss_fake if penalty is None else loss_fake + penalty).backward()
            loss_d = loss_real.detach() + loss_fake.detach()
        else:
            with self._autocast():
                # Real and fake in one call. The minibatch-std groups (``group``
                # consecutive images, ``group`` divides N) never straddle the halves.
                both = torch.cat([images, fake_in])  # 2N x C x H x W
                scores = self._d(both, torch.cat([labels, labels]), group, net)
                real_score, fake_score = scores[:n], scores[n:]
                loss_d = self._d_loss(real_score, real=True) + self._d_loss(fake_score, real=False)
                penalty = self._r1(images, labels, group) if self.options.r1 else None
            (loss_d if penalty is None else loss_d + penalty).backward()
        self.opt_d.step()

        # G: make D call the fakes real. D is frozen meanwhile, which skips computing its
        # weight gradients; the gradient still flows through D to G.
        for p in self.d_trained:
            p.requires_grad_(False)
        with self._autocast():
            fake_score = self._d(fake, labels, group)
        for p in self.d_trained:
            p.requires_grad_(True)
        if self.options.loss == "hinge":
            loss_g = -fake_score.mean()
        else:
            loss_g = F.softplus(-fake_score).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        losses = {
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": real_score.detach().mean(),
            "d_fake": fake_score.detach().mean(),
        }
        if self.ada is not None:  # after both updates, so that D and G saw the same p
            losses["augment_p"] = self.ada.p
            self.ada.update(real_score)
        if self.upscaler is not None and self.upscaler_train is not None and self.opt_sr:
            with self._autocast():
                small = downscale(full, self.upscaler.factor)
                loss_sr = F.l1_loss(self.upscaler_train(small).float(), full.float())
            self.opt_sr.zero_grad(set_to_none=True)
            loss_sr.backward()
            self.opt_sr.step()
            losses["loss_upscaler"] = loss_sr.detach()

        self.step += 1
        self._update_ema()
        return losses

    def _r1(self, images: torch.Tensor, labels: torch.Tensor, group: int) -> torch.Tensor | None:
        """R1 (Mescheder et al. 2018): the squared gradient of D at the real images.

        It stops D from growing steep around the data, which is what makes a GAN on a
        few thousand images oscillate; applied lazily, every R1_EVERY steps, scaled up.
        """
        if self.step % R1_EVERY:
            return None
        real = images.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self._d(real, labels, group).sum(), real, create_graph=True)
        return grad.float().square().sum(dim=(1, 2, 3)).mean() * (self.options.r1 / 2 * R1_EVERY)

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Ramp the decay up from 0 so the average is not dominated by the random start in a
        # run of a few hundred steps: decay_t = min(ema, (1 + t) / (10 + t)).
        decay = min(self.options.ema, (1 + self.step) / (10 + self.step))
        ema_params: list[torch.Tensor] = [*self.generator_ema.parameters()]
        params: list[torch.Tensor] = [*self.generator.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)  # ema += (1 - decay) * (p - ema)
        buffers = zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True)
        for ema_buf, buf in buffers:
            ema_buf.copy_(buf)

    # -- sampling ------------------------------------------------------------------------

    @torch.no_grad()
    def prepare_sampling(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Re-measure the batch-norm statistics of the generator that samples.

        During training the EMA generator copies G's running statistics, but those were
        measured on G's own, newer weights, and they lag even G by ~10 steps. Sampling
        with statistics that do not fit the weights washed out and mis-coloured the
        samples: on PneumoniaMNIST (10 minutes on 2 CPU cores) re-measuring them
        ("standing statistics", as in BigGAN) took the domain FID from 1.56 to 0.63.
        STANDING_BATCHES batches of noise, with classes drawn as often as in the training
        set, from a fixed seed: the same weights always get the same statistics. The
        batches shrink as the images grow, so that a 256-px generator does not need
        gigabytes for it. 4 x 256 images at 32 px put the statistics within 2% of a
        standard deviation of 4,096 images' (samples within 3 of 255 levels) on a trained
        ecommerce model, at the cost of about 8 training steps of the shipped recipe.
        """
        net = self.generator_ema if self.options.ema > 0 else self.generator
        norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        if not norms or len(labels) == 0:
            return
        draws = torch.Generator(self.device).manual_seed(0)
        was_training = net.training
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # None: a plain average over every batch
        batch = max(STANDING_MIN, min(STANDING_BATCH, STANDING_BATCH * 32**2 // self.image_size**2))
        net.train()
        try:
            for _ in range(STANDING_BATCHES):
                z = torch.randn(batch, self.latent_dim, device=self.device, generator=draws)
                pick = torch.randint(len(labels), (batch,), device=self.device, generator=draws)
                classes = labels.to(self.device)[pick] if self.classes else torch.zeros_like(pick)
                with self._autocast():
                    net(z, classes)
        finally:
            for norm in norms:
                norm.momentum = 0.1
            net.train(was_training)

    @torch.no_grad()
    def realness(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """D's logits for ``images``, in eval mode (batch norm's running statistics, the
        spectral norms as they stand), so an image's score does not depend on its batch;
        a cascade's D scores the images averaged down to its own size."""
        images = images.to(self.device, torch.float32)
        if self.upscaler is not None:
            images = downscale(images, self.upscaler.factor)
        labels = labels.to(self.device, torch.int64)
        if not self.classes:
            labels = torch.zeros_like(labels)
        was_training = self.discriminator.training
        self.discriminator.eval()
        try:
            with self._autocast():
                group = math.gcd(4, len(images))
                return self.discriminator(images, labels, group).float()
        finally:
            self.discriminator.train(was_training)

    def generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        net = self.generator_ema if self.options.ema > 0 else self.generator
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                noise = noise.to(self.device, torch.float32)
                labels = labels.to(self.device, torch.int64)
                if not self.classes:
                    labels = torch.zeros_like(labels)
                images = net(noise, labels)  # N x C x H x W in [-1, 1] (tanh)
                if self.upscaler is not None:
                    self.upscaler.eval()
                    images = self.upscaler(images)  # N x C x fH x fW
                return images
        finally:
            net.train(was_training)

    # -- checkpoints ---------------------------------------------------------------------

    def start_from(self, state: Mapping[str, torch.Tensor], classes: Sequence[int | None]) -> bool:
        """G, its EMA copy, D and the upscaler from a trained gan's ``state``, class tables
        matched through ``classes`` (models/transfer.py); the optimisers and step start anew."""
        networks: dict[str, nn.Module] = {
            "generator": self.generator,
            "generator_ema": self.generator_ema,
            "discriminator": self.discriminator,
        }
        if self.upscaler is not None:
            networks["upscaler"] = self.upscaler
        elif any(k.startswith("upscaler.") for k in state):
            raise ConfigError(
                "train.init_from: the trained model is a cascade (model.upscale > 1), this "
                "one is not",
                "set model.upscale as the trained model had it",
            )
        for name, net in networks.items():
            own, trained = net.state_dict(), transfer.part(state, name)
            if name.startswith("generator"):
                taken = transfer.generator_state(own, trained, classes)
            elif name == "discriminator":
                taken = transfer.projection_state(own, trained, classes)
            else:
                taken = transfer.copy_matching(own, trained, name)
            with torch.no_grad():
                for key, value in net.state_dict().items():
                    value.copy_(taken[key])
        return True

    def _parts(self) -> dict[str, Any]:
        parts = {
            "generator": self.generator,
            "generator_ema": self.generator_ema,
            "discriminator": self.discriminator,
            "optimizer_g": self.opt_g,
            "optimizer_d": self.opt_d,
        }
        if self.upscaler is not None and self.opt_sr is not None:
            parts |= {"upscaler": self.upscaler, "optimizer_upscaler": self.opt_sr}
        return parts

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = flat_state(self._parts())
        state["step"] = torch.tensor(self.step, dtype=torch.int64)
        if self.ada is not None:
            state["augment_p"] = self.ada.p.detach().cpu().clone()
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        load_flat_state(self._parts(), state)
        self.step = int(state["step"]) if "step" in state else 0
        if self.ada is not None and "augment_p" in state:
            self.ada.p = state["augment_p"].to(self.device, torch.float32)


def _no_sync(net: nn.Module) -> contextlib.AbstractContextManager[Any]:
    """DistributedDataParallel's no_sync (keep gradients local), or nothing for a plain net."""
    no_sync = getattr(net, "no_sync", None)
    return no_sync() if no_sync is not None else contextlib.nullcontext()


def create(spec: ModelSpec) -> Gan:
    """Build a GAN for ``spec``; raises ConfigError on a bad family-specific key."""
    return Gan(spec)
