"""Schema migrations on SQLite and PostgreSQL: from empty, from every earlier revision, and
from a database made before migrations existed; a newer schema and a locked file are refused
with a clear message."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from aigc_run.contract.errors import RegistryError
from aigc_run.registry import Registry, migrations
from aigc_run.registry.schema import Base, RejectionRow

REVISIONS = [s.revision for s in reversed(list(migrations.scripts().walk_revisions()))]
HEAD = REVISIONS[-1]


@pytest.fixture
def engine(url: str) -> Iterator[sa.Engine]:
    """The same database, reached directly (as an older aigc-run would have made it)."""
    database = sa.make_url(url).database
    if url.startswith("sqlite") and database:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return migrations.current_revision(conn)


def _insert_first_schema_rows(engine: sa.Engine) -> int:
    """A run with a child row in every table, written with the columns of revision 0001."""
    now = datetime(2026, 1, 2, 3, 4, 5)
    with engine.begin() as conn:
        run_id = conn.execute(
            sa.text(
                "INSERT INTO aigc_runs (scenario, config, plugins, device, status, output_dir,"
                " hostname, pid, started_at, ended_at) VALUES ('ecommerce', '{\"train\": {}}',"
                " '{}', 'cpu', 'completed', '/tmp/old', 'host', 1, :now, :now) RETURNING id"
            ),
            {"now": now},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO aigc_metric_points (run_id, step, name, value)"
                " VALUES (:r, 1, 'loss_g', 2.5)"
            ),
            {"r": run_id},
        )
        ckpt = conn.execute(
            sa.text(
                "INSERT INTO aigc_checkpoints (run_id, step, path, sha256, created_at)"
                " VALUES (:r, 1, '/tmp/old/c', 'ab', :now) RETURNING id"
            ),
            {"r": run_id, "now": now},
        ).scalar_one()
        conn.execute(
            sa.text(
                'INSERT INTO aigc_samples (run_id, checkpoint_id, file, label, seed, "index",'
                " scores, accepted, reason) VALUES (:r, :c, 'samples/a.png', 'shoe', 7, 0,"
                " '{\"sharp\": 0.5}', :yes, NULL)"
            ),
            {"r": run_id, "c": ckpt, "yes": True},
        )
        conn.execute(  # a rejected sample, its reason as the sampler wrote it before 0003
            sa.text(
                'INSERT INTO aigc_samples (run_id, checkpoint_id, file, label, seed, "index",'
                " scores, accepted, reason) VALUES (:r, :c, 'rejected/b.png', 'shoe', 7, 1,"
                " '{\"sharp\": 0.1}', :no, 'sharp 0.1 < 0.5; margin 0.25 > 0.2')"
            ),
            {"r": run_id, "c": ckpt, "no": False},
        )
        conn.execute(
            sa.text(
                "INSERT INTO aigc_evaluations (run_id, checkpoint_id, metric, value, created_at)"
                " VALUES (:r, :c, 'fid', 12.5, :now)"
            ),
            {"r": run_id, "c": ckpt, "now": now},
        )
    return run_id


def _assert_rows_kept(reg: Registry, run_id: int, since: str = "0001") -> None:
    """The rows ``_insert_first_schema_rows`` wrote at revision ``since`` are all there."""
    detail = reg.get_run(run_id)
    assert (detail.scenario, detail.status) == ("ecommerce", "completed")
    assert detail.output_dir == "/tmp/old"
    assert detail.config == {"train": {}}
    assert detail.started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert detail.metrics == {"loss_g": 2.5}
    assert [c.step for c in detail.checkpoints] == [1]
    assert (detail.samples.total, detail.samples.accepted) == (2, 1)
    assert detail.evaluations == {"fid": 12.5}
    assert (detail.dataset, detail.parent) == (None, None)  # not known before 0004
    with reg.engine.connect() as conn:
        rows = conn.execute(
            sa.select(RejectionRow.filter, RejectionRow.score, RejectionRow.threshold)
            .order_by(RejectionRow.filter)
        ).all()
    if since >= "0003":  # the sampler writes rejection rows itself from 0003 on
        assert detail.samples.rejected_by_filter == {"unspecified": 1}
        return
    # a rejection recorded as text before 0003 is a row per filter after it
    assert detail.samples.rejected_by_filter == {"margin": 1, "sharp": 1}
    assert [tuple(r) for r in rows] == [("margin", 0.25, 0.2), ("sharp", 0.1, 0.5)]


def test_migrations_build_exactly_what_the_models_describe(url: str, engine: sa.Engine) -> None:
    Registry(url).close()
    assert _revision(engine) == HEAD
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        # autogenerate does not compare check constraints: their names must match too, as a
        # database made by create_all before migrations existed has the models' names
        checks = {c["name"] for c in sa.inspect(conn).get_check_constraints("aigc_runs")}
    expected = {
        c.name
        for c in Base.metadata.tables["aigc_runs"].constraints
        if isinstance(c, sa.CheckConstraint)
    }
    assert checks == expected == {"ck_aigc_runs_status"}


@pytest.mark.parametrize("start", REVISIONS[:-1])
def test_every_earlier_revision_upgrades_to_head_and_keeps_its_rows(
    url: str, engine: sa.Engine, start: str
) -> None:
    migrations.upgrade(engine, start)
    assert _revision(engine) == start
    run_id = _insert_first_schema_rows(engine)

    reg = Registry(url)
    try:
        assert _revision(engine) == HEAD
        _assert_rows_kept(reg, run_id, start)
        # What the later revisions brought works on the upgraded database.
        reg.set_dataset(run_id, {"images": 3, "channels": 1, "image_size": 32, "classes": []})
        assert reg.get_run(run_id).dataset == {
            "images": 3,
            "channels": 1,
            "image_size": 32,
            "classes": [],
        }
        assert reg.start_deleting(run_id).status == "deleting"
        assert [r.id for r in reg.list_runs(scenario="ecommerce")] == [run_id]
    finally:
        reg.close()
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # still checked
        conn.execute(sa.text("UPDATE aigc_runs SET status = 'bogus'"))


def test_database_made_before_migrations_is_adopted(url: str, engine: sa.Engine) -> None:
    migrations.upgrade(engine, migrations.FIRST)
    run_id = _insert_first_schema_rows(engine)
    with engine.begin() as conn:  # what create_all left behind: tables, no alembic_version
        conn.execute(sa.text("DROP TABLE alembic_version"))
    assert _revision(engine) is None

    reg = Registry(url)
    try:
        assert _revision(engine) == HEAD
        _assert_rows_kept(reg, run_id)
    finally:
        reg.close()


def test_newer_schema_is_refused_and_left_alone(url: str, engine: sa.Engine) -> None:
    Registry(url).close()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RegistryError, match="created by a newer aigc-run") as info:
        Registry(url)
    assert "9999" in info.value.message
    assert "upgrade aigc-run" in info.value.hint
    assert _revision(engine) == "9999"


def test_locked_sqlite_database_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute("BEGIN IMMEDIATE")  # another process's long write: holds the write lock
    with pytest.raises(RegistryError, match=r"cannot open the run registry.*locked") as info:
        Registry(f"sqlite:///{path}", busy_timeout_s=0.2)
    assert "try again" in info.value.hint
    holder.execute("ROLLBACK")

    reg = Registry(f"sqlite:///{path}", busy_timeout_s=0.2)  # a new database, migrated
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(RegistryError, match="failed: database is locked"):
            reg.create_run("x", {}, {}, "cpu", "/o")
        holder.execute("ROLLBACK")
        assert reg.create_run("x", {}, {}, "cpu", "/o") == 1  # the lock is gone: it works
    finally:
        reg.close()
        holder.close()
