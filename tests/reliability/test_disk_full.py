"""A disk that fills up during a checkpoint write leaves the previous checkpoint intact."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_run import DataError, checkpoints, data

# Writes a checkpoint twice the size of the first into the same place, in a process that
# may not write files over 64 KiB: the operating system's own "file too large" error,
# the same path through the code as a full disk.
SECOND_WRITE = """
import resource, signal, sys, torch
from pathlib import Path
from aigc_run import checkpoints
from aigc_run import AigcError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get an OSError, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
try:
    checkpoints.save(Path(sys.argv[1]), {"w": torch.full((128, 256), 2.0)}, {"step": "2"})
except AigcError as e:
    print(f"{e.message}\\n{e.hint}")
    sys.exit(3)
"""


def test_a_checkpoint_write_that_runs_out_of_space_keeps_the_previous_one(tmp_path: Path):
    path = tmp_path / "checkpoints" / "last.safetensors"
    sha = checkpoints.save(path, {"w": torch.ones(64, 64)}, {"step": "1"})

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SECOND_WRITE), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 3, done.stdout + done.stderr
    assert f"could not write checkpoint {path}" in done.stdout
    assert "earlier checkpoints are intact" in done.stdout
    assert checkpoints.sha256_of(path) == sha
    assert torch.equal(checkpoints.load(path)["w"], torch.ones(64, 64))
    assert os.listdir(path.parent) == ["last.safetensors"], "a partial file was left behind"


def test_a_real_full_filesystem_keeps_the_previous_checkpoint(tmp_path: Path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the rlimit test covers it")
    try:
        path = mount / "last.safetensors"
        sha = checkpoints.save(path, {"w": torch.ones(64, 64)}, {"step": "1"})  # 16 KiB
        with pytest.raises(checkpoints.AigcError, match="No space left on device"):
            checkpoints.save(path, {"w": torch.ones(256, 256)}, {"step": "2"})  # 256 KiB
        assert checkpoints.sha256_of(path) == sha
        assert sorted(os.listdir(mount)) == ["last.safetensors"]

        # the dataset cache: a clear error, and no half-written cache folder left
        images = np.zeros((128, 3, 32, 32), dtype=np.uint8)  # 384 KiB: more than the disk
        with pytest.raises(DataError, match="could not write the dataset cache"):
            data._write_atomically(mount / "cache" / "abc", images, np.zeros(128), [], {})
        assert os.listdir(mount / "cache") == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)
