"""A batch of messages is one transaction, its rows written together: one commit for
the lot, and a message that fails half-way leaves nothing of itself behind."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from maild.db.models import Message, OutboxMail, QuarantinedMail, ReceivedRaw, Ticket
from maild.db.raw_mail import IN_ROW_BYTES, fits_in_row
from maild.intake.pipeline import intake_batch
from maild.runtime.app import App
from tests.conftest import using_postgresql
from tests.helpers import kept_raw, refusing_acknowledgments_of
from tests.mailbuilder import make_mail


def _count(app: App, model: Any) -> int:
    with app.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_batch_commits_once_and_a_failure_half_way_leaves_nothing_of_it(app: App) -> None:
    app = refusing_acknowledgments_of(app, "Boom")
    commits: list[int] = []
    event.listen(app.db.engine, "commit", lambda connection: commits.append(1))
    mails = [
        make_mail(f"c{n}@customer.example", subject="Boom" if n == 2 else f"Question {n}",
                  message_id=f"<m{n}@customer.example>")
        for n in range(5)
    ]

    with intake_batch(app.intake, "test") as batch:
        for raw in mails:
            batch.ingest(raw)
    results = batch.results

    assert [r.outcome for r in results] == ["stored", "stored", "quarantined", "stored",
                                            "stored"]
    assert "no_such_field" in results[2].reason
    assert len(commits) == 1
    # Tickets, messages and acknowledgments of the other four only: the failed one's
    # ticket and message, written before its acknowledgment failed, were rolled back.
    assert _count(app, Ticket) == 4
    assert _count(app, Message) == 8
    # Written together, the five were refused, rolled back and taken again one at a
    # time. On SQLite the numbers of that first try were never written nor sent and are
    # handed out again; the failed one's two tries, each rolled back alone, are gaps.
    # PostgreSQL's sequence leaves the first try's five as gaps too.
    first = 6 if using_postgresql() else 1
    assert [r.ticket_id for r in results] == [first, first + 1, None, first + 4, first + 5]
    with app.db.transaction() as session:
        purposes = session.scalars(select(OutboxMail.purpose)).all()
        assert sorted(purposes) == ["ack"] * 4 + ["notify"] * 4
        assert session.scalar(select(Message).where(
            Message.message_id == "<m2@customer.example>")) is None
        held = session.scalars(select(QuarantinedMail)).one()
        assert "no_such_field" in held.reason
        assert kept_raw(app, held.raw_sha256) == mails[2]


def test_nothing_of_a_batch_counts_when_it_does_not_end(app: App) -> None:
    try:
        with intake_batch(app.intake, "test") as batch:
            batch.ingest(make_mail(message_id="<kept-for-later@customer.example>"))
            raise ConnectionError("the IMAP connection dropped before the batch ended")
    except ConnectionError:
        pass

    assert _count(app, Ticket) == 0
    assert _count(app, OutboxMail) == 0


def test_a_batch_keeps_small_mail_in_rows_and_syncs_large_mail_before_its_commit(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The small messages of a batch are kept in rows written by its commit, with what
    refers to them: no file, no sync. A large one is a file, synced as the batch ends and
    still before the commit that refers to it. The acknowledgments and notifications the
    batch causes are in their outbox rows, written by that commit."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    large = make_mail("big@customer.example", subject="A long log",
                      message_id="<big@customer.example>",
                      body="a line of the log, pasted whole\n" * (IN_ROW_BYTES // 30))
    assert not fits_in_row(large)
    small = [make_mail(f"c{n}@customer.example", subject=f"Question {n}",
                       message_id=f"<m{n}@customer.example>") for n in range(5)]
    at_commit: list[tuple[dict[str, bytes], list[str], int]] = []

    def check(connection: Any) -> None:
        with Session(connection) as session:
            rows = {r.sha256: r.raw for r in session.scalars(select(ReceivedRaw))}
            files = [name for name in session.scalars(select(Message.raw_sha256).where(
                Message.raw_sha256.is_not(None))) if app.raw_store.path_for(name).exists()]
            outbox = session.scalar(select(func.count(OutboxMail.id))) or 0
        at_commit.append((rows, files, outbox))

    with intake_batch(app.intake, "test") as batch:
        for raw in [*small, large]:
            batch.ingest(raw)
        assert synced == []
        event.listen(app.db.engine, "commit", check)
    event.remove(app.db.engine, "commit", check)

    rows, files, outbox = at_commit[0]
    assert rows == {hashlib.sha256(raw).hexdigest(): raw for raw in small}
    assert files == [hashlib.sha256(large).hexdigest()]
    assert outbox == 12  # an acknowledgment and a notification each
    # Only the large message's file, and the notification quoting it, were written, each
    # synced once; the rest is in the database.
    written = list(app.raw_store.directory.rglob("*.eml"))
    assert f"{hashlib.sha256(large).hexdigest()}.eml" in {p.name for p in written}
    assert len(written) == len(synced) == 2


def test_a_duplicate_is_not_kept(app: App) -> None:
    """A duplicate changes nothing: its bytes, which nothing would refer to, are not kept
    either, whether they differ from the first copy's or not."""
    first = make_mail(message_id="<twice@customer.example>", body="First copy.")
    resent = make_mail(message_id="<twice@customer.example>", body="Sent again, edited.")
    with intake_batch(app.intake, "test") as batch:
        assert batch.ingest(first).outcome == "stored"
        assert batch.ingest(first).outcome == "duplicate"
        assert batch.ingest(resent).outcome == "duplicate"
    with app.db.transaction() as session:
        assert set(session.scalars(select(ReceivedRaw.sha256))) == {
            hashlib.sha256(first).hexdigest()}


def test_a_message_stored_by_another_process_meanwhile_is_a_duplicate(app: App) -> None:
    """Another process commits the same Message-ID after this one found it unknown and
    before it writes the message: the INSERT fails, the message's savepoint is rolled
    back, and it is recognised as the duplicate it is. The other process is a second
    connection that commits its row just as this one has found the Message-ID unknown."""
    if not app.db.is_postgresql:
        pytest.skip("SQLite lets one writer in at a time: the race cannot happen there")
    raw = make_mail(message_id="<raced@customer.example>")
    raced: list[bool] = []

    def the_other_process_first(connection: Any, cursor: Any, statement: str,
                                *args: Any) -> None:
        if raced or not (statement.startswith("SELECT messages.id") and "UNION" in statement):
            return  # not the check for a known Message-ID
        raced.append(True)
        with app.db.engine.connect() as other, Session(other) as session:
            ticket = Ticket(subject="Stored elsewhere", status="new", priority="p2",
                            requester="ann@customer.example", created_at=app.clock.now(),
                            updated_at=app.clock.now(), nudges_sent=0)
            ticket.messages.append(Message(
                message_id="<raced@customer.example>", direction="in", kind="public",
                author="ann@customer.example", created_at=app.clock.now(),
                subject="Stored elsewhere", body="", channel="test", attachments=[]))
            session.add(ticket)
            session.commit()

    event.listen(app.db.engine, "after_cursor_execute", the_other_process_first)
    try:
        with intake_batch(app.intake, "test") as batch:
            batch.ingest(raw)
            batch.ingest(make_mail(message_id="<next@customer.example>",
                                   subject="Next question"))
    finally:
        event.remove(app.db.engine, "after_cursor_execute", the_other_process_first)
    result, after = batch.results

    assert raced == [True]
    assert result.outcome == "duplicate"
    assert after.outcome == "stored"
    with app.db.transaction() as session:
        assert sorted(session.scalars(select(Ticket.subject))) == [
            "Next question", "Stored elsewhere"]
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.message_id == "<raced@customer.example>")) == 1
