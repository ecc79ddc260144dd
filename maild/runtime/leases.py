"""One holder at a time, across processes and machines, for work that must not run twice
at once: reading a mailbox.

Both kinds are released by the operating system when the holder dies, so the work moves
to a standby process within its retry interval, never after a timeout guessed in advance:

- PostgreSQL: a session advisory lock held on a connection of its own. A process that
  dies closes its connection and the server drops the lock at once; a machine that
  vanishes is noticed by TCP keepalive, in about 15 seconds.
- SQLite (one machine by nature): an flock on a file under storage/locks/.

`held()` asks whether the lease is still ours: a PostgreSQL restart ends the session
and with it the lock, and the holder must stop before a standby takes over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# A vanished peer is noticed after idle + interval * count seconds.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
             "keepalives_count": 5}


class Lease(Protocol):
    name: str

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True if it is ours (already or now)."""
        ...

    def held(self) -> bool:
        """Whether the lease is still ours."""
        ...

    def release(self) -> None: ...


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock, from the lease's name."""
    digest = hashlib.sha256(f"maild:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLease:
    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self._key = _lock_key(name)
        self._engine = create_engine(url, poolclass=NullPool, connect_args=KEEPALIVE)
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return self.held()
        try:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            log.warning("lease %s: cannot reach the database: %s", self.name, exc.__cause__)
            return False
        try:
            taken = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                           {"key": self._key}))
        except SQLAlchemyError:
            connection.close()
            return False
        if taken:
            self._connection = connection
        else:
            connection.close()
        return taken

    def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.scalar(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            log.warning("lease %s: the connection holding it was lost", self.name)
            self._drop()
            return False

    def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.scalar(text("SELECT pg_advisory_unlock(:key)"),
                                        {"key": self._key})
            self._drop()
        self._engine.dispose()

    def _drop(self) -> None:
        assert self._connection is not None
        with contextlib.suppress(SQLAlchemyError):
            self._connection.close()
        self._connection = None


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


def lease_for(database_url: str, storage_dir: Path, name: str) -> Lease:
    if make_url(database_url).get_backend_name() == "postgresql":
        return AdvisoryLease(database_url, name)
    return FileLease(storage_dir / "locks", name)
