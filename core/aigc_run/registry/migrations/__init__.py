"""The registry's schema migrations (Alembic), run by ``Registry`` whenever it opens a database.

Opening upgrades the database to the newest revision this aigc-run knows, under a lock
(an immediate transaction on SQLite, an advisory lock on PostgreSQL) so that several
processes opening a new database at once migrate it once. A database created before
migrations existed (tables but no ``alembic_version``) is stamped as revision 0001 first.

To change the schema: change the models in ``registry/schema.py`` and add a file to ``versions/``
whose ``down_revision`` is the current head; ``tests/test_migrations.py`` fails until the
migrations build exactly what the models describe, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

FIRST = "0001"
_PG_LOCK_KEY = 0x61696763  # "aigc": the advisory lock every migrating process takes


class NewerSchemaError(Exception):
    """The database is at a revision this aigc-run does not know: a newer one made it."""

    def __init__(self, revision: str) -> None:
        super().__init__(revision)
        self.revision = revision


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


@functools.cache  # read once per process: every Registry() asks for it
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine, target: str = "head") -> None:
    """Bring the database at ``engine`` to ``target``; cheap when it is there already.

    Raises ``NewerSchemaError`` for a revision newer than this code, and SQLAlchemy's own
    errors when the database cannot be reached or stays locked.
    """
    script = scripts()
    known = {s.revision for s in script.walk_revisions()}
    wanted = script.get_current_head() if target == "head" else target
    assert wanted is not None, "the migrations have no head revision"
    with engine.connect() as conn:
        found = current_revision(conn)
    if found is not None and found not in known:
        raise NewerSchemaError(found)
    if found == wanted:
        return
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # SQLite alters a table by copying it and dropping the old one; with foreign keys
            # on, that drop would cascade and delete every child row. The pragma only takes
            # effect outside a transaction.
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            conn.commit()
        try:
            with conn.begin():
                if sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, held to the end
                else:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
                found = current_revision(conn)  # another process may have migrated meanwhile
                if found is not None and found not in known:
                    raise NewerSchemaError(found)
                if found is None and sa.inspect(conn).has_table("aigc_runs"):
                    command.stamp(_config(conn), FIRST)  # made by create_all before migrations
                command.upgrade(_config(conn), wanted)
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                conn.commit()
