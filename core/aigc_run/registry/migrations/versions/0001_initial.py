"""The first schema: runs, metric points, checkpoints, samples, evaluations.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _run_id(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["aigc_runs.id"], name=f"fk_{table}_run_id_aigc_runs", ondelete="CASCADE"
        ),
    ]


def _checkpoint_id(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("checkpoint_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["aigc_checkpoints.id"],
            name=f"fk_{table}_checkpoint_id_aigc_checkpoints",
            ondelete="SET NULL",
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "aigc_runs",
        _id(),
        sa.Column("scenario", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("plugins", sa.JSON(), nullable=False),
        sa.Column("device", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output_dir", sa.Text(), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_aigc_runs"),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'failed', 'interrupted')",
            name=op.f("ck_aigc_runs_status"),  # op.f: final, no second prefix
        ),
    )
    op.create_index("ix_aigc_runs_started_at", "aigc_runs", ["started_at"])

    op.create_table(
        "aigc_metric_points",
        _id(),
        *_run_id("aigc_metric_points"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_aigc_metric_points"),
    )
    op.create_index("ix_aigc_metric_points_run_id", "aigc_metric_points", ["run_id"])

    op.create_table(
        "aigc_checkpoints",
        _id(),
        *_run_id("aigc_checkpoints"),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_aigc_checkpoints"),
    )
    op.create_index("ix_aigc_checkpoints_run_id", "aigc_checkpoints", ["run_id"])

    op.create_table(
        "aigc_samples",
        _id(),
        *_run_id("aigc_samples"),
        *_checkpoint_id("aigc_samples"),
        sa.Column("file", sa.Text(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_aigc_samples"),
    )
    op.create_index("ix_aigc_samples_run_id", "aigc_samples", ["run_id"])

    op.create_table(
        "aigc_evaluations",
        _id(),
        *_run_id("aigc_evaluations"),
        *_checkpoint_id("aigc_evaluations"),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_aigc_evaluations"),
    )
    op.create_index("ix_aigc_evaluations_run_id", "aigc_evaluations", ["run_id"])


def downgrade() -> None:
    for table in ("aigc_evaluations", "aigc_samples", "aigc_checkpoints", "aigc_metric_points"):
        op.drop_table(table)
    op.drop_table("aigc_runs")
