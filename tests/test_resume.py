"""Resume after SIGKILL ends bit-identical to an uninterrupted run; divergence stops cleanly."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aigc_run.checkpoints import sha256_of
from aigc_run.registry import Registry
from aigc_run.run.training import _DivergenceGuard
from aigc_run.settings import Settings

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")

# A plugin that kills its own process with SIGKILL once step KILL_AT_STEP was logged:
# exactly like `kill -9` from outside, but at a known step, so the test never races.
KILLER = """
import os, signal
from aigc_run import hookimpl

@hookimpl
def after_training_step(run, step, values):
    if step == int(os.environ.get("KILL_AT_STEP", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
"""

TINY = """
name = "tiny"
plugin = "medical"
[data]
source = "scans"
image_size = 16
[data.options]
demo_count = 60
[model]
family = "{family}"
width = 8
latent_dim = 8
[train]
steps = 12
batch_size = 4
log_every = 1
checkpoint_every = 5
[sample]
count = 4
[filters]
intensity-plausibility = "auto"
memorisation = "auto"
[evaluate]
metrics = []  # what is compared is the training; evaluation is tested elsewhere
"""


def run_cli(*args: str, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILL_AT_STEP": str(kill_at), "OMP_NUM_THREADS": "1"}
    return subprocess.run([AIGC_RUN, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def tiny(tmp_path: Path, install_plugin):
    install_plugin("killer", KILLER)

    def write(family: str = "gan") -> str:
        path = tmp_path / f"tiny-{family}.toml"
        path.write_text(TINY.format(family=family))
        return str(path)

    return write


def last_checkpoint(registry: Registry, run_id: int) -> dict[str, torch.Tensor]:
    return load_file(registry.get_run(run_id).checkpoints[-1].path)


def check_resume_is_exact(scenario: str, *args: str) -> None:
    """Kill a run of ``scenario`` (with ``args``) at step 8, resume it, and compare its
    last checkpoint with an uninterrupted run's, bit for bit."""
    registry = Registry(Settings().registry_url)
    earlier = {r.id for r in registry.list_runs()}
    killed = run_cli("scenario", scenario, *args, "--quiet", kill_at=8)  # checkpoint 5 exists
    assert killed.returncode == -9, killed.stderr
    (run,) = [r for r in registry.list_runs() if r.id not in earlier]
    assert [c.step for c in registry.get_run(run.id).checkpoints] == [5]

    # A damaged checkpoint is refused, and nothing changes; restored, it resumes.
    path = Path(registry.get_run(run.id).checkpoints[-1].path)
    good = path.read_bytes()
    path.write_bytes(good[:-1] + b"\0")
    refused = run_cli("resume", str(run.id))
    assert refused.returncode == 1 and "no longer matches its recorded sha256" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert registry.get_run(run.id).status == "interrupted"
    path.write_bytes(good)

    resumed = run_cli("resume", str(run.id), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming scenario 'tiny' from step 5" in resumed.stdout
    detail = registry.get_run(run.id)
    assert detail.status == "completed" and detail.samples.total >= 4
    assert [c.step for c in detail.checkpoints] == [5, 10, 12]
    again = run_cli("resume", str(run.id))
    assert again.returncode == 1 and f"run {run.id} has completed" in again.stderr

    whole = run_cli("scenario", scenario, *args, "--quiet")
    assert whole.returncode == 0, whole.stderr
    reference = registry.list_runs()[0].id
    assert reference != run.id
    resumed_state = last_checkpoint(registry, run.id)
    uninterrupted = last_checkpoint(registry, reference)
    assert resumed_state.keys() == uninterrupted.keys()
    assert any(k.startswith("optimizer") for k in uninterrupted)  # Adam moments compared too
    for key, value in uninterrupted.items():
        assert torch.equal(resumed_state[key], value), key
    # Steps 6-8 were logged before the kill and again after the resume: kept once.
    assert detail.metric_points == registry.get_run(reference).metric_points


def test_gan_fine_tuning_resumed_after_sigkill_ends_bit_identical(tiny):
    # A gan started from another run (with D's first block frozen, G's coarse layers at
    # half the learning rate: two groups in G's optimiser): what resume restores is the
    # run's own checkpoint, not the run it started from. A gan from scratch killed
    # and resumed is checked at many more points in tests/reliability/test_kills.py.
    scenario = tiny("gan")
    base = run_cli("scenario", scenario, "--quiet", "--set", "train.steps=4")
    assert base.returncode == 0, base.stderr
    (run,) = Registry(Settings().registry_url).list_runs()
    check_resume_is_exact(
        scenario, "--init-from", str(run.id),
        "--set", "train.freeze_d=1", "--set", "train.lr_g_coarse=0.5",
    )  # fmt: skip


@pytest.mark.slow
def test_vae_resumed_after_sigkill_ends_bit_identical(tiny):
    check_resume_is_exact(tiny("vae"))  # the latent mixture is fitted after the resume


def test_resume_refuses_an_unknown_run_or_one_without_checkpoint():
    unknown = run_cli("resume", "999")
    assert unknown.returncode == 1 and "no run with id 999" in unknown.stderr

    registry = Registry(Settings().registry_url)
    early = registry.create_run("tiny", {}, {}, "cpu", "/nowhere")  # died before a checkpoint
    registry.finish_run(early, "interrupted")
    refused = run_cli("resume", str(early))
    assert refused.returncode == 1
    assert "stopped before its first checkpoint" in refused.stderr
    assert "Hint: start it again with `aigc-run scenario tiny`" in refused.stderr


def test_divergence_stops_with_the_step_and_an_intact_checkpoint(tiny):
    # An absurd learning rate sends the VAE's KL term from ~3 to ~1e5 at step 2.
    result = run_cli(
        "scenario",
        tiny("vae"),
        "--quiet",
        "--set",
        "train.lr=1.0",
        "--set",
        "train.max_loss=1e4",
        "--set",
        "train.checkpoint_every=1",
    )
    assert result.returncode == 1
    assert "training diverged at step 2" in result.stderr
    assert "beyond train.max_loss=10000" in result.stderr
    registry = Registry(Settings().registry_url)
    detail = registry.get_run(registry.list_runs()[0].id)
    assert detail.status == "failed"
    (checkpoint,) = detail.checkpoints  # step 2's weights were never saved
    assert checkpoint.step == 1
    assert f"the last good checkpoint, intact, is {checkpoint.path}" in result.stderr
    assert sha256_of(Path(checkpoint.path)) == checkpoint.sha256
    assert all(v.isfinite().all() for v in load_file(checkpoint.path).values())


def test_guard_names_the_first_bad_step_and_value():
    guard = _DivergenceGuard(100.0, "cpu")
    guard.watch(1, {"loss": torch.tensor(3.0), "kl": 1.0})
    guard.check(None)
    guard.watch(2, {"loss": torch.tensor(math.nan), "kl": 1.0})
    guard.watch(3, {"loss": torch.tensor(math.inf), "kl": 500.0})
    with pytest.raises(Exception, match="diverged at step 2: loss became NaN") as caught:
        guard.check(None)
    assert "no checkpoint had been written yet" in str(caught.value)
