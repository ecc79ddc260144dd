"""One holder at a time, across processes and machines, for work that must not run twice
at once: reading a mailbox.

Both kinds are released by the operating system when the holder dies, so the work moves
to a standby process within its retry interval, never after a timeout guessed in advance:

- PostgreSQL: session advisory locks, all of a process's on one connection of their own
  (`LockSession`), so a process costs the server one connection however many mailboxes
  it reads. A process that dies closes that connection and the server drops its locks at
  once; a machine that vanishes is noticed by TCP keepalive, in about 15 seconds. The
  keys are named by the schema as well as the lease, so desks in two schemas of one
  database never hold each other's.
- SQLite (one machine by nature): an flock on a file under storage/locks/.

`held()` asks whether the lease is still ours: a PostgreSQL restart, or an operator's
`pg_terminate_backend`, ends the session and with it every lock on it, and each holder
must stop before a standby takes over.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from maild.db.advisory_locks import lock_key, schema_of

log = logging.getLogger(__name__)

# A vanished peer is noticed after idle + interval * count seconds.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
             "keepalives_count": 5}
# Every reader of the process waits its turn behind a connection attempt: an unreachable
# server must not keep them (and a stopping daemon) waiting for TCP's own timeout.
CONNECT_TIMEOUT_SECONDS = 10
# Every holder of the process asks whether its lock is still there, each second or so;
# one round trip answers them all for this long.
CONFIRMED_FOR_SECONDS = 1.0


class Lease(Protocol):
    name: str

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True if it is ours (already or now)."""
        ...

    def held(self) -> bool:
        """Whether the lease is still ours."""
        ...

    def release(self) -> None: ...


def application_name(pid: int | None = None) -> str:
    """How a process's lock session shows in pg_stat_activity: which maild holds it."""
    return f"maild locks {pid or os.getpid()}"


class LockSession:
    """The one connection on which a process holds all its advisory locks.

    Threads take turns on it. When it drops, every lock on it is gone at once: each
    lease then reads as lost, and the next `try_lock` opens a new session.
    """

    def __init__(self, url: str) -> None:
        self._engine = create_engine(
            url, poolclass=NullPool,
            connect_args={**KEEPALIVE, "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                          "application_name": application_name()})
        self._turn = threading.Lock()
        self._connection: Connection | None = None
        self._schema = ""
        self._locked: set[str] = set()  # names locked on the current connection
        self._confirmed_at = 0.0

    def try_lock(self, name: str) -> bool:
        with self._turn:
            if name in self._locked and self._alive():
                return True
            connection = self._connect()
            if connection is None:
                return False
            try:
                taken = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                               {"key": lock_key(self._schema, name)}))
            except SQLAlchemyError as exc:
                self._lose_all(exc)
                return False
            if taken:
                self._locked.add(name)
            return taken

    def holds(self, name: str) -> bool:
        with self._turn:
            return name in self._locked and self._alive()

    def unlock(self, name: str) -> None:
        with self._turn:
            if name not in self._locked or self._connection is None:
                return
            self._locked.discard(name)
            try:
                self._connection.scalar(text("SELECT pg_advisory_unlock(:key)"),
                                        {"key": lock_key(self._schema, name)})
            except SQLAlchemyError as exc:
                self._lose_all(exc)

    def close(self) -> None:
        """Every lock goes with the session."""
        with self._turn:
            if self._connection is not None:
                with contextlib.suppress(SQLAlchemyError):
                    self._connection.close()
            self._connection = None
            self._locked.clear()
        self._engine.dispose()

    def _connect(self) -> Connection | None:
        if self._connection is not None:
            return self._connection
        try:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._schema = schema_of(connection)
        except SQLAlchemyError as exc:
            log.warning("leases: cannot reach the database: %s", exc.__cause__ or exc)
            return None
        self._connection = connection
        self._confirmed_at = time.monotonic()
        return connection

    def _alive(self) -> bool:
        if self._connection is None:
            return False
        if time.monotonic() - self._confirmed_at < CONFIRMED_FOR_SECONDS:
            return True
        try:
            self._connection.scalar(text("SELECT 1"))
        except SQLAlchemyError as exc:
            self._lose_all(exc)
            return False
        self._confirmed_at = time.monotonic()
        return True

    def _lose_all(self, exc: SQLAlchemyError) -> None:
        if self._locked:
            log.warning("leases: the database session holding %s was lost (%s)",
                        ", ".join(sorted(self._locked)), exc.__cause__ or exc)
        self._locked.clear()
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
        self._connection = None


class AdvisoryLease:
    def __init__(self, session: LockSession, name: str) -> None:
        self.name = name
        self._session = session

    def try_acquire(self) -> bool:
        return self._session.try_lock(self.name)

    def held(self) -> bool:
        return self._session.holds(self.name)

    def release(self) -> None:
        self._session.unlock(self.name)


class FileLease:
    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.path = directory / f"{name.replace(':', '-').replace('/', '-')}.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        with contextlib.suppress(OSError):  # who holds it, for an operator's look; a full
            os.ftruncate(fd, 0)              # disk must not cost the lease
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class Leases:
    """A process's leases on one database: PostgreSQL's share one `LockSession`, made on
    the first use; beside SQLite each is a file under `storage_dir`/locks."""

    def __init__(self, database_url: str, storage_dir: Path) -> None:
        self._on_postgresql = make_url(database_url).get_backend_name() == "postgresql"
        self._url = database_url
        self._directory = storage_dir / "locks"
        self._session: LockSession | None = None
        self._making = threading.Lock()

    def lease(self, name: str) -> Lease:
        if not self._on_postgresql:
            return FileLease(self._directory, name)
        with self._making:
            if self._session is None:
                self._session = LockSession(self._url)
            return AdvisoryLease(self._session, name)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
