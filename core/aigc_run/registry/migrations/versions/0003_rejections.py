"""Rejections are rows: which filter rejected a sample, with its score and threshold.

Before, a rejected sample carried only a text (``"near-duplicate 0.0175 < 0.02; ..."``)
that readers parsed back. Now each failed filter is a row of ``aigc_rejections``, counted
per filter in SQL. The rejections of samples recorded earlier are read from their text
once, here.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aigc_rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("filter", sa.String(200), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["aigc_runs.id"],
            name="fk_aigc_rejections_run_id_aigc_runs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["aigc_samples.id"],
            name="fk_aigc_rejections_sample_id_aigc_samples",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_aigc_rejections"),
    )
    op.create_index("ix_aigc_rejections_run_id_filter", "aigc_rejections", ["run_id", "filter"])
    op.create_index("ix_aigc_rejections_sample_id", "aigc_rejections", ["sample_id"])
    samples = sa.table(
        "aigc_samples",
        sa.column("id", sa.Integer()),
        sa.column("run_id", sa.Integer()),
        sa.column("reason", sa.Text()),
    )
    rejections = sa.table(
        "aigc_rejections",
        sa.column("run_id", sa.Integer()),
        sa.column("sample_id", sa.Integer()),
        sa.column("filter", sa.String()),
        sa.column("score", sa.Double()),
        sa.column("threshold", sa.Double()),
    )
    connection = op.get_bind()
    query = sa.select(samples).where(samples.c.reason.is_not(None), samples.c.reason != "")
    rows = [
        {"run_id": run_id, "sample_id": sample_id, **rejection}
        for sample_id, run_id, reason in connection.execute(query)
        for rejection in _parse(reason)
    ]
    if rows:
        connection.execute(sa.insert(rejections), rows)


def _parse(reason: str) -> list[dict[str, object]]:
    """``"a 0.1 < 0.5; b 3 > 2"`` -> one dict per filter, as the old sampler wrote them."""
    found = []
    for part in reason.split("; "):
        name, _, rest = part.partition(" ")
        score, _, threshold = rest.partition(" < ") if " < " in rest else rest.partition(" > ")
        try:
            found.append({"filter": name, "score": float(score), "threshold": float(threshold)})
        except ValueError:  # not written by the sampler: keep the name, the numbers are unknown
            found.append({"filter": name, "score": None, "threshold": None})
    return found


def downgrade() -> None:
    op.drop_index("ix_aigc_rejections_sample_id", table_name="aigc_rejections")
    op.drop_index("ix_aigc_rejections_run_id_filter", table_name="aigc_rejections")
    op.drop_table("aigc_rejections")
