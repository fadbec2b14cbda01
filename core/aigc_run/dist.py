"""Training over several processes with torch.distributed: ranks and collective calls.

Two ways in, one code path. ``aigc-run scenario NAME --nproc N`` starts N workers on this
machine with PyTorch's elastic launcher (the machinery behind ``torchrun``), each running
the same command without ``--nproc``; ``torchrun --nproc-per-node N -m aigc_run.cli
scenario NAME`` (with ``--nnodes``/``--rdzv-endpoint`` for several machines) starts them
itself. Either way a worker finds RANK, WORLD_SIZE and LOCAL_RANK in its environment and
joins the process group (gloo for CPU tensors, NCCL for CUDA ones).

Rank 0 does everything a one-process run does: it records the run, logs, writes
checkpoints, the manifest and the report. The other ranks train and sample their part
(run/follower.py): they never open the registry, they start from rank 0's weights (so a
resume needs the checkpoint on rank 0's machine only) and sample with rank 0's final
weights, handing rank 0 what they generated. The model family opts in by defining
``distribute(wrap)``, which wraps its networks in DistributedDataParallel.

A failure on any rank stops all of them: the launcher stops the others (SIGTERM, which
here raises ``Stopped`` so rank 0 marks the run failed), and every collective has the
process group's timeout (``AIGC_DIST_TIMEOUT``, seconds), so no rank waits for ever.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from aigc_run.contract.errors import AigcError, ConfigError

if TYPE_CHECKING:
    from torch import nn

    from aigc_run.contract.components import GenerativeModel
    from aigc_run.scenario import Scenario

# The first run of a scenario decodes its data set on rank 0 while the others wait at a
# barrier: that can take minutes, so the default is generous.
DEFAULT_TIMEOUT_S = 1800


class Stopped(AigcError):
    """The launcher stopped this worker: another process of the run failed or was stopped."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that records the run and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def from_environment() -> Ranks:
    """The ranks torchrun (or ``--nproc``) set for this process; one process when unset."""
    return Ranks(
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def current() -> Ranks:
    """This process's ranks once its process group is up; one process otherwise."""
    if "torch" not in sys.modules:
        return Ranks()
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), from_environment().local_rank)


# ---------------------------------------------------------------------------------------
# launching and the process group
# ---------------------------------------------------------------------------------------


def backend(device: str, local_rank: int, local_world_size: int, gpus: int) -> str:
    """The process group's backend, the same on every rank: gloo, and NCCL beside it when
    the run trains on CUDA (``device``: the run's train.device, ``auto`` = CUDA when this
    machine has a GPU for each of its processes)."""
    cuda = device.startswith("cuda") or (device == "auto" and gpus >= local_world_size)
    if not cuda or gpus == 0:
        return "gloo"
    if local_rank >= gpus:
        raise ConfigError(
            f"process {local_rank} of this machine has no GPU of its own: {gpus} visible",
            "start at most one process per GPU (--nproc), or train on the CPU with "
            "--set train.device=cpu",
        )
    return "cpu:gloo,cuda:nccl"


@contextmanager
def session(device: str = "auto") -> Iterator[Ranks]:
    """Join the process group when launched as one of several workers; leave it at the end.

    One process: nothing happens. Several: gloo carries CPU tensors and, when the run
    trains on CUDA (``device``, its train.device; see ``backend``), NCCL CUDA ones,
    with ``AIGC_DIST_TIMEOUT`` on every collective; SIGTERM (the launcher stopping this
    worker) raises ``Stopped`` and a second Ctrl-C or SIGTERM is ignored, so rank 0 has
    time to mark the run failed or interrupted.
    """
    ranks = from_environment()
    if not ranks.active:
        yield ranks
        return
    import torch
    import torch.distributed as dist

    timeout = timedelta(seconds=float(os.environ.get("AIGC_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world_size))
    chosen = backend(device, ranks.local_rank, local_world_size, torch.cuda.device_count())
    if "nccl" in chosen:  # one GPU per process on each machine
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group(chosen, timeout=timeout)
    previous = _stop_on_signals()
    try:
        yield ranks
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        dist.destroy_process_group()


def _stop_on_signals() -> dict[int, Any]:
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping:  # the run is being marked; a second signal must not cut that short
            return
        stopping = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Stopped(
            "stopped by the launcher: another process of the run failed or was interrupted",
            "see the first error above; resume with `aigc-run resume RUN_ID --nproc N`",
        )

    return {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}


def local_device(device: str) -> str:
    """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` in a run of several."""
    ranks = current()
    if not (ranks.active and device == "cuda"):
        return device
    import torch

    if ranks.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"process {ranks.local_rank} of this machine has no GPU of its own: "
            f"{torch.cuda.device_count()} visible",
            "start at most one process per GPU (--nproc), or train on the CPU with "
            "--set train.device=cpu",
        )
    return f"cuda:{ranks.local_rank}"


# ---------------------------------------------------------------------------------------
# what the engine and the training loop call (no-ops in a one-process run)
# ---------------------------------------------------------------------------------------


def data_ready() -> None:
    """Rank 0 has loaded (and cached) the data set; the others may now read the cache."""
    if current().active:
        import torch
        import torch.distributed as dist

        # A barrier as an all_reduce of a CPU tensor: always gloo, whatever the backends.
        dist.all_reduce(torch.zeros(1))


def share_start(model: Any, start: Any) -> Any:
    """Every rank starts from rank 0's weights, optimiser state and resume point."""
    import torch.distributed as dist

    payload = [(start, model.state_dict()) if current().main else None]
    dist.broadcast_object_list(payload, src=0)
    start, state = payload[0]  # type: ignore[misc]
    if not current().main:
        model.load_state_dict(state)
    return start


def send_scenario(scenario: Scenario | None) -> None:
    """Rank 0 hands the checked scenario of a run to resume to the others (None: refused)."""
    if current().active:
        import torch.distributed as dist

        dist.broadcast_object_list([scenario], src=0)


def receive_scenario() -> Scenario:
    """The scenario rank 0 resumes; when rank 0 refused the run, exit (it says why)."""
    import torch.distributed as dist

    payload: list[Any] = [None]
    dist.broadcast_object_list(payload, src=0)
    if payload[0] is None:
        raise SystemExit(1)
    return payload[0]


def distribute(model: GenerativeModel, family: str, device: str) -> None:
    """Let the model wrap its networks in DistributedDataParallel, or refuse the family."""
    if not model.distribute(ddp_wrapper(device)):
        raise ConfigError(
            f"model family {family!r} cannot train over several processes "
            "(its model's distribute(wrap) does not wrap its networks)",
            "train it in one process (without --nproc), or pick the gan or vae family",
        )


def ddp_wrapper(device: str) -> Callable[[nn.Module], nn.Module]:
    def wrap(module: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        index = _cuda_index(device)
        return DistributedDataParallel(module, device_ids=None if index is None else [index])

    return wrap


def _cuda_index(device: str) -> int | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.device(device).index or 0


def average(values: Mapping[str, float], device: str) -> dict[str, float]:
    """The mean of each logged value over all ranks (one all_reduce for all of them)."""
    import torch
    import torch.distributed as dist

    names = sorted(values)
    summed = torch.tensor([values[n] for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(summed)
    mean = (summed / dist.get_world_size()).tolist()
    return dict(zip(names, mean, strict=True))


def any_rank(flag: bool, device: str) -> bool:
    """True on every rank when it is True on one (all stop at the same step)."""
    import torch
    import torch.distributed as dist

    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# ---------------------------------------------------------------------------------------
# sampling split across the ranks
# ---------------------------------------------------------------------------------------


def sampling_part() -> tuple[int, int]:
    """(rank, ranks) that share the sampling: every rank when all run on this machine;
    rank 0 alone (0, 1) across machines, where the others could not write the run's
    folder."""
    ranks = current()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world_size))
    if ranks.active and local == ranks.world_size:
        return ranks.rank, ranks.world_size
    return 0, 1


def share_sampling(model: Any, output_dir: Path, thresholds: Mapping[str, float]) -> None:
    """Rank 0 hands the sampling ranks its final weights (so any image regenerates from its
    checkpoint), the run's folder and the calibrated filter thresholds."""
    if sampling_part()[1] > 1:
        import torch.distributed as dist

        payload = [(model.state_dict(), output_dir, dict(thresholds))]
        dist.broadcast_object_list(payload, src=0)


def receive_sampling(model: Any) -> tuple[Path, dict[str, float]] | None:
    """On a rank other than 0: rank 0's weights are loaded; the folder and thresholds, or
    None when this rank does not sample."""
    if sampling_part()[1] == 1:
        return None
    import torch.distributed as dist

    payload: list[Any] = [None]
    dist.broadcast_object_list(payload, src=0)
    state, output_dir, thresholds = payload[0]
    model.load_state_dict(state)
    return output_dir, thresholds


def send_sampling(result: Any, batches: list[Any]) -> None:
    """A rank other than 0 hands rank 0 what it sampled (counts, accepted pixels, batches)."""
    import torch.distributed as dist

    dist.gather_object((result, batches), None, dst=0)


def gather_sampling(result: Any, output_dir: Path, record: Callable[[Any, Any], None]) -> Any:
    """Rank 0 adds the other ranks' samples: ``record`` (registry, hooks) sees each of their
    batches, and their manifest parts are merged into manifest.csv in index order."""
    import csv

    import torch.distributed as dist

    if sampling_part()[1] == 1:
        return result
    parts: list[Any] = [None] * dist.get_world_size()
    dist.gather_object((result, []), parts, dst=0)
    for other, batches in parts[1:]:
        for batch, batch_rows in batches:
            record(batch, batch_rows)
        result.generated += other.generated
        result.accepted += other.accepted
        for label, counts in other.rejected_by_class.items():
            mine = result.rejected_by_class.setdefault(label, {})
            for name, n in counts.items():
                mine[name] = mine.get(name, 0) + n
        result.accepted_images += other.accepted_images
        result.accepted_labels += other.accepted_labels
        result.skipped_filters.update(other.skipped_filters)
    manifest = output_dir / "manifest.csv"
    files = [manifest, *(output_dir / f"manifest.part-{r}.csv" for r in range(1, len(parts)))]
    header: list[str] = []
    rows: list[list[str]] = []
    for path in files:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows += list(reader)
    rows.sort(key=lambda row: int(row[header.index("index")]))
    merged = manifest.with_name("manifest.csv.tmp")
    with merged.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    os.replace(merged, manifest)  # a crash leaves the parts and rank 0's own manifest
    for path in files[1:]:
        path.unlink()
    return result
