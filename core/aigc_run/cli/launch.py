"""``--nproc N``: run a command in N worker processes on this machine.

PyTorch's elastic launcher (the machinery behind ``torchrun``) starts the workers, each the
same command without ``--nproc``; dist.py is what they do once started.
"""

from __future__ import annotations

import os
import sys
import uuid


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``aigc-run ARGV`` in ``nproc`` worker processes on this machine; the exit code.

    Each worker runs the CLI module as ``python -m aigc_run.cli ARGV`` would (as torchrun
    starts them), so a worker is an ordinary CLI process that finds its ranks in its
    environment.

    PyTorch's elastic launcher (what ``torchrun --standalone`` uses) starts them, sets their
    ranks and, when one fails, stops the others. The workers stay in this process group,
    so Ctrl-C or a kill of the group reaches them all.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # Its own logs ("terminating process ...", the worker's traceback again) repeat what
    # the failing worker printed; the summary below says which one failed.
    # Each of its modules sets its logger's level when imported (so: after the imports).
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("torch.distributed.elastic", "torch.multiprocessing")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # As torchrun does: N processes each with all cores' threads would fight over them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"aigc-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # a free port on this machine
        max_restarts=0,  # a failed run is resumed with `aigc-run resume`, not restarted
        start_method="spawn",
    )
    try:
        elastic_launch(config, _worker)(argv)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        print(
            f"Error: worker {rank} of {nproc} exited with code {failure.exitcode}; "
            "all workers were stopped (its message is above)",
            file=sys.stderr,
        )
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException as e:
        raise KeyboardInterrupt from e
    return 0


def _worker(argv: list[str]) -> None:
    """One worker started by ``launch``: the same command, now with ranks in its environment.

    It runs the module ``aigc_run.cli`` as a program (what ``python -m`` does) rather than
    importing the command group: a launched worker is a CLI process like any other. A
    function, not a new executable, keeps the workers in this process group.
    """
    import runpy
    import traceback

    sys.argv = ["aigc-run", *argv]
    try:
        runpy.run_module("aigc_run.cli", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code:  # click exits 0 after a command that succeeded: nothing to report
            raise
    except Exception:  # a bug, not a user error: its traceback, as in one process
        traceback.print_exc()
        sys.exit(1)
