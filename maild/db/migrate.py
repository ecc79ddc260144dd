"""Create or migrate the schema with Alembic (`maild db upgrade`, and on every start).

On PostgreSQL the upgrade runs on a connection holding an advisory lock named by the
schema: maild processes started together on an empty database take turns, and the later
ones find the schema made and have nothing to do. (SQLite's writers already take turns:
each transaction begins IMMEDIATE, see database.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from maild.db.advisory_locks import lock_key, schema_of
from maild.db.database import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    config = _alembic_config()
    with database.engine.connect() as connection, _one_at_a_time(connection):
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


@contextmanager
def _one_at_a_time(connection: Connection) -> Iterator[None]:
    """Hold the schema's migration lock on `connection` (PostgreSQL; a session lock, so
    it outlasts the migration's own transactions), waiting for whoever holds it."""
    if connection.dialect.name != "postgresql":
        yield
        return
    key = lock_key(schema_of(connection), "migrations")
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
    connection.commit()
    try:
        yield
    finally:
        # A connection that broke has lost the lock with its session.
        with suppress(SQLAlchemyError):
            connection.rollback()  # what a failed migration left open
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def is_current(database: Database) -> bool:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head

