"""Outage or refusal: real errors from the real databases, each classified as it means."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.exc import DBAPIError

from maild.db.database import Database
from maild.db.faults import is_outage
from maild.db.models import Message
from tests.conftest import free_port, using_postgresql


def _raised(database: Database, statement: str, **values: object) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, database.engine.begin() as connection:
        connection.execute(text(statement), values)
    return caught.value


def test_too_many_variables_is_a_refusal(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE ids (id TEXT)"))
        ids = [f"<{n}@p.example>" for n in range(300_000)]  # over both databases' limits
        query = text("SELECT id FROM ids WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True))
        with pytest.raises(DBAPIError) as caught, database.engine.connect() as connection:
            connection.execute(query, {"ids": ids})
        assert not is_outage(caught.value), caught.value
    finally:
        database.dispose()


def test_a_value_the_column_cannot_hold_is_a_refusal(database_url: str) -> None:
    if not using_postgresql():
        pytest.skip("SQLite keeps text of any length")
    database = Database(database_url)
    try:
        exc = _raised(database, "SELECT CAST(:value AS VARCHAR(3))::int", value="many")
        assert not is_outage(exc), exc
    finally:
        database.dispose()


def test_a_database_that_is_away_is_an_outage() -> None:
    if using_postgresql():
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    else:
        url = "sqlite:////nonexistent-directory/maild.db"
    engine = create_engine(url)
    try:
        with pytest.raises(DBAPIError) as caught, engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert is_outage(caught.value), caught.value
    finally:
        engine.dispose()


def test_a_database_locked_beyond_its_timeout_is_an_outage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/locked.db"
    holder = create_engine(url)
    waiter = create_engine(url, connect_args={"timeout": 0.1})
    try:
        with holder.connect() as held:
            held.execute(text("CREATE TABLE t (x INTEGER)"))
            held.commit()
            held.exec_driver_sql("BEGIN EXCLUSIVE")
            with pytest.raises(DBAPIError) as caught, waiter.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (1)"))
            held.rollback()
        assert is_outage(caught.value), caught.value
    finally:
        holder.dispose()
        waiter.dispose()


@pytest.mark.empty_database
def test_a_missing_schema_is_an_outage(database_url: str) -> None:
    """Not the mail's fault: every mail would fail the same way."""
    database = Database(database_url)
    try:
        exc = _raised(database, f"SELECT message_id FROM {Message.__tablename__}")
        assert is_outage(exc), exc
    finally:
        database.dispose()
