"""The run registry: every run, its metrics, checkpoints, samples and evaluations.

A SQLite file by default, PostgreSQL for teams and multi-node runs (rank 0 writes). The
tables are SQLAlchemy 2.x typed declarative models prefixed ``aigc_``; ``Registry`` is the
only way the engine touches them. Each method opens one short session and closes it, and
reads return frozen dataclasses rather than ORM objects, so nothing outlives its session.

Create one ``Registry`` per process: an engine must not cross a ``fork``.

Opening a database upgrades it to the newest schema through the Alembic migrations in
``migrations/`` (the naming convention below gives constraints the stable names
they refer to); a database made by a newer aigc-run is refused with a clear message.
"""

from __future__ import annotations

import math
import os
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from aigc_run import faults, interrupts
from aigc_run.contract.errors import RegistryError
from aigc_run.registry.records import (
    CheckpointInfo,
    EvaluationPoint,
    RunDetail,
    RunSummary,
    SampleCounts,
    SampleInfo,
)
from aigc_run.registry.schema import (
    FINAL_STATUSES,
    CheckpointRow,
    EvaluationRow,
    MetricPointRow,
    RejectionRow,
    RunRow,
    SampleRow,
    now,
)

_HINT_OPEN = (
    "check AIGC_DATABASE_URL (unset means a SQLite file) and that the database server is "
    "running and reachable"
)
_HINT_NO_RUN = "list runs with `aigc-run runs`"
SQLITE_BUSY_TIMEOUT_S = 30.0  # a writer waits this long for another process's write
_PG_CONNECT_TIMEOUT_S = 10  # fail fast on an unreachable host instead of the TCP default


def _hint(reason: str) -> str:
    if "locked" in reason:  # SQLite: another process held the write lock past the timeout
        return (
            "another process kept the database locked longer than the busy timeout; "
            "try again when it is done"
        )
    return _HINT_OPEN


def _summary_fields(run: RunRow) -> dict[str, Any]:
    if run.ended_at is not None:
        duration: float | None = (run.ended_at - run.started_at).total_seconds()
    elif run.status == "running":
        duration = (now() - run.started_at).total_seconds()
    else:
        duration = None
    return {
        "id": run.id,
        "scenario": run.scenario,
        "status": run.status,
        "device": run.device,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": duration,
    }


def _to_db(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _from_db(value: float | None) -> float:
    return math.nan if value is None else value


# ---------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` on this machine still exists (a zombie counts as alive)."""
    if sys.platform == "win32":
        # os.kill(pid, 0) terminates the process on Windows; never reap there for now.
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _sqlite_setup(busy_timeout_s: float) -> Callable[[Any, Any], None]:
    def configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a write lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL is still safe from corruption and keeps every commit through
            # a crash or kill of the process; only a power cut may lose the last ones. FULL
            # made each logged step wait ~100 ms for the disk on a busy machine.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return configure


class Registry:
    """The run registry at a database URL (``sqlite:///path`` or ``postgresql+psycopg://``)."""

    def __init__(self, url: str, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        try:
            parsed = sa.make_url(url)
        except sa_exc.ArgumentError as e:
            raise RegistryError(f"invalid database URL: {e}", _HINT_OPEN) from None
        self.url = parsed.render_as_string(hide_password=True)
        self._password = parsed.password
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
        try:
            self.engine = sa.create_engine(parsed, connect_args=connect_args, pool_pre_ping=True)
        except (sa_exc.ArgumentError, ImportError) as e:  # unknown dialect or missing driver
            raise RegistryError(
                f"cannot open the run registry at {self.url}: {self._scrub(e)}",
                "install the database driver (pip install 'aigc-run[postgres]' for PostgreSQL)"
                " or fix AIGC_DATABASE_URL",
            ) from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_setup(busy_timeout_s))
        self._upgrade()
        self._writes = 0  # statements that changed rows: a session that wrote is a write
        if faults.armed("registry-write"):  # only a fault test pays for counting them
            sa.event.listen(self.engine, "before_cursor_execute", self._count_write)

    def _upgrade(self) -> None:
        from aigc_run.registry import migrations

        try:
            migrations.upgrade(self.engine)
        except migrations.NewerSchemaError as e:
            self.engine.dispose()
            raise RegistryError(
                f"the run registry at {self.url} was created by a newer aigc-run "
                f"(schema revision {e.revision})",
                "upgrade aigc-run (pip install -U aigc-run), or point AIGC_DATABASE_URL at "
                "another database",
            ) from None
        except sa_exc.DBAPIError as e:
            self.engine.dispose()
            reason = self._reason(e)
            raise RegistryError(
                f"cannot open the run registry at {self.url}: {reason}", _hint(reason)
            ) from e

    def close(self) -> None:
        self.engine.dispose()

    # -- writes --------------------------------------------------------------------------

    def create_run(
        self,
        scenario: str,
        config: dict[str, Any],
        plugins: dict[str, str],
        device: str,
        output_dir: str,
        parent: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a new run of this process, status ``running``; returns its id. ``parent``:
        the trained model it starts from (see ``RunDetail.parent``)."""
        run = RunRow(
            scenario=scenario,
            config=config,
            plugins=plugins,
            device=device,
            status="running",
            output_dir=output_dir,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=now(),
            parent=dict(parent) if parent is not None else None,
        )
        with self._session() as s:
            s.add(run)
            s.flush()
            return run.id

    def set_dataset(self, run_id: int, dataset: Mapping[str, Any]) -> None:
        """Record what the run's data is (``RunDetail.dataset``), once it is loaded."""
        with self._session() as s:
            self._get(s, run_id).dataset = dict(dataset)

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        """Set the final status (``completed``, ``failed`` or ``interrupted``) and end time."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"cannot finish a run as {status!r}; use one of {FINAL_STATUSES}")
        with self._session() as s:
            run = self._get(s, run_id)
            run.status, run.error, run.ended_at = status, error, now()

    def reap_dead_runs(self) -> list[int]:
        """Mark ``interrupted`` every run still ``running`` whose process on this host died.

        Called at every start, so a killed run is never left ``running`` for ever. Its
        ``ended_at`` stays None: when it died is unknown. A pid reused by a new process
        keeps the run ``running`` until that process ends too. Returns the ids marked.
        """
        host = socket.gethostname()
        with self._session() as s:
            running = s.execute(
                sa.select(RunRow.id, RunRow.pid).where(
                    RunRow.status == "running", RunRow.hostname == host
                )
            ).all()
            dead = [(run_id, pid) for run_id, pid in running if not _pid_alive(pid)]
            stamp = now().isoformat(timespec="seconds")
            for run_id, pid in dead:
                s.execute(
                    sa.update(RunRow)
                    .where(RunRow.id == run_id, RunRow.status == "running")
                    .values(
                        status="interrupted",
                        error=f"the process ({pid} on {host}) died without finishing the run;"
                        f" found at {stamp}",
                    )
                )
        return sorted(run_id for run_id, _ in dead)

    def add_metrics(self, run_id: int, step: int, values: Mapping[str, float]) -> None:
        """Record one value per metric name at ``step`` (NaN is kept as NaN)."""
        if not values:
            return
        rows = [
            {"run_id": run_id, "step": step, "name": name, "value": _to_db(value)}
            for name, value in values.items()
        ]
        with self._session() as s:
            s.execute(sa.insert(MetricPointRow), rows)

    def add_checkpoint(self, run_id: int, step: int, path: str, sha256: str) -> int:
        """Record a written checkpoint; returns its id, for samples and evaluations."""
        checkpoint = CheckpointRow(run_id=run_id, step=step, path=str(path), sha256=sha256)
        with self._session() as s:
            s.add(checkpoint)
            s.flush()
            return checkpoint.id

    _SAMPLE_REQUIRED = frozenset({"file", "label", "seed", "index", "scores", "accepted"})
    _SAMPLE_KEYS = _SAMPLE_REQUIRED | {"reason", "checkpoint_id", "rejections"}

    def add_samples(self, run_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record a batch of samples in one insert.

        Each row has ``file``, ``label``, ``seed``, ``index``, ``scores`` ({filter: score}),
        ``accepted``, and optionally ``rejections`` ((filter, score, threshold) for each
        filter that rejected it), ``reason`` (the same, for people) and ``checkpoint_id``.
        """
        if not rows:
            return
        values = []
        for i, row in enumerate(rows):
            if missing := self._SAMPLE_REQUIRED - row.keys():
                raise ValueError(f"sample row {i} lacks {sorted(missing)}")
            if unknown := row.keys() - self._SAMPLE_KEYS:
                raise ValueError(f"sample row {i} has unknown keys {sorted(unknown)}")
            values.append(
                {
                    "reason": None,
                    "checkpoint_id": None,
                    **{k: v for k, v in row.items() if k != "rejections"},
                    "run_id": run_id,
                    "accepted": bool(row["accepted"]),
                    # PostgreSQL's JSON has no NaN: a filter that scored NaN is stored as null.
                    "scores": {name: _to_db(v) for name, v in row["scores"].items()},
                }
            )
        rejections = [row.get("rejections") or () for row in rows]
        with self._session() as s:
            if not any(rejections):
                s.execute(sa.insert(SampleRow), values)
                return
            insert = sa.insert(SampleRow).returning(SampleRow.id, sort_by_parameter_order=True)
            ids = s.scalars(insert, values).all()
            s.execute(
                sa.insert(RejectionRow),
                [
                    {
                        "run_id": run_id,
                        "sample_id": sample_id,
                        "filter": name,
                        "score": _to_db(score),
                        "threshold": threshold,
                    }
                    for sample_id, failed in zip(ids, rejections, strict=True)
                    for name, score, threshold in failed
                ],
            )

    def add_evaluation(
        self, run_id: int, metric: str, value: float, checkpoint_id: int | None = None
    ) -> None:
        with self._session() as s:
            s.add(
                EvaluationRow(
                    run_id=run_id, checkpoint_id=checkpoint_id, metric=metric, value=_to_db(value)
                )
            )

    # -- reads ---------------------------------------------------------------------------

    def list_runs(
        self,
        limit: int = 50,
        scenario: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
    ) -> list[RunSummary]:
        """The newest ``limit`` runs, newest first, optionally of one scenario or status, or
        started at or after ``since`` (an aware datetime)."""
        query = sa.select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id.desc()).limit(limit)
        if scenario is not None:
            query = query.where(RunRow.scenario == scenario)
        if status is not None:
            query = query.where(RunRow.status == status)
        if since is not None:
            query = query.where(RunRow.started_at >= since)
        with self._session() as s:
            return [RunSummary(**_summary_fields(run)) for run in s.scalars(query)]

    def get_run(self, run_id: int) -> RunDetail:
        """Everything recorded about one run; RegistryError when there is no such run."""
        with self._session() as s:
            run = self._get(s, run_id)
            checkpoints = [
                CheckpointInfo(*row)
                for row in s.execute(
                    sa.select(CheckpointRow.step, CheckpointRow.path, CheckpointRow.sha256)
                    .where(CheckpointRow.run_id == run_id)
                    .order_by(CheckpointRow.step, CheckpointRow.id)
                )
            ]
            m = MetricPointRow
            ranked = (
                sa.select(
                    m.name,
                    m.value,
                    sa.func.row_number()
                    .over(partition_by=m.name, order_by=(m.step.desc(), m.id.desc()))
                    .label("rank"),
                )
                .where(m.run_id == run_id)
                .subquery()
            )
            last = s.execute(sa.select(ranked.c.name, ranked.c.value).where(ranked.c.rank == 1))
            metrics = {name: _from_db(value) for name, value in last}
            points = s.scalar(sa.select(sa.func.count()).where(m.run_id == run_id)) or 0

            samples = self._sample_counts(s, run_id)

            evaluations = {
                metric: _from_db(value)
                for metric, value in s.execute(
                    sa.select(EvaluationRow.metric, EvaluationRow.value)
                    .where(EvaluationRow.run_id == run_id)
                    .order_by(EvaluationRow.created_at, EvaluationRow.id)
                )
            }
            return RunDetail(
                **_summary_fields(run),
                config=run.config,
                plugins=run.plugins,
                error=run.error,
                output_dir=run.output_dir,
                hostname=run.hostname,
                pid=run.pid,
                checkpoints=checkpoints,
                metrics=metrics,
                metric_points=points,
                samples=samples,
                evaluations=evaluations,
                dataset=run.dataset,
                parent=run.parent,
            )

    def metric_series(self, run_id: int) -> dict[str, list[tuple[int, float]]]:
        """Every training metric of a run as (step, value) points by step, keyed by name."""
        series: dict[str, list[tuple[int, float]]] = {}
        with self._session() as s:
            self._get(s, run_id)
            m = MetricPointRow
            for name, step, value in s.execute(
                sa.select(m.name, m.step, m.value)
                .where(m.run_id == run_id)
                .order_by(m.name, m.step, m.id)
            ):
                series.setdefault(name, []).append((step, _from_db(value)))
        return series

    def _sample_counts(self, s: Session, run_id: int) -> SampleCounts:
        counts = dict(
            s.execute(
                sa.select(SampleRow.accepted, sa.func.count())
                .where(SampleRow.run_id == run_id)
                .group_by(SampleRow.accepted)
            ).all()
        )
        r = RejectionRow
        by_filter = dict(
            s.execute(
                sa.select(r.filter, sa.func.count())
                .where(r.run_id == run_id)
                .group_by(r.filter)
                .order_by(sa.func.count().desc(), r.filter)
            ).all()
        )
        named = s.scalar(
            sa.select(sa.func.count(sa.distinct(r.sample_id))).where(r.run_id == run_id)
        )
        rejected = counts.get(False, 0)
        if rejected > (named or 0):
            by_filter["unspecified"] = rejected - (named or 0)
        return SampleCounts(rejected + counts.get(True, 0), counts.get(True, 0), by_filter)

    def checkpoint_id(self, run_id: int, path: str) -> int | None:
        """The id of run ``run_id``'s checkpoint at ``path`` (the newest such record)."""
        query = (
            sa.select(CheckpointRow.id)
            .where(CheckpointRow.run_id == run_id, CheckpointRow.path == path)
            .order_by(CheckpointRow.id.desc())
            .limit(1)
        )
        with self._session() as s:
            found: int | None = s.scalar(query)
        return found

    def evaluation_history(self, run_id: int) -> list[EvaluationPoint]:
        """Every evaluation of a run, oldest first, with the step of its checkpoint."""
        e, c = EvaluationRow, CheckpointRow
        with self._session() as s:
            self._get(s, run_id)
            return [
                EvaluationPoint(metric, _from_db(value), step, created)
                for metric, value, step, created in s.execute(
                    sa.select(e.metric, e.value, c.step, e.created_at)
                    .outerjoin(c, e.checkpoint_id == c.id)
                    .where(e.run_id == run_id)
                    .order_by(e.created_at, e.id)
                )
            ]

    def samples(
        self, run_id: int, accepted: bool | None = None, limit: int | None = None
    ) -> list[SampleInfo]:
        """The samples of a run by index, optionally only accepted (or rejected) ones."""
        r = SampleRow
        query = sa.select(r).where(r.run_id == run_id).order_by(r.index, r.id).limit(limit)
        if accepted is not None:
            query = query.where(r.accepted == accepted)
        with self._session() as s:
            self._get(s, run_id)
            return [
                SampleInfo(
                    row.file,
                    row.label,
                    row.seed,
                    row.index,
                    {name: _from_db(v) for name, v in row.scores.items()},
                    row.accepted,
                    row.reason,
                )
                for row in s.scalars(query)
            ]

    # -- deleting ------------------------------------------------------------------------

    def start_deleting(self, run_id: int) -> RunDetail:
        """Mark a run ``deleting`` before its files go; refused while it is ``running``.

        A run already ``deleting`` (an earlier deletion failed half way) may be deleted again.
        """
        with self._session() as s:
            run = self._get(s, run_id)
            if run.status == "running":
                raise RegistryError(
                    f"run {run_id} is running (process {run.pid} on {run.hostname})",
                    "stop it first (Ctrl-C), or wait until it ends",
                )
            run.status = "deleting"
        return self.get_run(run_id)

    def delete_rows(self, run_id: int) -> None:
        """Remove a run marked ``deleting`` and everything recorded about it."""
        with self._session() as s:
            run = self._get(s, run_id)
            if run.status != "deleting":
                raise ValueError(f"run {run_id} is {run.status}; call start_deleting first")
            # Children first, explicitly: SQLite enforces ON DELETE CASCADE only with its
            # foreign_keys pragma on, and a registry may be opened by an older client.
            for table in (EvaluationRow, RejectionRow, SampleRow, CheckpointRow, MetricPointRow):
                s.execute(sa.delete(table).where(table.run_id == run_id))
            s.delete(run)

    # -- helpers -------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One short transaction; a database failure becomes a RegistryError."""
        try:
            # Ctrl-C waits for the transaction to end: never a lock left held (interrupts.py)
            with interrupts.deferred(), Session(self.engine) as s, s.begin():
                writes = self._writes
                yield s
                s.flush()  # what the commit does first; explicit so the fault point sees it
                if self._writes != writes:
                    faults.point("registry-write")  # rows written, not committed
        except sa_exc.DBAPIError as e:
            reason = self._reason(e)
            raise RegistryError(
                f"the run registry at {self.url} failed: {reason}", _hint(reason)
            ) from e

    def _count_write(self, *args: Any) -> None:
        context = args[4]  # (connection, cursor, statement, parameters, context, executemany)
        if context is not None and (context.isinsert or context.isupdate or context.isdelete):
            self._writes += 1

    @staticmethod
    def _get(s: Session, run_id: int) -> RunRow:
        run = s.get(RunRow, run_id)
        if run is None:
            raise RegistryError(f"no run with id {run_id}", _HINT_NO_RUN)
        return run

    def _reason(self, e: sa_exc.DBAPIError) -> str:
        """The driver's own message, first line only (the rest is SQL and a docs link)."""
        lines = self._scrub(e.orig if e.orig is not None else e).strip().splitlines()
        return lines[0] if lines else type(e).__name__

    def _scrub(self, e: BaseException) -> str:
        text = str(e)
        return text.replace(self._password, "***") if self._password else text

    # -- resuming (added with `aigc-run resume`; uses existing columns only) ---------------

    def reopen_run(self, run_id: int, step: int) -> int:
        """Mark a stopped run ``running`` again, in this process, to resume it from ``step``.

        What the run recorded after its checkpoint at ``step`` is forgotten: metric points
        and checkpoints past it, and its samples and evaluations (the resumed run makes
        them again). Returns that checkpoint's id. RegistryError when the run is running
        or completed, or has no checkpoint at ``step``.
        """
        with self._session() as s:
            self._get(s, run_id)
            checkpoint_id = s.scalar(
                sa.select(CheckpointRow.id)
                .where(CheckpointRow.run_id == run_id, CheckpointRow.step == step)
                .order_by(CheckpointRow.id.desc())
                .limit(1)
            )
            if checkpoint_id is None:
                raise RegistryError(f"run {run_id} has no checkpoint at step {step}", _HINT_NO_RUN)
            # One conditional update: of two processes resuming the same run, one wins.
            reopened = s.execute(
                sa.update(RunRow)
                .where(RunRow.id == run_id, RunRow.status.not_in(("running", "completed")))
                .values(
                    status="running",
                    error=None,
                    ended_at=None,
                    pid=os.getpid(),
                    hostname=socket.gethostname(),
                )
            )
            if reopened.rowcount != 1:  # type: ignore[attr-defined]
                raise RegistryError(
                    f"run {run_id} is running or completed; only a stopped run can be resumed",
                    "see its status with `aigc-run runs show " + str(run_id) + "`",
                )
            s.execute(
                sa.delete(MetricPointRow).where(
                    MetricPointRow.run_id == run_id, MetricPointRow.step > step
                )
            )
            s.execute(sa.delete(SampleRow).where(SampleRow.run_id == run_id))
            s.execute(sa.delete(EvaluationRow).where(EvaluationRow.run_id == run_id))
            s.execute(
                sa.delete(CheckpointRow).where(
                    CheckpointRow.run_id == run_id, CheckpointRow.step > step
                )
            )
            return checkpoint_id
