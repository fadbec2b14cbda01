"""SIGKILL at named points of training, checkpointing, sampling, registry writes, evaluation
and the report (aigc_run/faults.py: ``AIGC_FAULT=NAME:N`` makes the process kill itself the
N-th time it reaches point NAME). After each kill the registry opens, every recorded
checkpoint is whole, and the run is finished by the way a user would finish it; the run
that completes has the same weights and the same samples as a run that was never killed.

Every kill lands at the same place on every machine and in every run, so a failure
replays by its name: ``pytest 'tests/reliability/test_kills.py::test_a_sigkill_loses_nothing
[checkpoint-write:3]'``. The selected kills run side by side, one per core, in the
background (each in its own AIGC_HOME); each test case waits for its own and checks it.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from aigc_run import checkpoints, faults
from aigc_run.registry import Registry, RunDetail

AIGC_RUN = str(Path(sys.executable).parent / "aigc-run")
CORE = Path(faults.__file__).parent

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
steps = 30
batch_size = 8
log_every = 5
checkpoint_every = 10
[sample]
count = 48
batch_size = 16
[filters]
intensity-plausibility = "auto"  # one filter on: the manifest's scores are compared too
memorisation = "off"
anatomical-plausibility = "off"
[evaluate]
metrics = ["precision-recall", "memorisation"]  # cheap ones; two, so a kill can fall between
samples = 6
"""
STEPS, SAMPLES = 30, 48

# How a killed run is finished, decided from the registry after the kill:
NEW_RUN = "new run"  # no checkpoint recorded: nothing to resume, `aigc-run scenario` again
RESUMED = "resumed"  # interrupted after a checkpoint: `aigc-run resume RUN_ID` finishes it
REPORT = "report rewritten"  # killed writing the report, after the run was recorded as
# completed: the run stays completed with no report.html; `aigc-run report RUN_ID` writes it

# In SCENARIO the visits of each point are (occurrence: what it interrupts):
# train-step N: step N (checkpoints after steps 10, 20, 30); checkpoint-write 1-3: steps
# 10, 20, 30; sampling-batch 1-3: the three batches of 16; evaluation 1-2: after
# precision-recall, after memorisation; report 1: the page; registry-write 1: the run is
# created, 2-3 metrics at steps 5 and 10, 4 checkpoint 10, 5-7 the same to step 20, 8-10
# to step 30, 11 the filter's threshold, 12-14 the sample batches, 15 the acceptance rate,
# 16-21 the evaluation's six figures, 22 the run is completed.
# One kill per distinct state a kill can leave (the CI test step has a time budget; a
# second kill of the same kind, e.g. train-step:23 beside train-step:11, found nothing new):
KILLS = {
    "train-step:10": NEW_RUN,  # step 10 is done, its checkpoint not yet written
    "train-step:11": RESUMED,
    "train-step:30": RESUMED,
    "checkpoint-write:1": NEW_RUN,  # the .tmp file is left behind, never the final name
    "checkpoint-write:3": RESUMED,
    "registry-write:1": NEW_RUN,  # the run's own row is rolled back: no run at all
    "registry-write:4": NEW_RUN,  # checkpoint 10's file exists but was never recorded
    "registry-write:11": RESUMED,  # training had ended: resume goes straight to sampling
    "registry-write:18": RESUMED,
    "registry-write:22": RESUMED,  # everything done but the status: all is made again
    "sampling-batch:3": RESUMED,
    "evaluation:2": RESUMED,
    "report:1": REPORT,
}


@dataclass(frozen=True)
class Reference:
    scenario: Path
    cache: Path
    weights: dict[str, torch.Tensor]
    decisions: list[dict[str, str]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """One run never killed; its cache (data, feature network) seeds every killed run's."""
    home = tmp_path_factory.mktemp("uninterrupted")
    scenario = home / "killable.toml"
    scenario.write_text(SCENARIO)
    _finish(home, "scenario", str(scenario))
    weights, rows = _final_state(home, 1)
    return Reference(scenario, home / "cache", weights, _decisions(rows))


@pytest.fixture(scope="module")
def kills(
    request: pytest.FixtureRequest, reference: Reference, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[str]]]:
    """The kills this session selected, started in order, one per core: point -> outcome."""
    points = [
        str(item.callspec.params["point"])
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == test_a_sigkill_loses_nothing.__name__
    ]
    workers = min(len(os.sched_getaffinity(0)), 4)  # each process runs one thread
    with ThreadPoolExecutor(workers) as pool:
        yield {
            point: pool.submit(
                _kill_and_finish, point, reference, tmp_path_factory.mktemp("killed") / "home"
            )
            for point in points
        }
        pool.shutdown(cancel_futures=True)  # what a failing -x run left unstarted


@pytest.mark.slow
@pytest.mark.parametrize("point", KILLS)
def test_a_sigkill_loses_nothing(
    point: str, kills: dict[str, Future[str]], tally: Counter[str]
) -> None:
    outcome = kills[point].result()  # raises what failed there, with its traceback
    tally["SIGKILLs survived"] += 1
    tally["resumes after a SIGKILL"] += outcome == RESUMED
    assert outcome == KILLS[point], f"{point}: {outcome}, not {KILLS[point]}"


def _kill_and_finish(point: str, reference: Reference, home: Path) -> str:
    """Kill a run at ``point``, check what it left, finish it; returns how it was finished.

    The run that completes ends as the reference did, whatever it went through."""
    # The cache as the reference left it: every kill starts from the same state.
    shutil.copytree(reference.cache, home / "cache")
    killed = _aigc_run(home, "scenario", str(reference.scenario), fault=point)
    assert killed.returncode == -signal.SIGKILL, f"{point} was not reached:\n{killed.stdout}"

    run = _check_after_kill(home)
    if run is None or not run.checkpoints:
        outcome = NEW_RUN
        assert run is None or run.status == "interrupted"
        _finish(home, "scenario", str(reference.scenario))
    elif run.status == "completed":
        outcome = REPORT
        page = Path(run.output_dir) / "report.html"
        assert not page.exists()
        _finish(home, "report", str(run.id))
        assert page.is_file()
    else:
        outcome = RESUMED
        assert run.status == "interrupted"
        _finish(home, "resume", str(run.id))

    weights, rows = _final_state(home, _latest_run(home))
    assert weights.keys() == reference.weights.keys()
    for name, tensor in reference.weights.items():
        assert torch.equal(weights[name], tensor), f"{point}: {name} differs"
    assert _decisions(rows) == reference.decisions
    return outcome


# -- faults.point itself (fast) ------------------------------------------------------------

_VISITS = """
from aigc_run import faults
for visit in (1, 2, 3):
    faults.point("report")  # another point's visits do not count
    faults.point("train-step")
    print(visit, flush=True)
"""


def _visits(fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != faults.VARIABLE}
    if fault is not None:
        env[faults.VARIABLE] = fault
    return subprocess.run(
        [sys.executable, "-c", _VISITS], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_fault_point_kills_at_its_nth_visit_only() -> None:
    second = _visits("train-step:2")
    assert (second.returncode, second.stdout) == (-signal.SIGKILL, "1\n")
    first = _visits("train-step")  # no N: the first visit
    assert (first.returncode, first.stdout) == (-signal.SIGKILL, "")


def test_an_unset_fault_does_nothing() -> None:
    unset = _visits(None)
    assert (unset.returncode, unset.stdout) == (0, "1\n2\n3\n")


def test_a_misspelt_fault_is_refused() -> None:
    for bad in ("train-stp:2", "train-step:0", "train-step:x"):
        refused = _visits(bad)
        assert refused.returncode == 1 and "AIGC_FAULT" in refused.stderr, bad


def test_every_documented_point_is_placed_once() -> None:
    """faults.POINTS, its docstring and the calls in the code name the same points."""
    calls = Counter(
        name
        for path in CORE.rglob("*.py")
        for name in re.findall(r'faults\.point\("([a-z-]+)"\)', path.read_text())
    )
    assert calls == Counter(faults.POINTS)
    assert faults.__doc__ is not None
    assert set(re.findall(r"^- ``([a-z-]+)``", faults.__doc__, re.M)) == set(faults.POINTS)
    assert {point.partition(":")[0] for point in KILLS} == set(faults.POINTS)


# -- helpers -------------------------------------------------------------------------------


def _aigc_run(home: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    # one thread: bit-identical results need the same reduction order in every process
    env = {k: v for k, v in os.environ.items() if k != faults.VARIABLE}
    env.update(AIGC_HOME=str(home), OMP_NUM_THREADS="1")
    if fault is not None:
        env[faults.VARIABLE] = fault
    quiet = ["--quiet"] if args[0] != "report" else []
    return subprocess.run(
        [AIGC_RUN, *args, *quiet],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )


def _finish(home: Path, *args: str) -> None:
    done = _aigc_run(home, *args)
    assert done.returncode == 0, done.stdout


def _check_after_kill(home: Path) -> RunDetail | None:
    """The registry opens; every checkpoint it lists is whole. The newest run, or None."""
    registry = Registry(f"sqlite:///{home / 'registry.db'}")
    try:
        registry.reap_dead_runs()
        runs = registry.list_runs()
        if not runs:
            return None
        detail = registry.get_run(runs[0].id)
        for checkpoint in detail.checkpoints:
            path = Path(checkpoint.path)
            assert checkpoints.sha256_of(path) == checkpoint.sha256, f"{path} is not whole"
            checkpoints.load(path)
        return detail
    finally:
        registry.close()


def _final_state(home: Path, run_id: int) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
    registry = Registry(f"sqlite:///{home / 'registry.db'}")
    try:
        detail = registry.get_run(run_id)
        assert detail.status == "completed"
        assert detail.checkpoints[-1].step == STEPS
        assert detail.samples.total == SAMPLES, "samples recorded twice or lost"
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


def _decisions(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The manifest without file paths (the run folders differ): index, class, scores..."""
    return [{k: v for k, v in r.items() if k != "file"} for r in rows]
