"""Create or migrate the schema with Alembic (`maild db upgrade`, and on every start).

Alembic, with Mako and Pygments under it, is 12 MB of a daemon's 90 (bench/README.md)
and only needed when there is something to migrate: a start reads the revision the
database is at from Alembic's version table, and imports Alembic only when that is not
the newest migration's; and a daemon's start (the command line's) migrates in a
short-lived process of its own, so that even a first start never holds those 12 MB.

On PostgreSQL the upgrade runs on a connection holding an advisory lock named by the
schema: maild processes started together on an empty database take turns, and the later
ones find the schema made and have nothing to do. On SQLite they take turns on a lock
file beside the database (`maild.db.migrations.lock`), as Alembic's DDL there runs
outside any transaction.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from maild.db.advisory_locks import lock_key, schema_of
from maild.db.database import Database
from maild.errors import PermanentError, TemporaryError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Alembic's default name for the table that holds the database's revision.
VERSION_TABLE = "alembic_version"


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    with _sqlite_takes_turns(database):
        _upgrade(database, revision)


def _upgrade(database: Database, revision: str = "head") -> None:
    from alembic import command

    config = _alembic_config()
    with database.engine.connect() as connection, _one_at_a_time(connection):
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


@contextmanager
def _sqlite_takes_turns(database: Database) -> Iterator[None]:
    """SQLite: whoever migrates, or looks whether it must, holds a lock file beside the
    database. Alembic runs SQLite's DDL outside a transaction, so the write lock alone
    does not keep two migrations apart; and while a new database file is being made,
    another connection's switch to WAL is refused at once ("database is locked")
    instead of waiting its turn."""
    url = make_url(database.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    try:
        lock = open(f"{url.database}.migrations.lock", "a")
    except OSError as exc:
        raise TemporaryError(f"the database's migration lock: {exc.strerror}") from exc
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        yield


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


def newest_revision() -> str:
    """The newest migration's revision. Each migration is named after its revision, in
    order (0019_outbox_message_row_index.py is "0019"); tests/test_migrations.py holds
    Alembic's head to it."""
    return max(path.name.partition("_")[0]
               for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def database_revision(database: Database) -> str | None:
    """The revision the database is at; None for a database without the schema. Raises
    TemporaryError when the database cannot be reached, as a transaction does."""
    try:
        with database.engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return None
            revisions = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            found = [row[0] for row in revisions]
    except OperationalError as exc:
        raise TemporaryError(f"database unavailable: {exc.orig}") from exc
    return found[0] if len(found) == 1 else None


def upgrade_if_behind(database: Database) -> None:
    """Migrate to the newest revision unless the database is there already. Anything
    else (behind, none, ahead of this maild) is Alembic's to do or to refuse."""
    with _sqlite_takes_turns(database):
        if database_revision(database) != newest_revision():
            _upgrade(database)


_CHILD_COMMAND = "from maild.db.migrate import upgrade_url_on_stdin; upgrade_url_on_stdin()"


def upgrade_in_a_child_if_behind(database: Database) -> None:
    """`upgrade_if_behind`, with the migration in a process that ends with it: Alembic
    stays out of this one. A migration that fails raises PermanentError with its reason
    (Alembic's, or the database's) on one line; TemporaryError when its connection was
    lost (a database restart), as a start a little later migrates."""
    with _sqlite_takes_turns(database):  # the child takes its own turn to migrate
        current = database_revision(database) == newest_revision()
    if current:
        return
    child = subprocess.run(
        [sys.executable, "-c", _CHILD_COMMAND],
        input=database.url,  # not on the command line, where any user could read it
        capture_output=True, text=True,
        # The very modules this process imports, wherever they came from.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    if child.returncode != 0:
        said = child.stderr.strip().splitlines()
        reason = said[-1] if said else f"exit code {child.returncode}"
        failure = TemporaryError if child.returncode == os.EX_TEMPFAIL else PermanentError
        raise failure(f"the database could not be migrated: {reason}")


def upgrade_url_on_stdin() -> None:
    """The child's side: `upgrade` the database whose URL is on stdin; on failure, the
    reason as the last line of stderr and exit code 1, or EX_TEMPFAIL (75) when the
    connection to the database was lost."""
    database = Database(sys.stdin.read())
    try:
        upgrade(database)
    except Exception as exc:
        # A database's error runs to several lines (the SQL, a link): its first is the reason.
        sys.stderr.write(f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}\n")
        lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
        sys.exit(os.EX_TEMPFAIL if lost else 1)
    finally:
        database.dispose()


def is_current(database: Database) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
