"""Rules for every test path (tests/, plugins/*/tests/): one thread per test process under
pytest-xdist, training on the CPU (AIGC_TRAIN__DEVICE=cpu), and the ``realdata`` marker.

Under ``pytest -n N`` (pytest-xdist) each worker process, and every process a test starts,
runs torch on one thread: N workers each with a pool of all the cores would fight over
them (see docs/benchmarks.md on a busy CPU).

A test that reads the shared real data names the files it needs, relative to the data
folder: ``@pytest.mark.realdata("pneumoniamnist/pneumoniamnist.npz")``. The folder is
$AIGC_TEST_DATA, else ../shared/data beside the repository (where CI has it). When one of
the files is missing the test is skipped, saying which; under CI (the CI environment
variable set) it fails instead, so a CI machine without the data cannot pass unnoticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # before torch is imported: it reads these once
        os.environ["OMP_NUM_THREADS"] = "1"
        os.environ["MKL_NUM_THREADS"] = "1"
    # Runs train on the CPU here, on a GPU machine too (train.device = "auto" would pick
    # CUDA): the tests assert CPU exactness. A test of the GPU path says --set
    # train.device=cuda, which beats this, and carries @pytest.mark.cuda.
    os.environ[CPU_ONLY] = "cpu"


CPU_ONLY = "AIGC_TRAIN__DEVICE"


def real_data_folder() -> Path:
    """$AIGC_TEST_DATA, else <repo>/../shared/data: the folder the tests read real data from."""
    return Path(os.environ.get("AIGC_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures, which may open the files
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("realdata"):
        if not marker.args:
            pytest.fail("@pytest.mark.realdata needs the paths the test reads", pytrace=False)
        for relative in marker.args:
            path = real_data_folder() / relative
            if path.exists():
                continue
            if os.environ.get("CI"):  # as tests/conftest.py treats an unreachable PostgreSQL
                pytest.fail(
                    f"real data missing under CI: {path} does not exist; CI must provide "
                    "../shared/data beside the repository, or set AIGC_TEST_DATA",
                    pytrace=False,
                )
            pytest.skip(f"real data absent: {path} (set AIGC_TEST_DATA to the folder holding it)")
