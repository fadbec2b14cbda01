"""Checkpoints: safetensors files written atomically; loading one never runs code."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from aigc_run import faults
from aigc_run.contract.errors import AigcError


def save(path: Path, state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """Write ``state`` to ``path`` through a temporary file and a rename; return its sha256.

    A run killed mid-write leaves the previous checkpoint and at most a ``.tmp`` file,
    never a truncated file under the final name.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    try:
        save_file(tensors, str(temporary), metadata=dict(metadata))
        with temporary.open("rb+") as f:
            os.fsync(f.fileno())
        faults.point("checkpoint-write")  # the temporary file is whole, not yet renamed
        os.replace(temporary, path)
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
        temporary.unlink(missing_ok=True)
        reason = getattr(e, "strerror", None) or str(e).removeprefix("Error while serializing: ")
        raise AigcError(
            f"could not write checkpoint {path}: {reason}",
            "free disk space or choose another output folder; earlier checkpoints are intact",
        ) from e
    return sha256_of(path)


def load(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file, or a ``.pt`` file with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise AigcError(
                f"refused to load checkpoint {path}: {e}",
                "the file is damaged or not a safetensors file; use an earlier checkpoint",
            ) from e
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise AigcError(
            f"refused to load checkpoint {path}: {type(e).__name__}",
            "only safetensors files and plain tensor .pt files are loaded",
        ) from e
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise AigcError(f"checkpoint {path} is not a mapping of tensors")
    return loaded


def restore(model: Any, path: Path) -> None:
    """Load checkpoint ``path`` into ``model``, or say why its tensors do not fit.

    They do not when the model family has changed its networks since the file was
    written: the model is rebuilt from the run's recorded settings by today's code.
    """
    state = load(path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as e:
        reason = str(e).strip().splitlines()
        raise AigcError(
            f"checkpoint {path} does not fit the model its run's settings build: "
            + (reason[-1].strip() if reason else type(e).__name__),
            "it was written by another version of the model family; load it with the "
            "versions the run recorded (aigc-run runs show RUN_ID lists them)",
        ) from e


def metadata(path: Path) -> dict[str, str]:
    """The string metadata stored in a ``.safetensors`` file's header ({} for a ``.pt`` file)."""
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problem_with(path: Path, sha256: str) -> str | None:
    """None when ``path`` is a file whose sha256 is ``sha256``; else what is wrong with it,
    as words that follow its name ("... is missing")."""
    if not path.is_file():
        return "is missing"
    if sha256_of(path) != sha256:
        return (
            "no longer matches its recorded sha256: it was changed or damaged after it was written"
        )
    return None
