"""Starting a network from a trained one's weights (``train.init_from``), for the built-in
families: every tensor that does not depend on the classes is copied; class tables (one
row per class: the generator's class-conditional batch-norm gains and biases, the
discriminator's projection) are matched by class.

A class the engine did not match to a trained one (None: by default a new class; with
``train.new_class_from = "nearest"`` run/transfer.py picks the trained class that new
photos look most like where it can) gets the mean of the rows: the
average class's gain, bias and projection: a generator given it starts by drawing an
average of what it learned, which the new images then pull into shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from aigc_run.contract.errors import ConfigError

CLASS_TABLE = re.compile(r"^(norms\.\d+)\.(gain|bias)\.weight$")  # conditional batch norm
AFFINE = re.compile(r"^(norms\.\d+)\.norm\.(weight|bias)$")  # unconditional batch norm


def rows(table: torch.Tensor, classes: Sequence[int | None]) -> torch.Tensor:
    """Row ``classes[i]`` of ``table`` for each ``i``; the mean row where it is None."""
    mean = table.mean(0)
    return torch.stack([mean if c is None else table[c] for c in classes])


def part(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of one network in a flat state (``generator.norms.0...`` -> ``norms.0...``)."""
    return {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}


def copy_matching(
    own: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor], what: str
) -> dict[str, torch.Tensor]:
    """``own``'s tensors taken from ``trained``, which must hold each with its shape."""
    return {key: tensor(trained, key, value.shape, what) for key, value in own.items()}


def tensor(
    trained: Mapping[str, torch.Tensor], key: str, shape: torch.Size, what: str
) -> torch.Tensor:
    """``trained[key]``, or a ConfigError when it is missing or has a shape other than
    ``shape``: the networks were built with other settings."""
    if key not in trained or trained[key].shape != shape:
        there = "missing" if key not in trained else tuple(trained[key].shape)
        raise ConfigError(
            f"train.init_from: the trained model's {what} does not fit this one: "
            f"{key} is {there} there and {tuple(shape)} here",
            "train with the model settings (width, latent_dim, upsample, ...) and the image "
            "size of the trained model",
        )
    return trained[key]


def generator_state(
    own: Mapping[str, torch.Tensor],
    trained: Mapping[str, torch.Tensor],
    classes: Sequence[int | None],
) -> dict[str, torch.Tensor]:
    """A generator's state (generator.Generator) from a trained one's, converting its
    class-conditional batch norms between conditional and unconditional as needed.

    Conditional: ``norms.i.gain.weight`` and ``norms.i.bias.weight``, one row per class.
    Unconditional: the plain affine ``norms.i.norm.weight`` and ``norms.i.norm.bias``.
    An unconditional model from a conditional one takes the mean of its classes' rows; a
    conditional one from an unconditional one starts every class at its affine values.
    """
    state = {}
    rest = {}
    for key, value in own.items():
        if match := CLASS_TABLE.match(key):  # this model is conditional
            norm, kind = match.groups()
            if key in trained:
                state[key] = rows(trained[key], classes)
            else:  # every class starts as the unconditional model's batch norm
                plain = f"{norm}.norm.{'weight' if kind == 'gain' else 'bias'}"
                state[key] = tensor(trained, plain, value.shape[1:], "generator").expand_as(value)
        elif match := AFFINE.match(key):  # this model is unconditional
            norm, kind = match.groups()
            if key in trained:
                state[key] = trained[key]
            else:  # the mean of the rows of the classes this model's data has
                table = f"{norm}.{'gain' if kind == 'weight' else 'bias'}.weight"
                if table not in trained:
                    tensor(trained, key, value.shape, "generator")  # says what is missing
                state[key] = rows(trained[table], classes).mean(0)
        else:
            rest[key] = value
    state |= copy_matching(rest, trained, "generator")
    return {key: tensor(state, key, value.shape, "generator") for key, value in own.items()}


def projection_state(
    own: Mapping[str, torch.Tensor],
    trained: Mapping[str, torch.Tensor],
    classes: Sequence[int | None],
) -> dict[str, torch.Tensor]:
    """A discriminator's state from a trained one's; its class projection (``embed``) by
    class. With spectral norm, the power iteration's vectors are measured afresh on the
    new table (15 iterations, as torch does when it adds the norm)."""
    state = {}
    rest = {}
    for key, value in own.items():
        if not key.startswith("embed."):
            rest[key] = value
        elif key not in trained:  # the trained D had no classes: keep this one's start
            state[key] = value
        elif key in ("embed.weight", "embed.parametrizations.weight.original"):
            state[key] = rows(trained[key], classes)
    original = "embed.parametrizations.weight.original"
    if original in trained and original in own:
        probe = nn.Embedding(*state[original].shape)
        with torch.no_grad():
            probe.weight.copy_(state[original])
        measured = spectral_norm(probe).state_dict()
        for vector in ("_u", "_v"):
            key = f"embed.parametrizations.weight.0.{vector}"
            state[key] = measured[f"parametrizations.weight.0.{vector}"]
    state |= copy_matching(rest, trained, "discriminator")
    return {key: tensor(state, key, value.shape, "discriminator") for key, value in own.items()}
