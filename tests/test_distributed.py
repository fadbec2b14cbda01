"""Training over two CPU processes (gloo): one run recorded, loss goes down, failures stop
every rank, and a run whose processes were all killed resumes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from aigc_run import ConfigError, ModelSpec
from aigc_run.models import vae
from aigc_run.registry import Registry
from aigc_run.run.generation import generate
from aigc_run.run.training import step_seed
from aigc_run.settings import Settings

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")

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
steps = {steps}
batch_size = 8
log_every = 1
checkpoint_every = 5
[sample]
count = {count}
batch_size = 2
[filters]
intensity-plausibility = "auto"
memorisation = "auto"
"""

# Runs on rank 0 only (only rank 0 calls lifecycle hooks): SIGKILL for the launcher and
# every worker at once, as `kill -9 -PGID` would, at a known step so the test never races.
KILL_GROUP = """
import os, signal
from aigc_run import hookimpl

@hookimpl
def after_training_step(run, step, values):
    if step == int(os.environ.get("KILL_AT_STEP", "0")):
        os.killpg(os.getpgid(0), signal.SIGKILL)
"""

# A gan whose training fails on rank 1 only, at step 3.
FAILS_ON_RANK_1 = """
import os
from aigc_run import hookimpl
from aigc_run import ModelFamily
from aigc_run.models import gan

class Failing(gan.Gan):
    def train_step(self, images, labels):
        if os.environ.get("RANK") == "1" and self.step == 2:
            raise RuntimeError("rank 1 broke")
        return super().train_step(images, labels)

@hookimpl
def register_model_families():
    return [ModelFamily("failing-gan", "fails on rank 1", Failing)]
"""


def run_cli(*args: str, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KILL_AT_STEP": str(kill_at), "OMP_NUM_THREADS": "1"}
    # Its own session: killing the run's process group must not reach pytest.
    return subprocess.run(
        [AIGC_RUN, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        start_new_session=True,
    )


@pytest.fixture
def tiny(tmp_path: Path):
    def write(family: str, steps: int, count: int = 4) -> str:
        path = tmp_path / f"tiny-{family}.toml"
        path.write_text(TINY.format(family=family, steps=steps, count=count))
        return str(path)

    return write


def test_rank_0_draws_what_one_process_draws_and_other_ranks_differ():
    old = int(np.random.SeedSequence([7, 3]).generate_state(1, np.uint64)[0])
    assert step_seed(7, 3) == step_seed(7, 3, 0) == old  # one-process runs are unchanged
    assert len({step_seed(7, 3, r) for r in range(4)}) == 4


def test_two_processes_train_one_run_whose_loss_goes_down(tiny):
    result = run_cli("scenario", tiny("vae", 30, count=8), "--nproc", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("completed in") == 1  # rank 1 prints nothing
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    detail = registry.get_run(run.id)
    assert detail.status == "completed" and detail.samples.accepted == 8
    assert [c.step for c in detail.checkpoints] == [5, 10, 15, 20, 25, 30]
    loss = [value for _, value in registry.metric_series(run.id)["loss"]]
    assert len(loss) == 30
    early, late = np.mean(loss[:5]), np.mean(loss[-5:])
    assert late < 0.8 * early, loss

    # Sampling was split in blocks of sample.batch_size (2) indices: rank 0 took 0, 1, 4,
    # 5, ..., rank 1 took 2, 3, 6, 7, ...; rank 0 merged the manifest in index order.
    folder = Path(detail.output_dir)
    with (folder / "manifest.csv").open() as f:
        rows = list(csv.DictReader(f))
    indices = [int(r["index"]) for r in rows]
    assert indices == sorted(indices) and {2, 3} <= set(indices)
    assert len(rows) == detail.samples.total and not list(folder.glob("manifest.part-*"))
    # An image of rank 1 regenerates from (checkpoint, seed, index) alone.
    row = next(r for r in rows if r["index"] == "3")
    config = detail.config
    model = vae.create(ModelSpec(1, 16, 2, True, config["model"], config["train"], "cpu"))
    model.load_state_dict(load_file(detail.checkpoints[-1].path))
    _, pixels = generate(model, int(row["seed"]), [3], torch.tensor([1]), None, "cpu")
    written = np.asarray(Image.open(folder / row["file"]))
    assert np.array_equal(pixels[0, 0].numpy(), written)


@pytest.mark.slow
def test_a_failure_on_rank_1_stops_rank_0_and_marks_the_run_failed(tiny, install_plugin):
    install_plugin("failing", FAILS_ON_RANK_1)
    result = run_cli("scenario", tiny("failing-gan", 30), "--nproc", "2", "--quiet")
    assert result.returncode == 1
    assert "rank 1 broke" in result.stderr
    assert "worker 1 of 2 exited with code 1; all workers were stopped" in result.stderr
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    assert registry.get_run(run.id).status == "failed"


@pytest.mark.slow
def test_an_option_ddp_cannot_run_is_refused_over_several_processes(tiny):
    result = run_cli("scenario", tiny("gan", 10), "--nproc", "2", "--set", "model.r1=1")
    assert result.returncode == 2  # a ConfigError's code, passed on by the launcher
    assert "model.r1: the R1 penalty needs a double backward" in result.stderr
    assert "Traceback" not in result.stderr
    assert "worker 0 of 2 exited with code 2" in result.stderr or "worker 1 of 2" in result.stderr


def _train_gan_on_own_batches(rank: int, init: str, out: str) -> None:
    """Rank ``rank`` of 2: DCGAN's layers (batch-norm D, two D passes per step) trained
    through DistributedDataParallel on batches only this rank sees; writes its weights."""
    import torch.distributed as dist
    from safetensors.torch import save_file
    from torch.nn.parallel import DistributedDataParallel

    from aigc_run.models import gan

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    options = {"width": 8, "latent_dim": 8, "d_norm": "batch", "upsample": "transposed"}
    model = gan.create(ModelSpec(1, 16, 2, True, options, {"lr": 1e-3}, "cpu"))
    model.distribute(DistributedDataParallel)
    torch.manual_seed(100 + rank)
    for _ in range(3):
        model.train_step(torch.rand(8, 1, 16, 16) * 2 - 1, torch.randint(2, (8,)))
    save_file(model.state_dict(), f"{out}/rank{rank}.safetensors")
    dist.destroy_process_group()


def test_a_batch_norm_discriminator_trains_in_step_over_two_processes(tmp_path):
    # Its reals and fakes go through D in two passes with a backward each (the first one
    # inside no_sync): the gradients must still be averaged over the ranks, so both end
    # with the same weights though each trained on its own batches.
    init = f"file://{tmp_path / 'rendezvous'}"
    torch.multiprocessing.spawn(_train_gan_on_own_batches, (init, str(tmp_path)), nprocs=2)
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    weights = [
        k for k in rank0 if k.startswith(("generator.", "discriminator.")) and "running" not in k
    ]
    assert "discriminator.features.0.weight" in weights
    for key in weights:
        assert torch.equal(rank0[key], rank1[key]), key
    # The batch-norm statistics are per process and differ: the ranks really trained on
    # their own batches.
    key = "discriminator.features.3.running_mean"
    assert not torch.equal(rank0[key], rank1[key])


@pytest.mark.slow
def test_two_process_run_resumes_after_all_its_processes_were_killed(tiny, install_plugin):
    install_plugin("killgroup", KILL_GROUP)
    scenario = tiny("gan", 12)
    killed = run_cli("scenario", scenario, "--nproc", "2", "--quiet", kill_at=8)
    assert killed.returncode == -9, killed.stderr
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    assert [c.step for c in registry.get_run(run.id).checkpoints] == [5]

    resumed = run_cli("resume", str(run.id), "--nproc", "2", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming scenario 'tiny' from step 5" in resumed.stdout
    detail = registry.get_run(run.id)
    assert detail.status == "completed" and detail.samples.accepted == 4
    assert [c.step for c in detail.checkpoints] == [5, 10, 12]
    assert len(registry.list_runs()) == 1

    # Rank 1 resumed from rank 0's weights and drew its own batches again: the run ends
    # where an uninterrupted two-process run ends, which differs from a one-process run.
    whole = run_cli("scenario", scenario, "--nproc", "2", "--quiet")
    single = run_cli("scenario", scenario, "--quiet")
    assert whole.returncode == 0 and single.returncode == 0, whole.stderr + single.stderr
    reference, alone = (r.id for r in registry.list_runs()[:2][::-1])
    final = {i: load_file(registry.get_run(i).checkpoints[-1].path) for i in (run.id, reference)}
    for key, value in final[reference].items():
        assert torch.equal(final[run.id][key], value), key
    one = load_file(registry.get_run(alone).checkpoints[-1].path)
    key = "generator.to_image.1.weight"
    assert not torch.equal(one[key], final[run.id][key])


@pytest.mark.slow
def test_a_run_launched_by_torchrun_is_recorded_once(tiny):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    result = subprocess.run(
        [*command, "2", "-m", "aigc_run.cli", "scenario", tiny("vae", 5), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    assert registry.get_run(run.id).status == "completed"


def test_every_rank_picks_the_same_backend_from_the_runs_device() -> None:
    from aigc_run.dist import backend

    nccl = "cpu:gloo,cuda:nccl"
    assert backend("cpu", 0, 2, gpus=8) == "gloo"  # a CPU run on a GPU machine
    assert backend("auto", 0, 2, gpus=0) == "gloo"
    assert backend("auto", 0, 2, gpus=2) == backend("auto", 1, 2, gpus=2) == nccl
    # fewer GPUs than processes: "auto" gives every rank gloo rather than rank 0 NCCL alone
    assert backend("auto", 0, 2, gpus=1) == backend("auto", 1, 2, gpus=1) == "gloo"
    assert backend("cuda", 1, 2, gpus=2) == nccl
    with pytest.raises(ConfigError, match="process 2 of this machine has no GPU"):
        backend("cuda", 2, 4, gpus=2)


@pytest.mark.slow
def test_over_its_time_budget_every_rank_stops_at_the_same_logging_step(tiny):
    # The ranks agree on the budget on logging steps only (agreeing syncs the GPU): a run
    # long out of time stops at its first logging step, 4, on both ranks.
    limits = ["--set", "train.max_minutes=0.000001", "--set", "train.log_every=4"]
    result = run_cli("scenario", tiny("gan", 1000, count=2), "--nproc", "2", "--quiet", *limits)
    assert result.returncode == 0, result.stderr
    registry = Registry(Settings().registry_url)
    (run,) = registry.list_runs()
    detail = registry.get_run(run.id)
    assert detail.status == "completed" and [c.step for c in detail.checkpoints] == [4]
