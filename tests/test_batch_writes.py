"""A batch's messages are written together (maild/intake/pipeline.py): what a message
looks up of the messages before it in its batch is what it would find had each been
written as it ended (maild/intake/overlap.py), and a message that fails still fails
alone."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from maild.db.models import Event, Message, OutboxMail, QuarantinedMail, Ticket
from maild.errors import TemporaryError
from maild.intake import apply as apply_module
from maild.intake.pipeline import IngestResult, intake_batch
from maild.runtime.app import App
from maild.tickets.customers import add_customer
from tests.helpers import statements
from tests.mailbuilder import make_mail


def _take(app: App, mails: list[bytes]) -> list[IngestResult]:
    with intake_batch(app.intake, "test") as batch:
        for raw in mails:
            batch.ingest(raw)
    return batch.results


def _question(n: int, sender: str | None = None, **kwargs: object) -> bytes:
    return make_mail(sender or f"Customer {n} <c{n}@customer{n}.example>",
                     subject=f"Question {n}", message_id=f"<q{n}@customer.example>",
                     **kwargs)  # type: ignore[arg-type]


def test_unrelated_messages_are_written_together(app: App) -> None:
    """Five new conversations from five customers: their rows are written by one flush,
    in one savepoint, not one each; the tickets, numbered by maild, in one statement."""
    with statements(app.db.engine) as given:
        results = _take(app, [_question(n) for n in range(5)])

    assert [r.outcome for r in results] == ["stored"] * 5
    inserts = [s for s, _ in given if s.startswith("INSERT INTO tickets")]
    assert len(inserts) == 1, inserts
    assert len([s for s, _ in given if s.startswith("SAVEPOINT")]) == 1


def test_a_reply_to_a_mail_earlier_in_the_batch_joins_its_ticket(app: App) -> None:
    ann = "Ann <ann@customer.example>"
    results = _take(app, [
        _question(1, ann),
        _question(2),
        make_mail(ann, subject="Re: Question 1", message_id="<r1@customer.example>",
                  in_reply_to="<q1@customer.example>", body="And it smokes now."),
    ])

    assert [r.outcome for r in results] == ["stored"] * 3
    assert results[2].ticket_id == results[0].ticket_id
    with app.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 2
        ticket = session.get(Ticket, results[0].ticket_id)
        assert ticket is not None
        assert ticket.status == "open"
        assert ticket.requester_mails == 2


def test_a_subject_tag_names_a_ticket_opened_earlier_in_the_batch(app: App) -> None:
    with intake_batch(app.intake, "test") as batch:
        opened = batch.ingest(_question(1, "ann@customer.example"))
        batch.ingest(make_mail("ann@customer.example",
                               subject=f"[#{opened.ticket_id}] one more thing",
                               message_id="<more@customer.example>", body="The logs."))
    first, more = batch.results

    assert more.ticket_id == first.ticket_id
    assert more.reason == "customer reply"


def test_the_same_message_twice_in_a_batch_is_a_duplicate(app: App) -> None:
    results = _take(app, [_question(1), _question(2), _question(1)])

    assert [r.outcome for r in results] == ["stored", "stored", "duplicate"]


def test_the_hourly_cap_counts_the_acknowledgments_queued_earlier_in_the_batch(
    app: App, app_with: object
) -> None:
    capped = app_with(outbound=app.config.outbound.model_copy(  # type: ignore[operator]
        update={"auto_replies_per_hour": 2}))
    _take(capped, [make_mail("flood@customer.example", subject=f"Problem {n}",
                             message_id=f"<p{n}@customer.example>") for n in range(4)])

    with app.db.transaction() as session:
        acks = session.scalars(select(OutboxMail.recipients)
                               .where(OutboxMail.purpose == "ack")).all()
        withheld = session.scalar(select(func.count()).select_from(Event)
                                  .where(Event.kind == "ack_withheld"))
    assert len(acks) == 2
    assert withheld == 2


def test_notifications_about_one_sender_count_those_queued_earlier_in_the_batch(
    app: App, app_with: object
) -> None:
    capped = app_with(staff=app.config.staff.model_copy(  # type: ignore[operator]
        update={"notify_per_sender_per_hour": 2}))
    _take(capped, [make_mail("chatty@customer.example", subject=f"Thing {n}",
                             message_id=f"<t{n}@customer.example>") for n in range(4)])

    with app.db.transaction() as session:
        notified = session.scalar(select(func.count()).select_from(OutboxMail)
                                  .where(OutboxMail.purpose == "notify"))
        held = session.scalar(select(func.count()).select_from(Message)
                              .where(Message.staff_notice == "held"))
    assert (notified, held) == (2, 2)


def test_a_notification_lists_the_customers_ticket_opened_earlier_in_the_batch(
    app: App
) -> None:
    with app.db.transaction() as session:
        add_customer(app.intake.mails, session, "Acme", domains=["acme.example"])
    results = _take(app, [
        make_mail("ann@acme.example", subject="Invoices are wrong",
                  message_id="<inv@acme.example>"),
        make_mail("bob@acme.example", subject="Cannot log in",
                  message_id="<login@acme.example>"),
    ])

    with app.db.transaction() as session:
        raw = session.scalars(
            select(OutboxMail.raw).where(OutboxMail.purpose == "notify",
                                         OutboxMail.ticket_id == results[1].ticket_id)).one()
    assert raw is not None
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Open tickets from them: 2" in text
    assert f"#{results[0].ticket_id}" in text and "Invoices are wrong" in text


def test_a_message_failing_half_way_is_taken_again_alone(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its steps fail after its ticket, message and acknowledgment were built: the
    messages before it, not written yet, are taken again one at a time with it, and only
    it is quarantined."""
    # A mock: a bug in maild's own steps, which no mail can be made to cause.
    notify = apply_module._Apply._notify

    def failing(step: apply_module._Apply, *args: object, **kwargs: object) -> int:
        if step.mail.subject == "Question 2":
            raise RuntimeError("a bug in the notification")
        return notify(step, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(apply_module._Apply, "_notify", failing)
    results = _take(app, [_question(n) for n in range(4)])

    assert [r.outcome for r in results] == ["stored", "stored", "quarantined", "stored"]
    assert "a bug in the notification" in results[2].reason
    with app.db.transaction() as session:
        stored = session.scalars(select(Ticket.id).order_by(Ticket.id)).all()
        assert stored == [r.ticket_id for r in results if r.ticket_id is not None]
        assert session.scalar(select(Message).where(
            Message.message_id == "<q2@customer.example>")) is None
        assert session.scalar(select(func.count()).select_from(OutboxMail)) == 6
        assert session.scalars(select(QuarantinedMail.reason)).one() == results[2].reason


def test_a_later_sitting_sees_the_batch(app: App) -> None:
    """Nothing of a batch is left unwritten once it ends: the next batch finds it."""
    _take(app, [_question(1), _question(2)])
    app.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    [again] = _take(app, [_question(1)])
    assert again.outcome == "duplicate"


def test_a_database_lost_mid_batch_keeps_nothing_and_says_so(app: App) -> None:
    """The connection is cut while a message is looked up, its batch's rows unwritten:
    a temporary error, nothing of the batch committed, and the next batch takes the
    same mail in whole."""
    if not app.db.is_postgresql:
        pytest.skip("an SQLite connection cannot be cut from outside")
    mails = [_question(1), _question(2)]
    with pytest.raises(TemporaryError):
        with intake_batch(app.intake, "test") as batch:
            batch.ingest(mails[0])
            pid = batch.session.connection().exec_driver_sql(
                "SELECT pg_backend_pid()").scalar_one()
            with app.db.engine.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            with pytest.raises(TemporaryError, match="database unavailable"):
                batch.ingest(mails[1])
        # The batch ends as the IMAP reader ends one that met a temporary error: what it
        # took is to be written, and cannot be.

    assert [r.outcome for r in _take(app, mails)] == ["stored", "stored"]


def test_an_addresss_customer_is_asked_once_a_batch(app: App) -> None:
    """What a message may read, the ticket it opens and whether its sender is a colleague
    each need the sender's customer: asked of the database once an address a batch."""
    with statements(app.db.engine) as given:
        _take(app, [_question(1, "ann@customer.example"), _question(2, "bob@customer.example"),
                    make_mail("ann@customer.example", subject="Re: Question 1",
                              message_id="<r1@customer.example>",
                              in_reply_to="<q1@customer.example>")])

    asked = [parameters for statement, parameters in given
             if "FROM customer_contacts" in statement]
    assert len(asked) == 2, asked


def test_a_reply_counts_its_requesters_ticket_opened_earlier_in_the_batch(app: App) -> None:
    """Someone in copy answers a ticket while, earlier in the same batch, its requester
    opened another: the notification about the answer counts both of the requester's
    tickets, though the one answering has nothing to do with the new one."""
    [first] = _take(app, [make_mail("ann@customer.example", subject="Printer on fire",
                                    message_id="<fire@customer.example>",
                                    cc="carl@elsewhere.example")])
    results = _take(app, [
        make_mail("ann@customer.example", subject="Scanner jammed",
                  message_id="<jam@customer.example>"),
        make_mail("carl@elsewhere.example", subject="Re: Printer on fire",
                  message_id="<carl@elsewhere.example>",
                  in_reply_to="<fire@customer.example>", body="Still burning here."),
    ])

    assert results[1].ticket_id == first.ticket_id
    with app.db.transaction() as session:
        raw = session.scalars(
            select(OutboxMail.raw).where(OutboxMail.purpose == "notify",
                                         OutboxMail.ticket_id == first.ticket_id)
            .order_by(OutboxMail.id.desc())).first()
    assert raw is not None
    text = email.message_from_bytes(raw, policy=email.policy.default).get_body(
        ("plain",)).get_content()  # type: ignore[union-attr]
    assert "Open tickets from them: 2" in text
    assert "Scanner jammed" in text


def test_a_temporary_fault_while_messages_are_taken_again_commits_nothing(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message's steps fail, so the one before it, not written yet, is taken again, and
    that meets a temporary fault: it was rolled back and is not stored, so the batch
    must not commit as if it were (the IMAP reader would file it away as processed).
    The whole batch is left to be taken again."""
    # A mock: the attachment store refusing on the second try stands for a temporary
    # fault that comes just then (the disk filling as a message is taken again), a
    # moment a test cannot choose on a real disk.
    disk_full: list[bool] = []
    real_put = app.intake.attachment_store.put

    def put(data: bytes) -> str:
        if disk_full:
            raise TemporaryError("cannot store: No space left on device")
        return real_put(data)

    notify = apply_module._Apply._notify

    def failing(step: apply_module._Apply, *args: object, **kwargs: object) -> int:
        if step.mail.subject == "Question 2":
            disk_full.append(True)
            raise RuntimeError("a bug in the notification")
        return notify(step, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.intake.attachment_store, "put", put)
    monkeypatch.setattr(apply_module._Apply, "_notify", failing)
    with_log = EmailMessage()
    with_log["From"] = "ann@customer.example"
    with_log["To"] = "support@example.com"
    with_log["Subject"] = "Question 1"
    with_log["Message-ID"] = "<q1@customer.example>"
    with_log.set_content("The log is attached.")
    with_log.add_attachment(b"%PDF-1.4 a log", maintype="application", subtype="pdf",
                            filename="log.pdf")

    with pytest.raises(TemporaryError, match="left to be taken again"):
        with intake_batch(app.intake, "test") as batch:
            batch.ingest(with_log.as_bytes())
            with pytest.raises(TemporaryError, match="No space left"):
                batch.ingest(_question(2))

    with app.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxMail)) == 0
