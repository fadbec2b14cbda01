"""SIGKILL at random points of training, checkpointing, sampling, registry writes and the
report; after each, the registry opens, every recorded checkpoint is whole, and
`aigc-run resume` carries on. The run that finally completes has the same weights and the
same samples as a run that was never killed: nothing is lost beyond the last checkpoint."""

from __future__ import annotations

import contextlib
import csv
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from aigc_run import checkpoints
from aigc_run.registry import Registry

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")
KILLS = 20

SCENARIO = """
name = "killable"
plugin = "medical"
[data]
source = "scans"
image_size = 16
[data.options]
demo_count = 60
[model]
width = 8
latent_dim = 8
[train]
steps = 150
batch_size = 8
log_every = 5
checkpoint_every = 10
[sample]
count = 200
batch_size = 16
[filters]
intensity-plausibility = "off"
memorisation = "off"
anatomical-plausibility = "off"
[evaluate]
metrics = ["fid", "memorisation"]  # kills land in evaluation too; the rest is tested apart
samples = 6
"""


def _start(home: Path, *args: str) -> subprocess.Popen[str]:
    # one thread: bit-identical results need the same reduction order in every process
    env = {**os.environ, "AIGC_HOME": str(home), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [AIGC_RUN, *args, "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill reaches any worker too
    )


def _finish(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def _check_after_kill(home: Path, run_id: int) -> str:
    """The registry opens; every checkpoint it lists is whole. Returns the run's status."""
    registry = Registry(f"sqlite:///{home / 'registry.db'}")
    try:
        registry.reap_dead_runs()
        detail = registry.get_run(run_id)
        for checkpoint in detail.checkpoints:
            path = Path(checkpoint.path)
            assert checkpoints.sha256_of(path) == checkpoint.sha256, f"{path} is not whole"
            checkpoints.load(path)
        return detail.status
    finally:
        registry.close()


def _final_state(home: Path, run_id: int) -> tuple[dict[str, torch.Tensor], list[dict]]:
    registry = Registry(f"sqlite:///{home / 'registry.db'}")
    try:
        detail = registry.get_run(run_id)
        assert detail.status == "completed"
        assert detail.checkpoints[-1].step == 150
        assert detail.samples.total == 200, "samples recorded twice or lost"
        weights = checkpoints.load(Path(detail.checkpoints[-1].path))
        with open(Path(detail.output_dir) / "manifest.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        return weights, rows
    finally:
        registry.close()


def _latest_run(home: Path) -> int:
    registry = Registry(f"sqlite:///{home / 'registry.db'}")
    try:
        return registry.list_runs()[0].id
    finally:
        registry.close()


@pytest.mark.slow
def test_twenty_sigkills_lose_nothing_beyond_the_last_checkpoint(tmp_path: Path, tally: Counter):
    scenario = tmp_path / "killable.toml"
    scenario.write_text(SCENARIO)

    reference_home = tmp_path / "uninterrupted"
    started = time.monotonic()
    _finish(_start(reference_home, "scenario", str(scenario)))
    lifetime = time.monotonic() - started
    expected_weights, expected_rows = _final_state(reference_home, 1)

    home = tmp_path / "killed"
    chance = random.Random(20261128)  # a fixed seed: a failure can be replayed
    kills, resumes, fresh_starts, verified = 0, 0, 0, 0
    process = _start(home, "scenario", str(scenario))
    while True:
        if kills < KILLS:
            if kills % 2:
                # Every other kill lands after this process's first checkpoint, so that at
                # least half are followed by a resume whatever the machine's start-up time:
                # on a slow one, random times alone put most kills before it.
                _wait_for_a_checkpoint(home, process)
            time.sleep(chance.uniform(0.5, 0.8 * lifetime))
        if kills < KILLS and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            kills += process.returncode == -signal.SIGKILL
        if process.poll() is None or process.returncode != -signal.SIGKILL:
            _finish(process)  # it ended by itself: it must have succeeded
        run_id = _latest_run(home) if (home / "registry.db").exists() else None
        status = _check_after_kill(home, run_id) if run_id else None
        if status == "completed":
            # whatever it went through, the run ends as if it had never been killed
            weights, rows = _final_state(home, run_id)
            assert weights.keys() == expected_weights.keys()
            for name, tensor in expected_weights.items():
                assert torch.equal(weights[name], tensor), f"run {run_id}: {name} differs"
            assert _decisions(rows) == _decisions(expected_rows)
            verified += 1
            if kills >= KILLS:
                break
        if status not in (None, "completed") and _has_checkpoint(home, run_id):
            process = _start(home, "resume", str(run_id))
            resumes += 1
        else:  # completed, or killed before its first checkpoint: start a new run
            process = _start(home, "scenario", str(scenario))
            fresh_starts += 1

    assert kills == KILLS and resumes >= KILLS // 2
    tally["SIGKILLs survived"] += kills
    tally["resumes after a SIGKILL"] += resumes
    print(f"{kills} SIGKILLs, {resumes} resumes, {fresh_starts} new runs, {verified} verified")


def _wait_for_a_checkpoint(home: Path, process: subprocess.Popen[str]) -> None:
    """Until a checkpoint file written after ``process`` started exists, or it has ended.

    Reads the files, not the registry: opening the registry here would compete with the
    process for its database lock."""
    started = time.time() - 1  # file times have coarser clocks on some file systems
    while process.poll() is None:
        for path in home.glob("**/*.safetensors"):
            with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
                if path.stat().st_mtime >= started:
                    return
        time.sleep(0.1)


def _decisions(rows: list[dict]) -> list[dict]:
    """The manifest without file paths (the run folders differ): index, class, scores..."""
    return [{k: v for k, v in r.items() if k != "file"} for r in rows]


def _has_checkpoint(home: Path, run_id: int) -> bool:
    registry = Registry(f"sqlite:///{home / 'registry.db'}")
    try:
        return bool(registry.get_run(run_id).checkpoints)
    finally:
        registry.close()
