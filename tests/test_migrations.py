"""The Alembic history builds exactly the schema the models describe."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from maild.db.advisory_locks import lock_key, schema_of
from maild.db.database import Database
from maild.db.fulltext import not_in_the_models
from maild.db.migrate import (
    MIGRATIONS,
    database_revision,
    is_current,
    newest_revision,
    upgrade,
    upgrade_if_behind,
)
from maild.db.models import Base
from tests.conftest import config_text, free_port, using_postgresql
from tests.helpers import downgrade, maild
from tests.waiting import wait_for

# Each test here makes the schema itself, as a first start does.
pytestmark = pytest.mark.empty_database


def test_migrations_match_the_models(database_url: str) -> None:
    database = Database(database_url)
    try:
        upgrade(database)
        with database.engine.connect() as connection:
            # The full-text index is made per database by its migration, not by the models.
            context = MigrationContext.configure(
                connection, opts={"include_object": not_in_the_models})
            differences = compare_metadata(context, Base.metadata)
    finally:
        database.dispose()
    assert differences == []


def _outbox_row(connection: Connection, n: int, **columns: object) -> None:
    values = {"purpose": "ack", "message_id": f"<m{n}@example.com>", "mail_from": "s@x.example",
              "recipients": '["a@x.example"]', "status": "queued", "attempts": 0,
              "next_attempt_at": "2026-11-23 10:00:00.000000",
              "created_at": "2026-11-23 10:00:00.000000", **columns}
    connection.execute(text(f"INSERT INTO outbox ({', '.join(values)}) VALUES "
                            f"({', '.join(':' + k for k in values)})"), values)


def test_outgoing_mail_moves_into_its_row_and_back_only_once_sent(database_url: str) -> None:
    database = Database(database_url)
    try:
        upgrade(database, "0009")
        with database.engine.begin() as connection:
            _outbox_row(connection, 1, raw_sha256="ab" * 32)  # queued by the older version
        upgrade(database)
        with database.engine.begin() as connection:
            assert connection.execute(text("SELECT raw, raw_sha256 FROM outbox")).one() == (
                None, "ab" * 32)
            _outbox_row(connection, 2, raw=b"queued in its row")
        with pytest.raises(IntegrityError), database.engine.begin() as connection:
            _outbox_row(connection, 3)  # kept nowhere

        with pytest.raises(RuntimeError, match="1 queued mail is kept only in the outbox"):
            downgrade(database, "0009")

        with database.engine.begin() as connection:
            connection.execute(text("UPDATE outbox SET status = 'sent'"))
        downgrade(database, "0009")
        with database.engine.begin() as connection:
            kept = dict(connection.execute(text("SELECT message_id, raw_sha256 FROM outbox")).all())
    finally:
        database.dispose()
    assert kept == {"<m1@example.com>": "ab" * 32,
                    "<m2@example.com>": hashlib.sha256(b"queued in its row").hexdigest()}


def test_a_downgrade_never_drops_received_mail_kept_in_rows(database_url: str) -> None:
    """The version before 0025 reads received mail only from files, which a migration
    cannot write (it does not know the raw store): with rows kept, it refuses."""
    database = Database(database_url)
    try:
        upgrade(database)
        with database.engine.begin() as connection:
            connection.execute(text("INSERT INTO raw_mail (sha256, raw) VALUES (:s, :r)"),
                               {"s": "ab" * 32, "r": b"From: ann@customer.example\r\n"})
        with pytest.raises(RuntimeError, match="1 received message"):
            downgrade(database, "0024")
        with database.engine.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM raw_mail")).scalar() == 1
            connection.execute(text("DELETE FROM raw_mail"))
        downgrade(database, "0024")
        with database.engine.connect() as connection:
            assert "raw_mail" not in inspect(connection).get_table_names()
    finally:
        database.dispose()


def test_the_newest_migration_file_is_alembics_head() -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [newest_revision()]


def test_a_start_on_a_current_schema_leaves_alembic_unloaded(database_url: str) -> None:
    """Alembic is a seventh of an idle daemon: a start loads it only to migrate."""
    database = Database(database_url)
    try:
        upgrade(database, "0018")
        assert database_revision(database) == "0018"
        upgrade_if_behind(database)  # behind: migrated
        assert database_revision(database) == newest_revision()
    finally:
        database.dispose()
    started = subprocess.run([sys.executable, "-c", (
        "import sys; from maild.db.database import Database; "
        "from maild.db.migrate import upgrade_if_behind; "
        "database = Database(sys.argv[1]); upgrade_if_behind(database); database.dispose(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"),
        database_url], capture_output=True, text=True, check=True)
    assert started.stdout.strip() == "[]"


def test_a_first_start_migrates_in_a_process_of_its_own(config_file: Path,
                                                         database_url: str) -> None:
    """A daemon's first start, on an empty database, migrates it and never holds Alembic:
    12 MB of a process that has 150 to take in a backlog (bench/README.md)."""
    started = subprocess.run([sys.executable, "-c", (
        "import sys; from maild.cli import main; "
        "main(['--config', sys.argv[1], 'run', '--once'], standalone_mode=False); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"),
        str(config_file)], capture_output=True, text=True, check=True)
    assert started.stdout.strip().splitlines()[-1] == "[]"
    database = Database(database_url)
    try:
        assert database_revision(database) == newest_revision()
    finally:
        database.dispose()


@pytest.mark.parametrize(("in_the_way", "reason"), [
    # Ahead of this maild, or another's history: Alembic refuses it.
    (["CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
      "INSERT INTO alembic_version VALUES ('9999')"],
     "Can't locate revision identified by '9999'"),
    # A table the first migration makes, made by hand: the database refuses it.
    (["CREATE TABLE tickets (id INTEGER PRIMARY KEY)"], "already exists"),
])
def test_a_migration_that_fails_stops_the_start_with_its_reason(
    config_file: Path, database_url: str, in_the_way: list[str], reason: str
) -> None:
    database = Database(database_url)
    try:
        with database.engine.begin() as connection:
            for statement in in_the_way:
                connection.execute(text(statement))
    finally:
        database.dispose()
    result = maild(config_file, "run", "--once")
    assert result.exit_code == 1
    said = result.output.strip().splitlines()
    assert len(said) == 1
    assert said[0].startswith("maild: the database could not be migrated: ")
    assert reason in said[0]


def test_a_start_with_the_database_unreachable_says_try_again_later(tmp_path: Path) -> None:
    """75, EX_TEMPFAIL: what an MTA delivering through `maild ingest` reads as "try again
    later" rather than bouncing the mail, and a supervisor as a start to try again."""
    config = tmp_path / "unreachable.toml"
    config.write_text(config_text(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test",
        tmp_path / "storage", free_port()))
    result = maild(config, "run", "--once")
    assert result.exit_code == 75
    said = result.output.strip()  # the driver's reason may run to a second line
    assert said.startswith("maild: database unavailable: ")
    assert said.endswith("(try again later)")


@pytest.mark.skipif(not using_postgresql(), reason="a PostgreSQL session ended under a start")
def test_a_migration_whose_session_is_ended_says_try_again_later(
    config_file: Path, database_url: str
) -> None:
    """A database restart while a start migrates: the start is to be tried again, not
    given up on as a migration that cannot be done."""
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as holder:
            key = lock_key(schema_of(holder), "migrations")
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            start = subprocess.Popen(
                [sys.executable, "-m", "maild", "--config", str(config_file), "run", "--once"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={k: v for k, v in os.environ.items() if k != "MAILD_NOW"})
            unsigned = key % 2**64  # pg_locks shows the key as two unsigned halves
            waiting = text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                           "AND NOT granted AND classid::bigint = :high "
                           "AND objid::bigint = :low AND objsubid = 1")
            [migrating] = wait_for(lambda: holder.scalars(waiting, {
                "high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF}).all(),
                "the start's migration to wait for the lock", timeout=60)
            holder.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": migrating})
            _, stderr = start.communicate(timeout=60)
    finally:
        engine.dispose()
    assert start.returncode == 75, stderr
    said = stderr.strip().splitlines()[-1]
    assert said.startswith("maild: the database could not be migrated: ")
    assert said.endswith("(try again later)")


# `maild db upgrade`, its imports done before a common start, so the processes reach the
# database together rather than as fast as each happens to load Python.
AT_THE_GATE = """
import sys, time
from pathlib import Path
from maild.cli import main
gate = Path(sys.argv[1])
print("ready", flush=True)
while not gate.exists():
    time.sleep(0.005)
sys.argv = ["maild", "--config", sys.argv[2], "db", "upgrade"]
main()
"""


def test_processes_started_together_on_an_empty_database_make_the_schema_once(
    config_file: Path, database_url: str, tmp_path: Path
) -> None:
    """Several mailds started at once (a deploy, supervisord's autostart) all migrate on
    start; each of them must come up, with the schema made once."""
    gate = tmp_path / "go"
    upgrades = [subprocess.Popen([sys.executable, "-c", AT_THE_GATE, str(gate), str(config_file)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(4)]
    for process in upgrades:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    gate.touch()
    said = [process.communicate(timeout=120) for process in upgrades]
    assert [process.returncode for process in upgrades] == [0] * 4, said
    database = Database(database_url)
    try:
        assert is_current(database)
    finally:
        database.dispose()
