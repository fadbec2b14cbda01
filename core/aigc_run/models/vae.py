"""The ``vae`` family: a convolutional, class-conditional variational autoencoder.

Blurrier than the GAN, but it has no adversarial game to balance and does not drop modes,
so it is the safe choice on tiny or odd datasets. The encoder mirrors the GAN's
discriminator (batch norm instead of spectral norm), the decoder is the GAN's generator.
The class enters three ways: an embedding added to the encoder's features, the decoder's
class-conditional batch norm, and a learned prior mean per class, so sampling can ask for
a class and get it.

Loss per image: ``recon + beta * kl``, where ``recon`` is the summed squared error over
pixels (a Gaussian likelihood with fixed variance) and ``kl`` the KL divergence of the
posterior from the class's prior N(prior[y], I), summed over latent dimensions. A lower
``beta`` gives sharper but less varied samples; ``kl_warmup`` ramps its weight up from 0.
Samples are decoded from a Gaussian mixture fitted on the training images' codes once
training ends (``sampler = "mixture"``, see mixture.py), not from the prior.

Every key and its default is in ``VaeOptions`` ([model]) and the scenario's ``TrainConfig``
([train]: lr, beta1, beta2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import ConfigDict, Field
from torch import nn

from aigc_run.contract.components import GenerativeModel, ModelSpec
from aigc_run.contract.errors import ConfigError
from aigc_run.models.base import (
    adam,
    channels_at,
    check_geometry,
    flat_state,
    load_flat_state,
    parse_options,
    parse_train,
)
from aigc_run.models.generator import Generator
from aigc_run.models.mixture import LatentMixture
from aigc_run.scenario import ModelConfig


class VaeOptions(ModelConfig):
    """The vae family's [model] keys: the shared ones (``ModelConfig``) and its own."""

    model_config = ConfigDict(extra="forbid")

    beta: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0  # weight of the KL term
    kl_warmup: Annotated[int, Field(ge=0)] = 0  # steps over which the KL weight rises from 0
    # What samples are decoded from: "mixture" = a Gaussian mixture fitted on the codes of
    # the training images after training (see mixture.py); "prior" = N(prior[y], I).
    sampler: Literal["mixture", "prior"] = "mixture"
    components: Annotated[int, Field(ge=1, le=256)] = 10  # mixture components per class


class Encoder(nn.Module):
    """image (+ class) -> (mu, logvar), each N x latent_dim. For 32 px: 32 -> 16 -> 8 -> 4."""

    def __init__(self, latent_dim: int, width: int, channels: int, levels: int, classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for level in reversed(range(levels)):  # N x c_in x s x s -> N x c_out x s/2 x s/2
            c_out = channels_at(width, level, levels)
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out)]
            layers += [nn.LeakyReLU(0.2, True)]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())  # N x c0*16
        self.embed = nn.Embedding(classes, c_in * 16) if classes > 1 else None
        self.head = nn.Linear(c_in * 16, 2 * latent_dim)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.features(images)  # N x c0*16
        if self.embed is not None:
            h = h + self.embed(labels)
        mu, logvar = self.head(h).chunk(2, dim=1)  # N x latent_dim each
        # Clamped so that one bad batch cannot overflow exp() and poison the weights.
        return mu, logvar.clamp(-10.0, 10.0)


class Vae(GenerativeModel):
    """The GenerativeModel the engine drives."""

    def __init__(self, spec: ModelSpec):
        self.options = options = parse_options(spec, VaeOptions)
        train = parse_train(spec)
        levels = check_geometry(spec)
        if train.freeze_d:
            raise ConfigError(
                "train.freeze_d: the vae family has no discriminator to freeze",
                "set train.freeze_d=0, or use the gan family",
            )
        if train.lr_g_coarse != 1:
            raise ConfigError(
                "train.lr_g_coarse: the vae family trains its encoder and decoder at one "
                "learning rate",
                "set train.lr_g_coarse=1, or use the gan family",
            )
        self.latent_dim = options.latent_dim
        width = options.width
        self.classes = spec.num_classes if spec.conditional and spec.num_classes > 1 else 0
        self.device = torch.device(spec.device)

        self.encoder = Encoder(self.latent_dim, width, spec.channels, levels, self.classes)
        self.decoder = Generator(self.latent_dim, width, spec.channels, levels, self.classes)
        # A learned prior mean per class: p(z | y) = N(prior[y], I). With the usual N(0, I)
        # the encoder kept the class in z and samples drawn for one class came out as
        # another; with a prior per class the class lives in its mean, not in the noise.
        self.prior = nn.Embedding(max(self.classes, 1), self.latent_dim)
        nn.init.zeros_(self.prior.weight)
        for part in (self.encoder, self.decoder, self.prior):
            part.to(self.device)
        params = [*self.encoder.parameters(), *self.decoder.parameters(), *self.prior.parameters()]
        self.optimizer = adam(params, train.lr, (train.beta1, train.beta2))
        self.mixture = LatentMixture(max(self.classes, 1), self.options.components, self.latent_dim)
        self.mixture.to(self.device)
        self.step = 0
        # What train_step calls: the networks, or their DistributedDataParallel wrappers
        # (``distribute``); checkpoints always hold the plain ones.
        self.encoder_train: nn.Module = self.encoder
        self.decoder_train: nn.Module = self.decoder
        self.prior_train: nn.Module = self.prior

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> bool:
        """Train through DistributedDataParallel wrappers, which average the gradients over
        the processes of the run; one forward and one backward of each per step."""
        self.encoder_train = wrap(self.encoder)
        self.decoder_train = wrap(self.decoder)
        self.prior_train = wrap(self.prior)
        return True

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update; returns 0-dim tensors, read only when logged (no GPU wait)."""
        if not self.classes:
            labels = torch.zeros_like(labels)
        mu, logvar = self.encoder_train(images, labels)  # N x latent_dim each
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation trick
        recon_images = self.decoder_train(z, labels)  # N x C x H x W

        n = images.shape[0]
        recon = (recon_images - images).square().sum() / n
        offset = mu - self.prior_train(labels)  # KL(N(mu, var) || N(prior[y], I)), summed over dims
        kl = 0.5 * (offset.square() + logvar.exp() - 1.0 - logvar).sum() / n
        # KL warm-up: the weight rises linearly, so the decoder learns to use z before the
        # KL term can push the codes onto the prior (posterior collapse).
        warm = min(1.0, (self.step + 1) / self.options.kl_warmup) if self.options.kl_warmup else 1.0
        loss = recon + self.options.beta * warm * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def prepare_sampling(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit the latent mixture on one code per training image (uint8 N x C x H x W).

        The N(prior[y], I) prior leaves holes where no training image's code lies, and
        what the decoder draws there is a blur; codes drawn from a mixture fitted on the
        actual codes (the aggregate posterior) decode to images like the training set's.
        """
        if self.options.sampler != "mixture":
            return
        if not self.classes:
            labels = torch.zeros_like(labels)
        was_training = self.encoder.training
        self.encoder.eval()
        codes = []
        for begin in range(0, len(images), 512):
            chunk = images[begin : begin + 512].float().div_(127.5).sub_(1.0)
            mu, logvar = self.encoder(chunk, labels[begin : begin + 512])
            codes.append(mu + torch.randn_like(mu) * (0.5 * logvar).exp())  # one draw of q(z|x)
        self.encoder.train(was_training)
        self.mixture.fit(torch.cat(codes), labels)

    def generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decode codes made from ``noise`` (N x latent_dim, standard normal) for ``labels``.

        Through the fitted mixture of the label's class when there is one, else shifted to
        the class's prior mean.
        """
        was_training = self.decoder.training
        self.decoder.eval()
        try:
            with torch.no_grad():
                labels = labels.to(self.device, torch.int64)
                if not self.classes:
                    labels = torch.zeros_like(labels)
                noise = noise.to(self.device, torch.float32)
                if self.options.sampler == "mixture" and self.mixture.fitted:
                    z = self.mixture.sample(noise, labels)  # N x latent_dim
                else:
                    z = noise + self.prior(labels)  # N x latent_dim
                return self.decoder(z, labels)  # N x C x H x W in [-1, 1]
        finally:
            self.decoder.train(was_training)

    def _parts(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "decoder": self.decoder,
            "prior": self.prior,
            "optimizer": self.optimizer,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = flat_state(self._parts())
        state.update(flat_state({"mixture": self.mixture}))
        state["step"] = torch.tensor(self.step, dtype=torch.int64)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        load_flat_state(self._parts(), state)
        # Checkpoints written before training ended (or by older versions) have no mixture.
        mixture = {k: v for k, v in state.items() if k.startswith("mixture.")}
        if mixture:
            load_flat_state({"mixture": self.mixture}, mixture)
        self.step = int(state["step"]) if "step" in state else 0


def create(spec: ModelSpec) -> Vae:
    """Build a VAE for ``spec``; raises ConfigError on a bad family-specific key."""
    return Vae(spec)
