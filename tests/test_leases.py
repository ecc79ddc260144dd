"""One reader per mailbox across processes: the lease (a PostgreSQL advisory lock, or an
flock beside SQLite) is taken by one holder, passes on release, and passes within
seconds when the holder is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from maild.runtime.leases import AdvisoryLease, lease_for
from tests.conftest import using_postgresql
from tests.waiting import wait_for

HOLDER = """
import sys, time
from pathlib import Path
from maild.runtime.leases import lease_for
lease = lease_for(sys.argv[1], Path(sys.argv[2]), "mailbox-support")
assert lease.try_acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_one_holder_at_a_time_and_it_passes_on_release(
    database_url: str, tmp_path: Path
) -> None:
    first = lease_for(database_url, tmp_path, "mailbox-support")
    second = lease_for(database_url, tmp_path, "mailbox-support")
    other = lease_for(database_url, tmp_path, "mailbox-feedback")
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # asking again while holding it: still ours
        assert not second.try_acquire()
        assert other.try_acquire()  # another mailbox is another lease
        assert (first.held(), second.held()) == (True, False)
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        for lease in (first, second, other):
            lease.release()


def test_a_killed_holder_lets_go_at_once(database_url: str, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, database_url, str(tmp_path)],
                              stdout=subprocess.PIPE)
    standby = lease_for(database_url, tmp_path, "mailbox-support")
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert not standby.try_acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        wait_for(standby.try_acquire, "the lease to pass to the standby", timeout=10)
    finally:
        holder.kill()
        holder.wait(timeout=10)
        assert holder.stdout is not None
        holder.stdout.close()
        standby.release()


@pytest.mark.skipif(not using_postgresql(), reason="a PostgreSQL session ending under the holder")
def test_a_holder_whose_database_session_ends_knows_it_lost_the_lease(
    database_url: str, tmp_path: Path
) -> None:
    holder = lease_for(database_url, tmp_path, "mailbox-support")
    assert isinstance(holder, AdvisoryLease)
    standby = lease_for(database_url, tmp_path, "mailbox-support")
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        assert holder.try_acquire()
        assert holder._connection is not None
        backend = holder._connection.scalar(text("SELECT pg_backend_pid()"))
        # What a PostgreSQL restart does to the holder's session, done to it alone.
        with admin.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        assert holder.held() is False
        assert standby.try_acquire()
    finally:
        holder.release()
        standby.release()
        admin.dispose()
