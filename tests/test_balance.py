"""train.balance: drawing weights that let rare classes be seen as often as common ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aigc_run import ConfigError
from aigc_run.run.training import class_weights
from aigc_run.scenario import validate


def _drawn(labels: np.ndarray, balance: str) -> np.ndarray:
    weights = class_weights(labels, balance)
    assert weights is not None
    picker = torch.Generator().manual_seed(0)
    index = torch.multinomial(weights, 30000, True, generator=picker).numpy()
    return np.bincount(labels[index], minlength=3) / 30000


def test_balance_weights_even_out_a_skewed_catalogue() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    assert class_weights(labels, "none") is None
    assert np.allclose(_drawn(labels, "classes"), 1 / 3, atol=0.02)
    sqrt = np.sqrt([900, 90, 10])
    assert np.allclose(_drawn(labels, "sqrt"), sqrt / sqrt.sum(), atol=0.02)


def test_balance_is_a_validated_train_setting() -> None:
    base = {"name": "x", "data": {"source": "s"}}
    assert validate(base).train.balance == "none"
    assert validate({**base, "train": {"balance": "classes"}}).train.balance == "classes"
    with pytest.raises(ConfigError, match=r"train\.balance"):
        validate({**base, "train": {"balance": "rare"}})
