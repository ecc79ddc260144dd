"""The engine and sessions, with the SQLite settings that make it safe to share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maild.errors import TemporaryError


def _prepare_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below open the transaction, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # A commit is on disk before maild acts on it: the intake files a message away
        # from the IMAP inbox right after its batch commits, so a commit that a power
        # cut could undo (NORMAL) would lose that mail. With a commit per batch, the
        # price is one WAL sync per batch.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers wait on each
        # other (busy_timeout) instead of failing on a lock upgrade mid-way.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_database_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
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

    def dispose(self) -> None:
        self.engine.dispose()
