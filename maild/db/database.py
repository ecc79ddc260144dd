"""The engine and sessions, with the SQLite settings that make it safe to share."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maild.errors import ConfigError, TemporaryError

# A commit is on disk before maild acts on it: the intake files a message away from the
# IMAP inbox right after its batch commits, so a commit that a power cut could undo
# (NORMAL) would lose that mail. With a commit per batch, the price is one WAL sync per
# batch.
_WRITER_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON",
                   "busy_timeout=10000")
# Connections that can only read (the dashboard): a plain (deferred) BEGIN gives each
# transaction one snapshot of the database without taking the write lock from the intake.
_READER_PRAGMAS = ("query_only=ON", "busy_timeout=10000")


def _prepare_sqlite(engine: Engine, pragmas: tuple[str, ...] = _WRITER_PRAGMAS,
                    begin: str = "BEGIN IMMEDIATE") -> None:
    """`begin`: IMMEDIATE (writers) takes the write lock up front, so two writers wait on
    each other (busy_timeout) instead of failing on a lock upgrade mid-way."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below open the transaction, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def create_database_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # Never made here: a mistyped path, or a relative one read from another
            # directory, would otherwise start a new empty database beside the real one.
            directory = Path(parsed.database).parent
            if not directory.is_dir():
                raise ConfigError([f"storage.url: the database's directory {directory.absolute()} "
                                   "does not exist; create it, or correct the URL"])
        engine = create_engine(url, connect_args={"timeout": 10})
        _prepare_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_database_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Built on first use, from whichever thread: by the dashboard's, mostly.
        self._readers_lock = threading.Lock()
        self._reader_engine: Engine | None = None
        self._readers: sessionmaker[Session] | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error.

        Connection trouble and lock timeouts surface as TemporaryError, so that
        callers can answer "try again later" without knowing the backend.
        """
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            raise TemporaryError(f"database unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise TemporaryError(f"database connection lost: {exc.orig}") from exc
            raise
        finally:
            session.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A transaction that can only read (the dashboard's): on SQLite it never takes
        the write lock; on both databases a write in it fails."""
        session = self._reader_sessions()()
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            raise TemporaryError(f"database unavailable: {exc.orig}") from exc
        finally:
            session.close()

    def _reader_sessions(self) -> sessionmaker[Session]:
        with self._readers_lock:
            if self._readers is None:
                if self.is_postgresql:
                    self._readers = sessionmaker(
                        self.engine.execution_options(postgresql_readonly=True),
                        expire_on_commit=False)
                else:
                    self._reader_engine = create_engine(self.url, connect_args={"timeout": 10})
                    _prepare_sqlite(self._reader_engine, _READER_PRAGMAS, "BEGIN")
                    self._readers = sessionmaker(self._reader_engine, expire_on_commit=False)
            return self._readers

    def ping(self) -> None:
        """Raise TemporaryError unless the database answers now."""
        with self.reading() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        if self._reader_engine is not None:
            self._reader_engine.dispose()
        self.engine.dispose()
