"""The run registry, on SQLite and on PostgreSQL, through its public API only.

PostgreSQL comes from AIGC_TEST_POSTGRES_URL (default: a local server with trust auth). When
it is unreachable those tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aigc_run.errors import RegistryError
from aigc_run.registry import Base, Registry

POSTGRES_URL = os.environ.get(
    "AIGC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CONFIG = {"train": {"steps": 10, "lr": 2e-4}, "model": {"family": "gan"}}
PLUGINS = {"aigc-ecommerce": "0.1.0"}


def _postgres_url() -> str:
    """POSTGRES_URL with the aigc_ tables dropped, or a skip (a failure under CI)."""
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        Base.metadata.drop_all(engine)  # tests run serially: each starts from empty tables
    except sa.exc.OperationalError as e:
        reason = f"PostgreSQL unreachable at {sa.make_url(POSTGRES_URL)!r}: {e.orig}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(f"{reason}; set AIGC_TEST_POSTGRES_URL to test PostgreSQL")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'folder' / 'runs.db'}"
    return _postgres_url()


@pytest.fixture
def registry(url: str) -> Iterator[Registry]:
    reg = Registry(url)
    yield reg
    reg.close()


def _new_run(reg: Registry, scenario: str = "ecommerce") -> int:
    return reg.create_run(scenario, CONFIG, PLUGINS, "cpu", "/tmp/out")


def test_create_finish_list_get(registry: Registry) -> None:
    first = _new_run(registry, "ecommerce")
    second = _new_run(registry, "medical")
    registry.finish_run(first, "failed", error="CUDA out of memory")

    runs = registry.list_runs()
    assert [r.id for r in runs] == [second, first]  # newest first
    assert [r.id for r in registry.list_runs(scenario="ecommerce")] == [first]
    assert [r.id for r in registry.list_runs(status="running")] == [second]
    assert len(registry.list_runs(limit=1)) == 1

    detail = registry.get_run(first)
    assert (detail.scenario, detail.status, detail.device) == ("ecommerce", "failed", "cpu")
    assert detail.config == CONFIG
    assert detail.plugins == PLUGINS
    assert detail.error == "CUDA out of memory"
    assert detail.output_dir == "/tmp/out"
    assert detail.pid == os.getpid()
    assert detail.started_at.utcoffset() == timedelta(0)
    assert detail.ended_at is not None and detail.ended_at.utcoffset() == timedelta(0)
    assert detail.duration_s is not None and detail.duration_s >= 0

    running = registry.get_run(second)
    assert running.ended_at is None and running.error is None
    with pytest.raises(ValueError, match="cannot finish a run as 'running'"):
        registry.finish_run(second, "running")


def test_metrics_checkpoints_samples_evaluations(registry: Registry) -> None:
    run = _new_run(registry)
    registry.add_metrics(run, 10, {"loss_g": 2.0, "loss_d": 0.5})
    registry.add_metrics(run, 20, {"loss_g": 1.5, "loss_d": float("nan")})
    ckpt = registry.add_checkpoint(run, 20, "/tmp/out/step-20.safetensors", "ab" * 32)
    registry.add_checkpoint(run, 10, "/tmp/out/step-10.safetensors", "cd" * 32)

    def sample(i: int, accepted: bool, reason: str | None) -> dict[str, Any]:
        return {
            "file": f"{i:04d}.png",
            "label": "shoe",
            "seed": 2**40 + i,
            "index": i,
            "scores": {"white-background": 0.9, "sharpness": 0.1 * i, "broken": math.nan},
            "accepted": accepted,
            "reason": reason,
            "checkpoint_id": ckpt,
        }

    rows = [sample(0, True, None), sample(1, True, None), sample(2, False, "blurry")]
    rows += [sample(3, False, "blurry"), sample(4, False, "not on white")]
    rows.append({k: v for k, v in sample(5, False, None).items() if k != "reason"})
    registry.add_samples(run, rows)
    registry.add_evaluation(run, "fid", 80.0, checkpoint_id=ckpt)
    registry.add_evaluation(run, "fid", 42.5)  # a re-evaluation: the latest value wins

    detail = registry.get_run(run)
    assert detail.metric_points == 4
    assert detail.metrics["loss_g"] == 1.5
    assert math.isnan(detail.metrics["loss_d"])  # SQLite stores NaN as NULL; read back NaN
    assert [c.step for c in detail.checkpoints] == [10, 20]
    assert detail.checkpoints[1] == (20, "/tmp/out/step-20.safetensors", "ab" * 32)
    assert detail.samples.total == 6
    assert detail.samples.accepted == 2
    assert detail.samples.rejected_by_reason == {"blurry": 2, "not on white": 1, "unspecified": 1}
    assert detail.evaluations == {"fid": 42.5}

    with pytest.raises(ValueError, match=r"lacks \['seed'\]"):
        registry.add_samples(run, [{k: v for k, v in sample(6, True, None).items() if k != "seed"}])


def test_reap_dead_runs_marks_only_dead_processes(registry: Registry, url: str) -> None:
    # A run created by a process that then exits: its pid is dead (and reaped by wait).
    code = (
        "from aigc_run.registry import Registry; import sys; "
        "r = Registry(sys.argv[1]); print(r.create_run('x', {}, {}, 'cpu', '/o')); r.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, url], capture_output=True, text=True, check=True
    )
    dead = int(done.stdout)
    alive = _new_run(registry)
    finished = _new_run(registry)
    registry.finish_run(finished, "completed")

    assert registry.reap_dead_runs() == [dead]
    assert registry.reap_dead_runs() == []  # idempotent

    reaped = registry.get_run(dead)
    assert reaped.status == "interrupted"
    assert reaped.error is not None and "died" in reaped.error
    assert registry.get_run(alive).status == "running"
    assert registry.get_run(finished).status == "completed"


def test_get_missing_run_raises(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="no run with id 999") as info:
        registry.get_run(999)
    assert "aigc-run runs" in info.value.hint
    with pytest.raises(RegistryError, match="no run with id 999"):
        registry.finish_run(999, "completed")


def test_unreachable_postgres_hides_password() -> None:
    secret = "s3cret-Pa55"
    with pytest.raises(RegistryError) as info:
        Registry(f"postgresql+psycopg://aigc:{secret}@127.0.0.1:1/aigc")
    shown = "".join(traceback.format_exception(info.value))  # what --debug would print
    assert secret not in shown
    assert "aigc:***@127.0.0.1:1" in info.value.message
    assert info.value.hint


def test_sqlite_file_is_wal_in_a_created_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "runs.db"
    reg = Registry(f"sqlite:///{path}")
    try:
        assert path.exists()
        with reg.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        reg.close()


# A spawned child cannot import this module (pytest imports it with --import-mode=importlib,
# from outside sys.path), so the worker is source text that the child runs with builtin exec.
_METRICS_WORKER = """
from aigc_run.registry import Registry

start.wait()  # all four begin writing at once
reg = Registry(url)
for step in range(50):
    reg.add_metrics(run_id, step, {f"worker{worker}": float(step)})
reg.close()
"""


def test_concurrent_sqlite_writers_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    reg = Registry(url)
    run = _new_run(reg)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    procs = [
        ctx.Process(
            target=exec,
            args=(_METRICS_WORKER, {"url": url, "run_id": run, "worker": i, "start": start}),
        )
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    detail = reg.get_run(run)
    assert detail.metric_points == 200
    assert detail.metrics == {f"worker{i}": 49.0 for i in range(4)}
    reg.close()


def test_reopen_run_forgets_what_came_after_the_checkpoint(registry: Registry):
    run_id = registry.create_run("ecommerce", CONFIG, PLUGINS, "cpu", "/tmp/out")
    kept = registry.add_checkpoint(run_id, 5, "/tmp/out/step-5.safetensors", "a" * 64)
    later = registry.add_checkpoint(run_id, 10, "/tmp/out/step-10.safetensors", "b" * 64)
    for step in (4, 5, 6, 10):
        registry.add_metrics(run_id, step, {"loss": float(step)})
    registry.add_samples(
        run_id,
        [{"file": "a.png", "label": "x", "seed": 1, "index": 0, "scores": {}, "accepted": True}],
    )
    registry.add_evaluation(run_id, "acceptance-rate", 1.0, later)
    with pytest.raises(RegistryError, match="running or completed"):
        registry.reopen_run(run_id, 5)  # still running: refused
    registry.finish_run(run_id, "interrupted", "killed")

    assert registry.reopen_run(run_id, 5) == kept
    detail = registry.get_run(run_id)
    assert detail.status == "running" and detail.error is None and detail.ended_at is None
    assert [c.step for c in detail.checkpoints] == [5]
    assert detail.metric_points == 2 and detail.metrics == {"loss": 5.0}
    assert detail.samples.total == 0 and not detail.evaluations
    with pytest.raises(RegistryError, match="running or completed"):
        registry.reopen_run(run_id, 5)  # a second resumer loses
    registry.finish_run(run_id, "failed")
    with pytest.raises(RegistryError, match="no checkpoint at step 7"):
        registry.reopen_run(run_id, 7)
