"""Reading results the way an operator would: the command line and the ticket JSON."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from sqlalchemy import Engine, event, select, text

from maild.cli import main
from maild.db.database import Database
from maild.db.migrate import MIGRATIONS
from maild.db.models import OutboxMail, ReceivedRaw
from maild.db.raw_mail import read_raw
from maild.runtime.app import App, build_app
from maild.tickets.views import get_ticket, ticket_json
from tests.conftest import free_port, using_postgresql

# Monday 23 November 2026, 10:00 in Los Angeles: the start of every story.
NOW = "2026-11-23T10:00:00-08:00"


def maild(config_file: Path, *args: str, stdin: bytes | None = None, now: str = NOW) -> Result:
    """The command line, in-process, as an operator runs it at `now`."""
    return CliRunner().invoke(main, ["--config", str(config_file), *args], input=stdin,
                              env={"MAILD_NOW": now}, catch_exceptions=False)


def kept_raw(app: App, sha256: str) -> bytes:
    """A received message's bytes, wherever maild keeps them (db/raw_mail.py)."""
    with app.db.reading() as session:
        return read_raw(session, app.raw_store, sha256)


def raw_kept(db: Database, raw_directory: Path) -> int:
    """How many received messages are kept, in rows or as files (db/raw_mail.py)."""
    with db.reading() as session:
        rows = len(session.scalars(select(ReceivedRaw.sha256)).all())
    return rows + len(list(raw_directory.rglob("*.eml")))


def notice_to(app: App, ticket_id: int, address: str = "dan@example.com") -> str:
    """The Message-ID of the latest mail maild wrote to `address` about the ticket (a
    notification): what an engineer's reply answers, and so proves them staff."""
    with app.db.transaction() as session:
        rows = session.execute(select(OutboxMail.message_id, OutboxMail.recipients)
                               .where(OutboxMail.ticket_id == ticket_id)
                               .order_by(OutboxMail.id)).all()
    sent = [message_id for message_id, recipients in rows if address in recipients]
    assert sent, f"maild wrote {address} nothing about ticket #{ticket_id}"
    return sent[-1]


def delivered_notice(config_file: Path, sink: Any, address: str = "dan@example.com") -> str:
    """`notice_to` from the command line: maild delivers its outbox to the sink, and the
    Message-ID of the latest mail the engineer received there is what they answer."""
    maild(config_file, "run", "--once", "--only", "outbound")
    received = [m for m in sink.messages() if m["Delivered-To"] == address]
    assert received, f"{address} received nothing"
    return str(received[-1]["Message-ID"])


def downgrade(database: Database, revision: str) -> None:
    """Through Alembic's own command: maild has none for going back."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
        connection.commit()


def show(app: App, ticket_id: int) -> dict[str, Any]:
    with app.db.transaction() as session:
        return ticket_json(get_ticket(session, ticket_id))


T = TypeVar("T")


def at_once(app: App, work: Callable[[App], T], processes: int = 2) -> list[T]:
    """`work` run by several schedulers of their own at the same moment, as several
    maild processes on one database would; what each returned."""
    schedulers = [build_app(app.config, app.clock) for _ in range(processes)]
    results: list[T] = []
    start = threading.Barrier(processes)

    def run(scheduler: App) -> None:
        start.wait()
        results.append(work(scheduler))

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for scheduler in schedulers:
        scheduler.close()
    assert len(results) == processes, "a scheduler failed; see its traceback above"
    return results


@contextmanager
def serving(handler: Any) -> Iterator[int]:
    """A real SMTP server (aiosmtpd) with `handler`, on a free loopback port, while the
    block runs: a relay that behaves as a test needs."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement `engine` is given while the block runs, with its parameters, as
    its driver receives them."""
    given: list[tuple[str, Any]] = []

    def listener(connection: Any, cursor: Any, statement: str, parameters: Any,
                 *rest: Any) -> None:
        given.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield given
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def sqlite_plan(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """SQLite's plan for a statement, a line per step (EXPLAIN QUERY PLAN)."""
    with engine.connect() as connection:
        return [row[3] for row in connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters)]


def refusing_messages(app: App, when: str, error: str, sqlstate: str) -> App:
    """The database itself refuses to write any message for which `when` (SQL on the row,
    NEW) holds, saying `error` (on PostgreSQL with `sqlstate`): a trigger, as a real
    refusal by the real database."""
    with app.db.engine.begin() as connection:
        if using_postgresql():
            connection.execute(text(
                "CREATE FUNCTION refuse_messages() RETURNS trigger AS $$ BEGIN "
                f"IF {when} THEN RAISE EXCEPTION '{error}' USING ERRCODE = '{sqlstate}'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            connection.execute(text("CREATE TRIGGER refuse_messages BEFORE INSERT ON messages "
                                    "FOR EACH ROW EXECUTE FUNCTION refuse_messages()"))
        else:
            connection.execute(text(
                f"CREATE TRIGGER refuse_messages BEFORE INSERT ON messages WHEN {when} "
                f"BEGIN SELECT RAISE(ABORT, '{error}'); END"))
    return app


def refusing_acknowledgments_of(app: App, subject: str) -> App:
    """The database refuses the acknowledgment of the ticket with `subject`: the failure
    comes as the rows of that ticket and its message are written, with the
    acknowledgment's."""
    return refusing_messages(app, f"NEW.kind = 'system' AND NEW.subject LIKE '%{subject}'",
                             "no_such_field", "23514")
