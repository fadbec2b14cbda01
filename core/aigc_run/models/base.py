"""What the built-in model families share: their options, geometry checks, the flat
checkpoint state and the optimiser.

Each family's options are a pydantic model that extends the scenario's ``[model]`` section
(``ModelConfig``: family, conditional, latent_dim, width and their defaults) with the
family's own keys and defaults, so every default lives in one place; ``[train]`` is read
through ``TrainConfig`` the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import torch
from pydantic import ValidationError
from torch import nn

from aigc_run.contract.components import ModelSpec
from aigc_run.contract.errors import ConfigError
from aigc_run.scenario import ModelConfig, TrainConfig

Options = TypeVar("Options", bound=ModelConfig)
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def parse_options(spec: ModelSpec, schema: type[Options]) -> Options:
    """The scenario's [model] section as the family's typed options, naming a bad key."""
    family = str(spec.options.get("family", schema.model_fields["family"].default))
    try:
        return schema.model_validate(dict(spec.options))
    except ValidationError as e:
        problem = e.errors()[0]
        key = "model." + ".".join(str(p) for p in problem["loc"])
        own = sorted(set(schema.model_fields) - set(ModelConfig.model_fields))
        if problem["type"] == "extra_forbidden":
            raise ConfigError(
                f"{key}: unknown setting for the {family} family",
                f"check the spelling; the {family} family's own keys are: {', '.join(own)}",
            ) from None
        raise ConfigError(
            f"{key}: {problem['msg']} (got {problem.get('input')!r})",
            "change the value to one in the allowed range",
        ) from None


def parse_train(spec: ModelSpec) -> TrainConfig:
    """The scenario's [train] section, typed, with the scenario's defaults."""
    return TrainConfig.model_validate(dict(spec.train))


def check_geometry(spec: ModelSpec) -> int:
    """Return the number of 2x up-samplings from 4x4 to the image size."""
    size = spec.image_size
    if size < 16 or size > 256 or size & (size - 1):
        raise ConfigError(
            f"data.image_size: the built-in models need a power of two from 16 to 256 (got {size})",
            "set data.image_size to 16, 32, 64, 128 or 256",
        )
    if spec.channels not in (1, 3):
        raise ConfigError(
            f"the built-in models take 1 or 3 channels (got {spec.channels})",
            "convert the data to grayscale or RGB",
        )
    return int(math.log2(size)) - 2


def channels_at(width: int, level: int, levels: int) -> int:
    """Feature channels at 4x4 * 2**level: wide at the bottom, ``width`` at the top, capped 8x."""
    return width * min(8, 2 ** (levels - 1 - level))


def flat_state(parts: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Modules and Adam optimisers -> one flat dict of independent, contiguous tensors.

    safetensors refuses tensors that share memory, and the caller may write the file while
    training goes on, so every tensor is a detached copy. Adam's moments ride along (as
    ``optimizer_g.<param index>.exp_avg`` ...) so a resumed run continues where it stopped.
    """
    state: dict[str, torch.Tensor] = {}
    for prefix, part in parts.items():
        items: Iterable[tuple[str, Any]]
        if isinstance(part, nn.Module):
            items = part.state_dict().items()
        else:
            items = (
                (f"{index}.{name}", value)
                for index, slots in part.state_dict()["state"].items()
                for name, value in slots.items()
            )
        for key, value in items:
            state[f"{prefix}.{key}"] = torch.as_tensor(value).detach().cpu().clone().contiguous()
    return state


def load_flat_state(parts: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> None:
    """The inverse of ``flat_state``. Module weights must all be there; optimiser state may not."""
    for prefix, part in parts.items():
        mine = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
        if isinstance(part, nn.Module):
            part.load_state_dict(mine)  # strict: a wrong checkpoint fails here, naming the keys
        elif mine:
            slots: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in mine.items():
                index, name = key.split(".", 1)
                slots.setdefault(int(index), {})[name] = value
            groups = part.state_dict()["param_groups"]  # learning rates come from the scenario
            part.load_state_dict({"state": slots, "param_groups": groups})
            match_layouts(part)


def match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each of the optimiser's moments its parameter's memory layout. Saved tensors
    are contiguous and load so, while on CUDA the networks are channels_last; the fused
    Adam kernel refuses a moment whose layout differs from its parameter's."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            slots = optimizer.state.get(param, {})
            for name, value in slots.items():
                moment = isinstance(value, torch.Tensor) and value.shape == param.shape
                if moment and value.stride() != param.stride():
                    slots[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def adam(
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], lr: float, betas: tuple[float, float]
) -> torch.optim.Adam:
    """Adam with torch's fused kernel (one pass over all the tensors rather than a loop of
    small ops for each), for the gan and vae families. The same algorithm, equal to the
    loop's up to rounding; on 2 CPU cores the ecommerce recipe's step ran ~5% faster
    (benchmarks/adam_fused.py), which on a 10-minute budget is ~5% more steps."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


def uses_bf16(device: torch.device, precision: str) -> bool:
    """bf16 autocast on CUDA ("auto" or "bf16" precision, where the GPU has it); never on CPU."""
    return (
        device.type == "cuda"
        and precision in ("auto", "bf16")
        and torch.cuda.is_available()
        and torch.cuda.is_bf16_supported()
    )


def spectral_norm(module: ModuleT) -> ModuleT:
    """torch's spectral norm (the same state: ``parametrizations.weight.0._u``, ...) with
    its power iteration and sigma in float32 under bf16 autocast. On CUDA autocast runs
    ``torch.mv`` in bf16, and the float32 ``u`` then meets a bf16 vector in ``torch.vdot``,
    which refuses mixed dtypes: every step of a spectral-norm D would fail."""
    from torch.nn.utils.parametrizations import spectral_norm as torch_spectral_norm

    torch_spectral_norm(module)
    norm = module.get_submodule("parametrizations.weight.0")
    kind = type(norm)
    if kind not in _FLOAT32:
        _FLOAT32[kind] = type(f"Float32{kind.__name__}", (kind,), {"forward": _forward_in(kind)})
    norm.__class__ = _FLOAT32[kind]
    return module


_FLOAT32: dict[type, type] = {}  # torch's parametrization class -> its float32 subclass


def _forward_in(kind: type[nn.Module]) -> Any:
    """``kind``'s forward with autocast off."""

    def forward(self: nn.Module, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(weight.device.type, enabled=False):
            return kind.forward(self, weight)

    return forward

