"""A poison References header, and a database that refuses one mail: each fails alone,
never as an outage that answers "try later" for ever."""

from __future__ import annotations

import smtplib
import time

import pytest
from sqlalchemy import select, text

from maild.channels.smtp_listener import SmtpListener
from maild.clock import FixedClock
from maild.config import Config
from maild.db.models import QuarantinedMail
from maild.errors import TemporaryError
from maild.intake.pipeline import IngestResult, ingest, intake_batch
from maild.mail.message_id import REFERENCES_READ
from maild.runtime.app import App, build_app
from tests.conftest import free_port, using_postgresql
from tests.helpers import refusing_messages, show
from tests.mailbuilder import make_mail

IDS = 130_000


def poison(known: str | None, at: int, message_id: str = "<poison@customer.example>",
           subject: str = "Re: Printer on fire") -> bytes:
    """A customer's mail whose References name 130,000 Message-IDs (1.7 MB), `known` at
    position `at` among them (negative: from the end)."""
    ids = [f"<{number:x}@p.example>" for number in range(IDS)]
    if known is not None:
        ids[at] = known
    references = "\r\n ".join(ids)
    return (f"From: Ann Customer <ann@customer.example>\r\nTo: support@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 -0800\r\nReferences: {references}\r\n"
            f"\r\nStill on fire.\r\n").encode()


def _first_ticket(app: App) -> tuple[int, str]:
    result = ingest(app.intake, make_mail(), "smtp")
    assert result.outcome == "stored" and result.ticket_id is not None
    return result.ticket_id, "<first@customer.example>"


@pytest.mark.parametrize("at", [-1, -(REFERENCES_READ - 1), 0])
def test_poison_references_thread_to_the_ticket_they_name(app: App, at: int) -> None:
    """Among the latest IDs, or the first one: kept, and the mail lands on its ticket."""
    ticket_id, first = _first_ticket(app)
    started = time.monotonic()
    result = ingest(app.intake, poison(first, at), "smtp")
    took = time.monotonic() - started
    assert (result.outcome, result.ticket_id) == ("stored", ticket_id), result.reason
    assert [m["body"] for m in show(app, ticket_id)["messages"] if m["direction"] == "in"] \
        == ["It is on fire.", "Still on fire."]
    assert took < 10, f"the poison mail took {took:.1f} s"


def test_an_id_trimmed_from_the_middle_threads_nowhere(app: App) -> None:
    """RFC 5322 lets a reader trim References: an ID deep in the middle is not read, and
    the mail is a new conversation, acknowledged like any."""
    ticket_id, first = _first_ticket(app)
    # Another subject: the requester's own "Re:" of the same one would join by rule 4.
    result = ingest(app.intake, poison(first, IDS // 2, subject="Re: The fire, again"),
                    "smtp")
    assert result.outcome == "stored"
    assert result.ticket_id != ticket_id


def test_poison_mail_over_smtp_is_accepted_not_deferred(config: Config, clock: FixedClock
                                                        ) -> None:
    """The listener answers 250, not 451: the mail is kept, on the ticket it names."""
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={"enabled": True, "port": port})
    app = build_app(config.model_copy(update={"inbound_smtp": inbound}), clock)
    results: list[IngestResult] = []
    listener = SmtpListener(app.intake, app.config.inbound_smtp, results.append)
    listener.start()
    try:
        ticket_id, first = _first_ticket(app)
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            refused = client.sendmail("ann@customer.example", ["support@example.com"],
                                      poison(first, -3))
        assert refused == {}
        assert [(r.outcome, r.ticket_id) for r in results] == [("stored", ticket_id)]
    finally:
        listener.stop()
        app.close()


# --- a database that refuses one mail ----------------------------------------------------

REFUSED_SUBJECT = "refuse me"


@pytest.fixture
def refusing(app: App) -> App:
    """The database itself refuses any message with REFUSED_SUBJECT, as it would refuse a
    value it cannot hold."""
    return refusing_messages(app, f"NEW.subject = '{REFUSED_SUBJECT}'", "row is too big",
                             "54000")


def test_a_mail_the_database_refuses_is_quarantined_alone(refusing: App) -> None:
    app = refusing
    with intake_batch(app.intake, "imap", None) as batch:
        batch.ingest(make_mail(message_id="<before@customer.example>",
                               subject="Printer on fire"))
        batch.ingest(make_mail(message_id="<refused@customer.example>",
                               subject=REFUSED_SUBJECT))
        batch.ingest(make_mail(message_id="<after@customer.example>",
                               subject="Scanner on fire"))
    before, refused, after = batch.results  # refused as the batch is written
    assert [before.outcome, refused.outcome, after.outcome] == \
        ["stored", "quarantined", "stored"]
    assert refused.reason.startswith("refused by the database:")
    assert "row is too big" in refused.reason
    with app.db.transaction() as session:
        held = session.scalars(select(QuarantinedMail.reason)).all()
    assert held == [refused.reason]
    assert show(app, after.ticket_id or 0)["subject"] == "Scanner on fire"


@pytest.mark.skipif(not using_postgresql(), reason="a full disk is raised by PostgreSQL")
def test_a_full_disk_is_an_outage_not_the_mails_fault(app: App) -> None:
    with app.db.engine.begin() as connection:
        connection.execute(text(
            "CREATE FUNCTION full_disk() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION "
            "'could not extend file' USING ERRCODE = '53100'; END $$ LANGUAGE plpgsql"))
        connection.execute(text("CREATE TRIGGER full_disk BEFORE INSERT ON messages "
                                "FOR EACH ROW EXECUTE FUNCTION full_disk()"))
    with pytest.raises(TemporaryError, match="database unavailable"):
        ingest(app.intake, make_mail(), "smtp")
    with app.db.transaction() as session:
        assert session.scalars(select(QuarantinedMail)).all() == []


def test_a_bounce_returning_endless_message_ids_finds_the_mail_that_bounced(app: App) -> None:
    """A report whose returned headers name ours first, then more IDs than the database
    takes in one query: the first few are read."""
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    app.sender.deliver_due()
    ack = show(app, ticket_id or 0)["messages"][1]["delivery"]
    over_the_limit = 70_000 if using_postgresql() else 260_000  # 65,535 and 250,000
    junk = "".join(f"Message-ID: <{n:x}@p.example>\r\n" for n in range(over_the_limit))
    report = (
        "From: MAILER-DAEMON@mx.customer.example\r\nTo: support@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce@mx.customer.example>\r\nReturn-Path: <>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Your message could not be delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
        "Final-Recipient: rfc822; ann@customer.example\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {ack['message_id']}\r\n{junk}From: support@example.com\r\n\r\n"
        "--B--\r\n").encode()
    result = ingest(app.intake, report, "test")
    assert (result.outcome, result.ticket_id) == ("stored", ticket_id), result.reason
    assert show(app, ticket_id or 0)["messages"][1]["delivery"]["status"] == "failed"
