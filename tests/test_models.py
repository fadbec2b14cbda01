"""Behaviour of the built-in model families (gan, vae) through the GenerativeModel contract."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from aigc_run import ConfigError, GenerativeModel, ModelSpec
from aigc_run.models import gan, vae

FAMILIES = {"gan": gan.create, "vae": vae.create}
TINY = {"latent_dim": 8, "width": 8}


@pytest.fixture(autouse=True)
def one_thread():
    # Models this small run faster on one thread, and a second one stalls on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(
    family: str,
    *,
    size: int = 16,
    channels: int = 3,
    classes: int = 3,
    conditional: bool = True,
    options: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
) -> GenerativeModel:
    spec = ModelSpec(
        channels=channels,
        image_size=size,
        num_classes=classes,
        conditional=conditional,
        options={"family": family, "conditional": conditional, **TINY, **(options or {})},
        train={"lr": 2e-3, "lr_d": None, "beta1": 0.5, "beta2": 0.999, **(train or {})},
        device="cpu",
    )
    return FAMILIES[family](spec)


def batch(n: int = 8, channels: int = 3, size: int = 16, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, channels, size, size, generator=g) * 2 - 1
    return images, torch.arange(n) % classes


def noise(model: GenerativeModel, n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("conditional", [True, False])
def test_generate_shape_and_range(family: str, size: int, channels: int, conditional: bool):
    model = make(family, size=size, channels=channels, conditional=conditional)
    model.train_step(*batch(4, channels, size))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    images = model.generate(noise(model), labels)
    assert images.shape == (6, channels, size, size)
    assert images.dtype == torch.float32
    assert not images.requires_grad
    assert images.min() >= -1 and images.max() <= 1
    assert torch.isfinite(images).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_train_step_returns_float_losses(family: str):
    losses = make(family).train_step(*batch())
    expected = {"gan": {"loss_d", "loss_g"}, "vae": {"loss", "recon", "kl"}}[family]
    assert expected <= set(losses)
    assert all(float(v) == float(v) for v in losses.values())  # floats or 0-dim tensors


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_is_deterministic_and_leaves_train_mode(family: str):
    model = make(family)
    model.train_step(*batch())
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    first = model.generate(noise(model), labels)
    assert torch.equal(first, model.generate(noise(model), labels))
    model.train_step(*batch())  # still trainable: generate put the networks back in train mode
    modules = [m for m in vars(model).values() if isinstance(m, torch.nn.Module)]
    trained = [m for m in modules if any(p.requires_grad for p in m.parameters())]
    assert trained and all(m.training for m in trained)


@pytest.mark.parametrize("family", FAMILIES)
def test_conditioning_uses_the_label_only_when_conditional(family: str):
    same = torch.zeros(6, dtype=torch.long)
    other = torch.full((6,), 2)
    for conditional, differs in [(True, True), (False, False)]:
        model = make(family, conditional=conditional)
        for _ in range(3):
            model.train_step(*batch())
        a, b = model.generate(noise(model), same), model.generate(noise(model), other)
        assert (not torch.equal(a, b)) is differs


@pytest.mark.parametrize("family", FAMILIES)
def test_state_dict_round_trip_through_safetensors(family: str, tmp_path: Path):
    model = make(family)
    for _ in range(3):
        model.train_step(*batch())
    state = model.state_dict()
    assert all(isinstance(v, torch.Tensor) and v.is_contiguous() for v in state.values())
    prefix = {"gan": "generator_ema.", "vae": "decoder."}[family]
    assert any(k.startswith(prefix) for k in state)
    save_file(state, tmp_path / "model.safetensors")  # refuses shared or non-contiguous tensors

    fresh = make(family)
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"))
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(model.generate(noise(model), labels), fresh.generate(noise(fresh), labels))
    fresh.train_step(*batch())  # the optimiser state came back too and training resumes


def _changed(state: Mapping[str, torch.Tensor], kept: Mapping[str, torch.Tensor]) -> list[str]:
    """The keys whose tensors differ between two states with the same keys."""
    assert state.keys() == kept.keys()
    return [k for k in kept if not torch.equal(state[k], kept[k])]


@pytest.mark.parametrize("family", FAMILIES)
def test_state_dict_is_a_copy(family: str):
    model = make(family)
    model.train_step(*batch())  # so that Adam's moments are in the state too
    state = model.state_dict()
    assert any(k.startswith("optimizer") for k in state)
    kept = {k: v.clone() for k, v in state.items()}
    # Writing into every returned tensor leaves the model as it was ...
    for value in state.values():
        value.add_(1)
    assert _changed(model.state_dict(), kept) == []
    # ... and training on leaves the returned tensors as they were: a checkpoint may be
    # written from them while the next steps run.
    state = model.state_dict()
    model.train_step(*batch(seed=1))
    assert _changed(state, kept) == []
    assert _changed(model.state_dict(), kept)  # the step did change the model


@pytest.mark.parametrize("family", FAMILIES)
def test_sampling_only_checkpoint_loads_without_optimiser_state(family: str):
    model = make(family)
    model.train_step(*batch())
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("optimizer")}
    fresh = make(family)
    fresh.load_state_dict(weights)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(model.generate(noise(model), labels), fresh.generate(noise(fresh), labels))


@pytest.mark.parametrize(
    ("family", "key", "value", "named"),
    [
        ("gan", "bogus", 1, "model.bogus"),
        ("gan", "ema", 1.5, "model.ema"),
        ("gan", "loss", "wasserstein", "model.loss"),
        ("vae", "beta", -1.0, "model.beta"),
        ("vae", "ema", 0.99, "model.ema"),  # a gan key is unknown to the vae
    ],
)
def test_bad_family_key_is_a_config_error_naming_it(family: str, key: str, value: Any, named: str):
    with pytest.raises(ConfigError) as caught:
        make(family, options={key: value})
    assert named in caught.value.message
    assert caught.value.hint


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("size", "channels"), [(24, 3), (8, 3), (512, 3), (32, 2)])
def test_unsupported_geometry_is_a_config_error(family: str, size: int, channels: int):
    with pytest.raises(ConfigError):
        make(family, size=size, channels=channels)


def _one_gan_step(options: Mapping[str, Any]):
    """A gan built and trained one step from seed 0, and each call of its discriminator
    in that step as (images given, scores returned)."""
    torch.manual_seed(0)
    model = make("gan", options=options)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    model.discriminator.register_forward_hook(
        lambda module, args, out: calls.append((args[0].detach().clone(), out.detach().clone()))
    )
    losses = model.train_step(*batch())
    return model, losses, calls


def _loss_is_used():
    # The losses are the named loss of D's scores: D's first call scores reals then fakes,
    # its last scores the fakes for G's update.
    formulas = {
        "hinge": (
            lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
            lambda fake: -fake.mean(),
        ),
        "nonsaturating": (
            lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
            lambda fake: F.softplus(-fake).mean(),
        ),
    }
    for loss in formulas:
        _, losses, calls = _one_gan_step({"loss": loss})
        (_, scores), (_, for_g) = calls[0], calls[-1]
        real, fake = scores.split(len(scores) // 2)
        matches = [
            name
            for name, (loss_d, loss_g) in formulas.items()
            if losses["loss_d"].item() == pytest.approx(loss_d(real, fake).item(), rel=1e-5)
            and losses["loss_g"].item() == pytest.approx(loss_g(for_g).item(), rel=1e-5)
        ]
        assert matches == [loss]  # the named loss, and not the other


def _ema_is_used():
    # ema = 0 samples from G as trained; any other decay from an average that lags behind it.
    for ema, from_g in [(0.0, True), (0.999, False)]:
        model, _, _ = _one_gan_step({"ema": ema})
        z, labels = noise(model), torch.tensor([0, 1, 2, 0, 1, 2])
        model.generator.eval()
        with torch.no_grad():
            own = model.generator(z, labels)
        assert torch.equal(model.generate(z, labels), own) is from_g, ema


def _augment_is_used():
    # DiffAugment changes what D sees; without it D sees the real images as they are.
    images, _ = batch()
    for policies, unchanged in [([], True), (["translation"], False)]:
        _, _, calls = _one_gan_step({"augment": policies})
        seen, _ = calls[0]
        assert torch.equal(seen[: len(images)], images) is unchanged, policies


def _r1_is_used():
    # The penalty is one more pass of D over the reals, and its gradient moves D's weights.
    plain, _, plain_calls = _one_gan_step({"r1": 0.0})
    again, _, _ = _one_gan_step({"r1": 0.0})
    penalised, _, penalised_calls = _one_gan_step({"r1": 1.0})
    weights = plain.discriminator.state_dict()
    unchanged = _changed(again.discriminator.state_dict(), weights)
    changed = _changed(penalised.discriminator.state_dict(), weights)
    assert unchanged == [] and changed  # the same step without R1 leaves the same weights
    assert len(penalised_calls) == len(plain_calls) + 1


@pytest.mark.parametrize(
    "check",
    [_loss_is_used, _ema_is_used, _augment_is_used, _r1_is_used],
    ids=["loss", "ema", "augment", "r1"],
)
def test_gan_options_are_used(check):
    # Each option against its default, from the same seed: the difference is the option's.
    check()


def test_vae_overfits_a_handful_of_images():
    torch.manual_seed(0)
    model = make("vae", train={"lr": 3e-3, "beta1": 0.9})
    images, labels = batch(8)
    images = F.avg_pool2d(images, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)  # 4x4 blocks
    first = model.train_step(images, labels)["recon"]
    for _ in range(60):
        last = model.train_step(images, labels)["recon"]
    assert last < 0.3 * first


DCGAN_LAYERS = {"upsample": "transposed", "d_norm": "batch", "loss": "nonsaturating"}


@pytest.mark.parametrize("layers", [{}, DCGAN_LAYERS], ids=["default", "dcgan-layers"])
def test_gan_learns_the_colour_of_its_data(layers):
    # Every real image is the same flat colour; a few steps move G's samples towards it.
    torch.manual_seed(0)
    model = make("gan", options={"ema": 0.0, **layers}, train={"lr": 1e-3})
    target = torch.tensor([0.8, -0.6, 0.2]).view(1, 3, 1, 1).expand(16, 3, 16, 16)
    labels = torch.arange(16) % 3
    z = noise(model, 16)

    def distance() -> float:
        return (model.generate(z, labels) - target).abs().mean().item()

    before = distance()
    # DCGAN's layers (N(0, 0.02) weights, lr 1e-3) start slowly: after 60 steps some seeds
    # had closed only a third of the distance; after 160, every seed tried at least 71%.
    for _ in range(160):
        model.train_step(target.contiguous(), labels)
    assert distance() < 0.5 * before


def test_gan_dcgan_layers_build_dcgan_networks_and_never_normalise_reals_with_fakes():
    model = make("gan", options=DCGAN_LAYERS)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.generator.modules())
    d = model.discriminator
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in d.modules())
    norms = [m for m in d.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    seen: list[int] = []
    norms[0].register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    model.train_step(*batch(8))
    assert seen == [8, 8, 8]  # reals, fakes for D's update, fakes for G's: never 16 at once
    defaults = make("gan")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in defaults.discriminator.modules())
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in defaults.generator.modules())


@pytest.mark.parametrize("policy", ["color", "translation", "cutout"])
@pytest.mark.parametrize("channels", [1, 3])
def test_augmentations_keep_the_shape_change_the_image_and_pass_gradients(policy, channels):
    from aigc_run.models.augment import augment

    torch.manual_seed(0)
    images = (torch.rand(4, channels, 16, 16) * 2 - 1).requires_grad_(True)
    out = augment(images, [policy])
    assert out.shape == images.shape
    assert not torch.equal(out, images)
    out.sum().backward()  # differentiable: G learns through what D sees
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_cutout_blanks_a_quarter_of_an_image_inside_it():
    from aigc_run.models.augment import cutout

    torch.manual_seed(0)
    out = cutout(torch.ones(64, 1, 16, 16))
    blanked = (out == 0).float().mean(dim=(1, 2, 3))
    assert blanked.max() == 0.25  # an 8x8 square when it lies wholly inside
    assert blanked.min() > 0


def test_latent_mixture_fits_clusters_and_samples_them_reproducibly():
    from aigc_run.models.mixture import LatentMixture

    torch.manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 6.0]])
    codes = centres.repeat_interleave(200, 0) + 0.3 * torch.randn(600, 2)
    labels = torch.zeros(600, dtype=torch.long)
    mixture = LatentMixture(2, 3, 2)
    assert not mixture.fitted
    mixture.fit(codes, labels)
    assert mixture.fitted
    weights = mixture.weights[0]
    assert torch.allclose(weights.sort().values, torch.full((3,), 1 / 3), atol=0.02)
    noise = torch.randn(3000, 2, generator=torch.Generator().manual_seed(1))
    drawn = mixture.sample(noise, torch.zeros(3000, dtype=torch.long))
    assert torch.equal(drawn[:10], mixture.sample(noise[:10], torch.zeros(10, dtype=torch.long)))
    nearest = torch.cdist(drawn, centres).argmin(1)
    assert torch.bincount(nearest, minlength=3).min() > 800  # every cluster, about equally
    assert (torch.cdist(drawn, centres).min(1).values < 1.5).float().mean() > 0.98  # no holes
    # Class 1 had no codes: it is fitted on all of them rather than left empty.
    assert mixture.weights[1].sum() == pytest.approx(1.0)


def test_vae_samples_from_its_fitted_mixture_after_prepare_sampling():
    torch.manual_seed(0)
    model = make("vae", options={"kl_warmup": 10})
    images, labels = batch(16)
    for _ in range(3):
        model.train_step(images, labels)
    z, asked = noise(model), torch.tensor([0, 1, 2, 0, 1, 2])
    from_prior = model.generate(z, asked)
    pixels = ((images + 1) * 127.5).round().to(torch.uint8)
    model.prepare_sampling(pixels, labels)  # type: ignore[attr-defined]
    from_mixture = model.generate(z, asked)
    assert not torch.equal(from_prior, from_mixture)
    state = model.state_dict()
    assert state["mixture.weights"].sum() == pytest.approx(3.0)  # one mixture per class
    fresh = make("vae", options={"kl_warmup": 10})
    fresh.load_state_dict(state)
    assert torch.equal(fresh.generate(z, asked), from_mixture)
    prior_only = make("vae", options={"sampler": "prior"})
    prior_only.load_state_dict(state)
    assert not torch.equal(prior_only.generate(z, asked), from_mixture)


def _norm_mismatch(model: Any) -> float:
    """How far the sampling generator's BN running statistics are from the statistics of
    what reaches each BN when it samples: the largest gap, in units of the channel's spread."""
    inputs: list[torch.Tensor] = []
    net = model.generator_ema
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    hooks = [m.register_forward_hook(lambda m, args, out: inputs.append(args[0])) for m in norms]
    model.generate(noise(model, 4096, seed=7), torch.arange(4096) % 3)
    for hook in hooks:
        hook.remove()
    gaps = []
    for norm, seen in zip(norms, inputs, strict=True):
        mean, var = seen.mean(dim=(0, 2, 3)), seen.var(dim=(0, 2, 3))
        gaps.append(((norm.running_mean - mean).abs() / var.sqrt()).max())
        gaps.append(((norm.running_var.sqrt() - var.sqrt()).abs() / var.sqrt()).max())
    return float(max(gaps))


def test_gan_prepare_sampling_measures_the_statistics_its_samples_have():
    torch.manual_seed(0)
    model = make("gan", options={"ema": 0.99})
    images, labels = batch(12)
    for _ in range(30):
        model.train_step(images, labels)
    before = _norm_mismatch(model)
    trained = {k: v.clone() for k, v in model.generator.state_dict().items()}
    rng = torch.get_rng_state()
    pixels = ((images + 1) * 127.5).round().to(torch.uint8)
    model.prepare_sampling(pixels, labels)  # type: ignore[attr-defined]
    after = _norm_mismatch(model)
    assert after < 0.1 < before  # copied from G they did not fit; re-measured they do
    # Nothing the training goes on from is touched: G itself, the global random state.
    assert all(torch.equal(v, trained[k]) for k, v in model.generator.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
    # The same weights get the same statistics, and they ride in the checkpoint.
    state = model.state_dict()
    model.prepare_sampling(pixels, labels)  # type: ignore[attr-defined]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    fresh = make("gan", options={"ema": 0.99})
    fresh.load_state_dict(state)
    z, asked = noise(model), torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(fresh.generate(z, asked), model.generate(z, asked))


def test_bf16_channels_last_path_trains(monkeypatch: pytest.MonkeyPatch):
    # The CUDA recipe (bf16 autocast, channels_last), run through CPU autocast so the code
    # path is checked without a GPU; on a real CPU run uses_bf16 is False.
    assert not gan.uses_bf16(torch.device("cpu"), {"precision": "bf16"})
    monkeypatch.setattr(gan, "uses_bf16", lambda device, train: True)
    torch.manual_seed(0)
    model = make("gan", options={"augment": ["color", "translation", "cutout"], "r1": 1.0})
    conv = model.generator.to_image[1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(gan.R1_EVERY):  # includes a step with the R1 penalty
        losses = model.train_step(*batch())
        assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
    images = model.generate(noise(model), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert images.dtype == torch.float32 and torch.isfinite(images).all()


def test_a_resumed_channels_last_gan_keeps_adams_moments_in_its_parameters_layout(
    monkeypatch: pytest.MonkeyPatch,
):
    # On CUDA the networks are channels_last; saved moments are contiguous. The fused Adam
    # kernel needs both in one layout, so loading must give each moment its parameter's.
    monkeypatch.setattr(gan, "uses_bf16", lambda device, train: True)
    torch.manual_seed(0)
    model = make("gan")
    model.train_step(*batch())
    state = model.state_dict()
    fresh = make("gan")
    fresh.load_state_dict(state)
    checked = 0
    for optimizer in (fresh.opt_g, fresh.opt_d):  # type: ignore[attr-defined]
        for group in optimizer.param_groups:
            for param in group["params"]:
                for value in optimizer.state[param].values():
                    if value.shape == param.shape and param.dim() == 4:
                        assert value.stride() == param.stride()
                        checked += 1
    assert checked and any(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in fresh.generator.parameters()  # type: ignore[attr-defined]
    )
    fresh.train_step(*batch())  # the step after a resume


def test_spectral_norm_keeps_its_power_iteration_in_float32_under_autocast(monkeypatch):
    # CUDA autocast runs torch.mv in bf16 (CPU autocast does not): make the CPU do the same
    # and torch's own spectral norm then fails in torch.vdot, float32 against bf16.
    from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

    from aigc_run.models.base import spectral_norm

    mv = torch.mv
    monkeypatch.setattr(torch, "mv", lambda m, v: mv(m, v).to(
        torch.bfloat16 if torch.is_autocast_enabled("cpu") else m.dtype))  # fmt: skip
    images = torch.rand(2, 3, 8, 8)
    torch.manual_seed(0)
    stock = torch_spectral_norm(torch.nn.Conv2d(3, 4, 3))
    with torch.autocast("cpu", torch.bfloat16), pytest.raises(RuntimeError, match="dtype"):
        stock(images)
    torch.manual_seed(0)
    ours = spectral_norm(torch.nn.Conv2d(3, 4, 3))
    assert ours.state_dict().keys() == stock.state_dict().keys()
    with torch.autocast("cpu", torch.bfloat16):
        out = ours(images)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert ours.parametrizations.weight[0]._u.dtype == torch.float32


def test_fine_tuning_augments_adaptively_unless_the_scenario_says_otherwise():
    tuned = make("gan", train={"init_from": "7"})
    assert tuned.ada is not None and tuned.options.augment == ["color", "translation"]  # type: ignore[attr-defined]
    assert make("gan").ada is None  # type: ignore[attr-defined]
    fixed = make("gan", options={"augment_p": 0.5, "augment": ["cutout"]}, train={"init_from": "7"})
    assert fixed.ada is None and fixed.options.augment == ["cutout"]  # type: ignore[attr-defined]
    assert make("gan", options={"augment": []}, train={"init_from": "7"}).ada is None  # type: ignore[attr-defined]


def test_a_cascade_trains_g_and_d_at_half_size_and_samples_at_full_size(tmp_path: Path):
    model = make("gan", size=32, options={"upscale": 2, **DCGAN_LAYERS})
    assert isinstance(model, gan.Gan)
    seen: list[tuple[int, ...]] = []
    d_forward = model.discriminator.forward
    model.discriminator.forward = lambda x, *a: seen.append(tuple(x.shape)) or d_forward(x, *a)
    images, labels = batch(8, size=32)
    losses = model.train_step(images, labels)
    assert {s[-1] for s in seen} == {16}  # D only ever sees 16-px images
    assert float(losses["loss_upscaler"]) > 0
    out = model.generate(noise(model), torch.arange(6) % 3)
    assert out.shape == (6, 3, 32, 32) and out.min() >= -1 and out.max() <= 1

    # The upscaler and its optimiser ride in the checkpoint: a reload continues exactly.
    save_file(model.state_dict(), tmp_path / "c.safetensors")
    again = make("gan", size=32, options={"upscale": 2, **DCGAN_LAYERS})
    again.load_state_dict(load_file(tmp_path / "c.safetensors"))
    torch.manual_seed(5)
    model.train_step(images, labels)
    torch.manual_seed(5)
    again.train_step(images, labels)
    assert _changed(again.state_dict(), model.state_dict()) == []


def test_the_upscaler_learns_to_undo_averaging():
    from aigc_run.models.upscaler import Upscaler, downscale

    torch.manual_seed(0)
    net = Upscaler(1, 2)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.linspace(-1, 1, 32)
    stripes = torch.sign(torch.sin(x.view(1, 1, 1, 32) * 25)).expand(8, 1, 32, 32).contiguous()
    bicubic = F.l1_loss(
        F.interpolate(downscale(stripes, 2), scale_factor=2, mode="bicubic"), stripes
    )
    for _ in range(150):
        loss = net.loss(stripes)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert net.loss(stripes) < 0.7 * bicubic  # sharper than interpolation alone


def test_a_cascade_below_16_px_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.upscale"):
        make("gan", size=32, options={"upscale": 4})


def test_augmentation_with_probability_p_changes_that_share_of_the_images():
    from aigc_run.models.augment import augment

    torch.manual_seed(0)
    images = torch.rand(400, 3, 8, 8) * 2 - 1
    assert torch.equal(augment(images, ["color"], torch.tensor(0.0)), images)
    changed = (augment(images, ["color"], 0.25) != images).flatten(1).any(1).float().mean()
    assert 0.15 < float(changed) < 0.35
    assert (augment(images, ["color"], torch.tensor(1.0)) != images).flatten(1).any(1).all()


def test_ada_raises_p_while_d_is_sure_of_the_reals_and_lowers_it_when_not():
    from aigc_run.models.augment import AdaptiveProbability

    ada = AdaptiveProbability(torch.device("cpu"), target=0.6, images_to_full=100)
    for _ in range(3):
        ada.update(torch.full((10,), 2.0))  # every real scored real: r = 1 > 0.6
    assert float(ada.p) == pytest.approx(0.3)
    ada.update(torch.tensor([1.0, -1.0]))  # r = 0 < 0.6
    assert float(ada.p) == pytest.approx(0.28)
    for _ in range(100):
        ada.update(torch.full((10,), -1.0))
    assert float(ada.p) == 0.0  # never below 0 (nor above 1)


def test_a_gan_with_ada_logs_p_and_resumes_it_exactly(tmp_path: Path):
    options = {"augment": ["color", "translation"], "augment_p": "ada"}
    torch.manual_seed(0)
    model = make("gan", options=options)
    for step in range(3):
        torch.manual_seed(step)
        losses = model.train_step(*batch(8))
    assert 0.0 <= float(losses["augment_p"]) <= 1.0
    save_file(model.state_dict(), tmp_path / "c.safetensors")
    again = make("gan", options=options)
    again.load_state_dict(load_file(tmp_path / "c.safetensors"))
    assert float(again.ada.p) == float(model.ada.p) > 0  # batches of noise: D is sure soon
    for step in (3, 4):
        torch.manual_seed(step)
        model.train_step(*batch(8))
        torch.manual_seed(step)
        again.train_step(*batch(8))
    assert _changed(again.state_dict(), model.state_dict()) == []
    with pytest.raises(ConfigError, match="adapts the probability"):
        make("gan", options={"augment_p": "ada"})
