"""The thread policy: explicit settings win; "auto" leaves the cores other work keeps busy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_run import threads


def test_a_number_aigc_threads_or_omp_num_threads_decide_before_the_load_does():
    assert threads.choose(3, {"AIGC_THREADS": "1"}) == 3  # train.threads given: it wins
    assert threads.choose("auto", {"AIGC_THREADS": "2", "OMP_NUM_THREADS": "5"}) == 2
    assert threads.choose("auto", {"OMP_NUM_THREADS": "5"}) is None  # torch already has it
    assert 1 <= threads.choose("auto", {}) <= len(threads.cores())


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux only")
def test_auto_counts_a_busy_process_on_its_cores():
    mine = threads.cores()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(spin.pid, {min(mine)})
        threads.busy_cores(mine, 0.3)  # let it start spinning
        assert threads.busy_cores(mine, 0.5) >= 0.8
    finally:
        spin.kill()
        spin.wait()


def test_an_unreadable_or_still_stat_file_counts_nothing_busy(tmp_path: Path):
    assert threads.busy_cores({0}, 0.01, tmp_path / "missing") == 0.0
    still = tmp_path / "stat"
    still.write_text("cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 10 0 10 100 0 0 0 0 0 0\n")
    assert threads.busy_cores({0}, 0.01, still) == 0.0
