"""Alembic's entry point: migrate on the connection that ``migrations.upgrade`` hands in.

The caller has begun the transaction (and taken the lock), so Alembic runs inside it.
"""

from alembic import context

from aigc_run.registry.schema import Base

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite changes a table by rebuilding it; batch mode does that
)
with context.begin_transaction():
    context.run_migrations()
