"""The registry's tables: SQLAlchemy 2.x typed declarative models, prefixed ``aigc_``.

The naming convention gives constraints the stable names the Alembic migrations in
``migrations/`` refer to. Change a model here and add a migration beside it;
``tests/test_migrations.py`` fails until the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("running", "completed", "failed", "interrupted", "deleting")
FINAL_STATUSES = ("completed", "failed", "interrupted")


def now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC there and marked UTC again when read. A naive datetime is refused.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the registry stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    # sa.JSON is JSON on PostgreSQL and TEXT holding JSON on SQLite.
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: sa.JSON,
        dict[str, str]: sa.JSON,
        dict[str, float]: sa.JSON,
        datetime: UTCDateTime,
        float: sa.Double,  # pinned: SQLAlchemy 2.0 maps float to Float, 2.1 to Double
    }


def _run_fk() -> Mapped[int]:
    return mapped_column(sa.ForeignKey("aigc_runs.id", ondelete="CASCADE"), index=True)


def _checkpoint_fk() -> Mapped[int | None]:
    return mapped_column(sa.ForeignKey("aigc_checkpoints.id", ondelete="SET NULL"))


class RunRow(Base):
    __tablename__ = "aigc_runs"
    __table_args__ = (
        sa.CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        sa.Index(None, "started_at"),
        sa.Index(None, "scenario", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    scenario: Mapped[str] = mapped_column(sa.String(200))
    config: Mapped[dict[str, Any]]  # the resolved scenario, JSON-serialisable
    plugins: Mapped[dict[str, str]]  # plugin name -> version
    device: Mapped[str] = mapped_column(sa.String(100))
    status: Mapped[str] = mapped_column(sa.String(20))
    error: Mapped[str | None] = mapped_column(sa.Text)
    output_dir: Mapped[str] = mapped_column(sa.Text)
    hostname: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # once the data is loaded: {"images", "channels", "image_size", "classes" (label order)}
    dataset: Mapped[dict[str, Any] | None]
    parent: Mapped[dict[str, Any] | None]  # the trained model it started from (init_from)


class MetricPointRow(Base):
    __tablename__ = "aigc_metric_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = _run_fk()
    step: Mapped[int]
    name: Mapped[str] = mapped_column(sa.String(200))
    value: Mapped[float | None]  # NULL is NaN: SQLite cannot store NaN


class CheckpointRow(Base):
    __tablename__ = "aigc_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = _run_fk()
    step: Mapped[int]
    path: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)


class SampleRow(Base):
    """One generated image: enough to regenerate it from (run, checkpoint, seed, index)."""

    __tablename__ = "aigc_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = _run_fk()
    checkpoint_id: Mapped[int | None] = _checkpoint_fk()
    file: Mapped[str] = mapped_column(sa.Text)
    label: Mapped[str] = mapped_column(sa.String(200))
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    index: Mapped[int]
    scores: Mapped[dict[str, float]]  # quality filter name -> score
    accepted: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(sa.Text)  # why it was rejected, for people


class RejectionRow(Base):
    """One quality filter that rejected one sample: its score and the threshold it missed."""

    __tablename__ = "aigc_rejections"
    __table_args__ = (sa.Index(None, "run_id", "filter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("aigc_runs.id", ondelete="CASCADE"))
    sample_id: Mapped[int] = mapped_column(
        sa.ForeignKey("aigc_samples.id", ondelete="CASCADE"), index=True
    )
    filter: Mapped[str] = mapped_column(sa.String(200))
    score: Mapped[float | None]  # None: the filter scored NaN
    threshold: Mapped[float | None]  # None: not known (a sample recorded before 0003)


class EvaluationRow(Base):
    __tablename__ = "aigc_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = _run_fk()
    checkpoint_id: Mapped[int | None] = _checkpoint_fk()
    metric: Mapped[str] = mapped_column(sa.String(200))
    value: Mapped[float | None]  # NULL is NaN, as for metric points
    created_at: Mapped[datetime] = mapped_column(default=now)
