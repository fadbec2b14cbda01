"""Runs record the shape of their data and the trained model they started from.

``dataset`` (JSON: images, channels, image size, class names in label order) is set once
a run has loaded its data, so a run that starts from this one (``train.init_from``) can
be checked and match classes by name without that data. ``parent`` (JSON) names the
trained model a run started from: the run id, if any, the checkpoint's path, step and
sha256. Both are NULL for runs recorded before.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("aigc_runs") as batch:
        batch.add_column(sa.Column("dataset", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("parent", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("aigc_runs") as batch:
        batch.drop_column("parent")
        batch.drop_column("dataset")
