"""Runs can be ``deleting``; runs are listed by scenario and start time through an index.

``aigc-run runs delete`` marks a run ``deleting`` before it removes the run's files, so a
deletion that fails half way shows in ``aigc-run runs`` and can be finished by deleting
again, instead of leaving rows that silently point at files already gone.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OLD = "status IN ('running', 'completed', 'failed', 'interrupted')"
_NEW = "status IN ('running', 'completed', 'failed', 'interrupted', 'deleting')"


def upgrade() -> None:
    with op.batch_alter_table("aigc_runs") as batch:
        batch.drop_constraint(op.f("ck_aigc_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_aigc_runs_status"), _NEW)
    op.create_index("ix_aigc_runs_scenario_started_at", "aigc_runs", ["scenario", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_aigc_runs_scenario_started_at", table_name="aigc_runs")
    # The old schema has no 'deleting': such runs keep their rows, marked interrupted.
    op.execute("UPDATE aigc_runs SET status = 'interrupted' WHERE status = 'deleting'")
    with op.batch_alter_table("aigc_runs") as batch:
        batch.drop_constraint(op.f("ck_aigc_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_aigc_runs_status"), _OLD)
