"""The run registry, on SQLite and on PostgreSQL, through its public API only.

The ``url`` fixture (tests/conftest.py) gives each test a fresh SQLite file and then a fresh
PostgreSQL database.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aigc_run.contract.errors import RegistryError
from aigc_run.registry import Registry

CONFIG = {"train": {"steps": 10, "lr": 2e-4}, "model": {"family": "gan"}}
PLUGINS = {"aigc-ecommerce": "0.1.0"}


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

    def sample(i: int, accepted: bool, failed: list[str]) -> dict[str, Any]:
        return {
            "file": f"{i:04d}.png",
            "label": "shoe",
            "seed": 2**40 + i,
            "index": i,
            "scores": {"white-background": 0.9, "sharpness": 0.1 * i, "broken": math.nan},
            "accepted": accepted,
            "rejections": [(name, 0.1 * i, 0.5) for name in failed],
            "reason": "; ".join(failed),
            "checkpoint_id": ckpt,
        }

    rows = [sample(0, True, []), sample(1, True, []), sample(2, False, ["sharpness"])]
    rows += [sample(3, False, ["sharpness", "white-background"])]
    rows += [sample(4, False, ["white-background"])]
    rows.append({k: v for k, v in sample(5, False, []).items() if k != "rejections"})
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
    # counted per filter, from the rejections recorded as rows (a sample two filters
    # rejected counts for both); a rejected sample that names no filter is "unspecified"
    assert detail.samples.rejected_by_filter == {
        "sharpness": 2,
        "white-background": 2,
        "unspecified": 1,
    }
    assert detail.evaluations == {"fid": 42.5}

    with pytest.raises(ValueError, match=r"lacks \['seed'\]"):
        registry.add_samples(run, [{k: v for k, v in sample(6, True, []).items() if k != "seed"}])


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
_WORKER = """
from aigc_run.registry import Registry

start.wait()  # all four open the (new, empty) database and begin writing at once
reg = Registry(url)
run_id = reg.create_run(f"worker{worker}", {}, {}, "cpu", "/o")
for step in range(50):
    reg.add_metrics(run_id, step, {"loss": float(step), "step": float(step)})
reg.add_samples(run_id, [
    {"file": f"{i}.png", "label": "a", "seed": 0, "index": i, "scores": {}, "accepted": True}
    for i in range(20)
])
reg.finish_run(run_id, "completed")
reg.close()
"""


def test_concurrent_writers_lose_nothing(url: str) -> None:
    # Four processes migrate a new database and write at once: a trainer and samplers
    # sharing one SQLite file, or machines sharing one PostgreSQL server.
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(4)
    procs = [
        ctx.Process(target=exec, args=(_WORKER, {"url": url, "worker": i, "start": start}))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]

    reg = Registry(url)
    try:
        runs = reg.list_runs()
        assert sorted(r.scenario for r in runs) == [f"worker{i}" for i in range(4)]
        for r in runs:
            detail = reg.get_run(r.id)
            assert detail.status == "completed"
            assert detail.metric_points == 100
            assert detail.metrics == {"loss": 49.0, "step": 49.0}
            assert detail.samples.total == 20
    finally:
        reg.close()


def test_series_samples_history_and_deletion(registry: Registry) -> None:
    run = _new_run(registry)
    other = _new_run(registry)
    registry.add_metrics(run, 20, {"loss_g": 1.0})
    registry.add_metrics(run, 10, {"loss_g": 2.0, "loss_d": float("nan")})
    registry.add_metrics(other, 10, {"loss_g": 9.0})
    ckpt = registry.add_checkpoint(run, 20, "/tmp/out/step-20.safetensors", "ab" * 32)
    registry.add_evaluation(run, "fid", 80.0, checkpoint_id=ckpt)
    registry.add_evaluation(run, "fid:floor", 3.0)
    rows = [
        {"file": f"samples/a/{i}.png", "label": "a", "seed": 1, "index": i,
         "scores": {"sharp": i / 10}, "accepted": i % 2 == 0,
         "reason": None if i % 2 == 0 else "sharp too low"}
        for i in (3, 0, 2, 1)
    ]  # fmt: skip
    registry.add_samples(run, rows)

    series = registry.metric_series(run)
    assert series["loss_g"] == [(10, 2.0), (20, 1.0)]  # by step, this run only
    assert math.isnan(series["loss_d"][0][1])
    history = registry.evaluation_history(run)
    assert [(e.metric, e.value, e.step) for e in history] == [
        ("fid", 80.0, 20),
        ("fid:floor", 3.0, None),
    ]
    assert [s.index for s in registry.samples(run)] == [0, 1, 2, 3]
    rejected = registry.samples(run, accepted=False, limit=1)
    assert [(s.index, s.reason, s.scores) for s in rejected] == [
        (1, "sharp too low", {"sharp": 0.1})
    ]

    with pytest.raises(RegistryError, match="is running"):
        registry.start_deleting(run)
    registry.finish_run(run, "completed")
    with pytest.raises(ValueError, match="call start_deleting first"):
        registry.delete_rows(run)
    assert registry.start_deleting(run).status == "deleting"
    assert [r.id for r in registry.list_runs(status="deleting")] == [run]
    registry.delete_rows(run)
    with pytest.raises(RegistryError, match=f"no run with id {run}"):
        registry.metric_series(run)
    assert registry.metric_series(other) == {"loss_g": [(10, 9.0)]}  # the other run untouched
    with registry.engine.connect() as conn:
        for table in ("aigc_metric_points", "aigc_samples", "aigc_evaluations", "aigc_checkpoints"):
            left = conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE run_id = {run}"))
            assert left.scalar() == 0


def test_list_runs_since(registry: Registry) -> None:
    first = _new_run(registry)
    with registry.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE aigc_runs SET started_at = :t WHERE id = :i"),
            {"t": datetime(2020, 1, 1), "i": first},
        )
    second = _new_run(registry)
    assert [r.id for r in registry.list_runs(since=datetime(2021, 1, 1, tzinfo=UTC))] == [second]
    assert [r.id for r in registry.list_runs(since=datetime(2019, 1, 1, tzinfo=UTC))] == [
        second,
        first,
    ]


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
