"""One reader per mailbox across processes: the lease (a PostgreSQL advisory lock, or an
flock beside SQLite) is taken by one holder, passes on release, and passes within
seconds when the holder is killed. On PostgreSQL a process holds all its locks on one
connection, and loses them all together when that connection's session ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from maild.db.advisory_locks import lock_key, schema_of
from maild.runtime.leases import Leases
from tests.conftest import PG_URL, using_postgresql
from tests.waiting import wait_for

HOLDER = """
import sys, time
from pathlib import Path
from maild.runtime.leases import Leases
lease = Leases(sys.argv[1], Path(sys.argv[2])).lease("mailbox-support")
assert lease.try_acquire()
print("held", flush=True)
time.sleep(600)
"""

only_postgresql = pytest.mark.skipif(not using_postgresql(), reason="PostgreSQL advisory locks")


def test_one_holder_at_a_time_and_it_passes_on_release(
    database_url: str, tmp_path: Path
) -> None:
    # Two processes' worth of leases: a process leases each name once.
    one, two = Leases(database_url, tmp_path), Leases(database_url, tmp_path)
    first = one.lease("mailbox-support")
    second = two.lease("mailbox-support")
    other = one.lease("mailbox-feedback")
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # asking again while holding it: still ours
        assert not second.try_acquire()
        assert other.try_acquire()  # another mailbox is another lease
        assert (first.held(), second.held()) == (True, False)
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
        assert other.held()  # releasing one lease leaves the process's others alone
    finally:
        for lease in (first, second, other):
            lease.release()
        one.close()
        two.close()


def test_a_killed_holder_lets_go_at_once(database_url: str, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, database_url, str(tmp_path)],
                              stdout=subprocess.PIPE)
    leases = Leases(database_url, tmp_path)
    standby = leases.lease("mailbox-support")
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
        leases.close()


@pytest.fixture
def admin() -> Iterator[Engine]:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()


def lock_holders(admin: Engine, database_url: str, names: list[str]) -> dict[str, int]:
    """The server process (backend pid) holding each of these leases' locks, by name."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            schema = schema_of(connection)
    finally:
        engine.dispose()
    # A bigint key shows in pg_locks as its high and low 32 bits, unsigned.
    wanted = {(lock_key(schema, name) >> 32 & 0xFFFFFFFF, lock_key(schema, name) & 0xFFFFFFFF):
              name for name in names}
    with admin.connect() as connection:
        rows = connection.execute(text(
            "SELECT classid::bigint, objid::bigint, pid FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
        return {wanted[(high, low)]: pid for high, low, pid in rows if (high, low) in wanted}


@only_postgresql
def test_a_process_holds_all_its_locks_on_one_connection(
    database_url: str, tmp_path: Path, admin: Engine
) -> None:
    leases = Leases(database_url, tmp_path)
    names = [f"mailbox-{n}" for n in range(30)]
    held = [leases.lease(name) for name in names]
    try:
        assert all(lease.try_acquire() for lease in held)
        holders = lock_holders(admin, database_url, names)
        assert sorted(holders) == sorted(names)
        assert len(set(holders.values())) == 1
    finally:
        leases.close()
    assert lock_holders(admin, database_url, names) == {}  # closing lets every one go


@only_postgresql
def test_threads_take_turns_on_the_shared_connection(
    database_url: str, tmp_path: Path, admin: Engine
) -> None:
    leases = Leases(database_url, tmp_path)
    failures: list[str] = []

    def take_and_give_back(n: int) -> None:
        lease = leases.lease(f"mailbox-{n}")
        for round_ in range(25):
            if not lease.try_acquire() or not lease.held():
                failures.append(f"mailbox-{n}, round {round_}: not taken")
            lease.release()
            if lease.held():
                failures.append(f"mailbox-{n}, round {round_}: still held")
        lease.try_acquire()

    threads = [threading.Thread(target=take_and_give_back, args=(n,)) for n in range(16)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        holders = lock_holders(admin, database_url, [f"mailbox-{n}" for n in range(16)])
        assert len(holders) == 16 and len(set(holders.values())) == 1
    finally:
        leases.close()


@only_postgresql
def test_when_the_session_ends_every_lease_on_it_is_lost_and_can_pass(
    database_url: str, tmp_path: Path, admin: Engine
) -> None:
    holder, standby = Leases(database_url, tmp_path), Leases(database_url, tmp_path)
    names = ["mailbox-support", "mailbox-feedback"]
    held = [holder.lease(name) for name in names]
    waiting = [standby.lease(name) for name in names]
    try:
        assert all(lease.try_acquire() for lease in held)
        assert not any(lease.try_acquire() for lease in waiting)
        (backend,) = set(lock_holders(admin, database_url, names).values())
        # What a PostgreSQL restart does to the holder's session, done to it alone.
        with admin.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        for lease in held:
            wait_for(lambda lease=lease: not lease.held(), f"{lease.name} to read as lost")
        assert all(lease.try_acquire() for lease in waiting)
        assert not any(lease.try_acquire() for lease in held)  # on a new session, refused
        assert not any(lease.held() for lease in held)
        for lease in waiting:
            lease.release()
        assert all(lease.try_acquire() for lease in held)  # and taken back when free
    finally:
        holder.close()
        standby.close()


@only_postgresql
def test_desks_in_two_schemas_hold_the_same_lease_at_once(
    database_url: str, tmp_path: Path, admin: Engine
) -> None:
    other_schema = f"t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{other_schema}"'))
    here = Leases(database_url, tmp_path)
    there = Leases(f"{PG_URL}?options=-csearch_path%3D{other_schema}", tmp_path)
    try:
        assert here.lease("mailbox-support").try_acquire()
        assert there.lease("mailbox-support").try_acquire()
    finally:
        here.close()
        there.close()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{other_schema}" CASCADE'))
