"""Mail maild writes: what the customer's client sees, and how delivery copes with refusals."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import event, select

from maild.clock import FixedClock
from maild.config import Config
from maild.db.models import OutboxMail
from maild.db.raw_mail import IN_ROW_BYTES
from maild.intake.pipeline import ingest
from maild.mail.policy import MailPolicies
from maild.outbound.compose import (
    OutgoingAttachment,
    OutgoingMail,
    Party,
    render_copies,
    render_mail,
    tag_subject,
)
from maild.runtime.app import App, build_app
from maild.tickets.customers import add_customer
from tests.conftest import Sink, free_port
from tests.helpers import serving, show
from tests.mailbuilder import make_mail, plain_text


@pytest.fixture
def config(config: Config) -> Config:
    """Delivery mechanics with one mail per ticket: the SEs' notifications are off here,
    and so an SE's mail counts by its From (verify = "none"): with no notification to
    answer, an engineer could not prove themselves, and who is staff is not the point
    here (tests/security/ is where it is)."""
    return config.model_copy(update={"staff": config.staff.model_copy(
        update={"notify": False, "verify": "none"})})


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_rendered_mail_parses_back_identically() -> None:
    mail = OutgoingMail(
        sender=Party("support@example.com", "Zoë from Support"),
        to=[Party("ann@customer.example", "Ann Müller")],
        cc=[Party("bob@customer.example")],
        subject="Re: [#7] Größe der Datei – ✓ café",
        text="Hallo Ann,\n\nline with ünïcödé\n",
        html="<p>Hallo</p>",
        message_id="<maild.7.abc@example.com>",
        date=datetime(2026, 11, 23, 18, 0, tzinfo=UTC),
        in_reply_to="<first@customer.example>",
        references=["<first@customer.example>", "<ack@example.com>"],
        auto_submitted="auto-replied",
    )
    raw = render_mail(mail, MailPolicies().writing)
    raw.decode("ascii")  # 7-bit clean on the wire: encoded words and quoted-printable
    parsed = _parse(raw)

    assert parsed["Subject"] == mail.subject
    assert parsed["From"].addresses[0].display_name == "Zoë from Support"
    assert parsed["To"].addresses[0].display_name == "Ann Müller"
    assert parsed["Cc"].addresses[0].addr_spec == "bob@customer.example"
    assert parsed["Message-ID"] == "<maild.7.abc@example.com>"
    assert parsed["In-Reply-To"] == "<first@customer.example>"
    assert parsed["References"].split() == mail.references
    assert parsed["Date"].datetime == mail.date
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed.get_content_type() == "multipart/alternative"
    assert plain_text(parsed) == mail.text
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_each_copy_is_the_mail_rendered_for_its_own_message_id() -> None:
    """The engineers' copies of one mail to the team are built once: each must still be
    exactly what rendering it with that Message-ID alone writes."""
    mail = OutgoingMail(
        sender=Party("support@example.com", "Zoë from Support"),
        to=[Party("dan@example.com"), Party("eve@example.com", "Eve Ünal")],
        subject="[#7] Größe der Datei – ✓ café",
        text="Hallo,\n\nline with ünïcödé\n" * 40,
        html="<p>Hallo</p>",
        message_id="<unused@example.com>",
        date=datetime(2026, 11, 23, 18, 0, tzinfo=UTC),
        in_reply_to="<first@customer.example>",
        references=["<first@customer.example>", "<ack@example.com>"],
        auto_submitted="auto-generated",
        attachments=[OutgoingAttachment("Rechnung März.pdf", "application/pdf", b"%PDF" * 99)],
    )
    ids = ["<maild.7.t.dan@example.com>", "<maild.7.t.eve@example.com>"]
    policy = MailPolicies().writing

    copies = render_copies(mail, policy, ids)

    assert copies == [render_mail(replace(mail, message_id=i), policy) for i in ids]
    assert [_parse(raw)["Message-ID"] for raw in copies] == ids


def test_no_header_can_be_injected_through_a_subject_or_name() -> None:
    mail = OutgoingMail(
        sender=Party("support@example.com", "Support\r\nBcc: victim@evil.example"),
        to=[Party("ann@customer.example")],
        subject="Hello\r\nBcc: victim@evil.example",
        text="x\n", message_id="<m@example.com>", date=datetime(2026, 1, 1, tzinfo=UTC),
    )
    parsed = _parse(render_mail(mail, MailPolicies().writing))
    assert parsed["Bcc"] is None
    assert "\n" not in parsed["Subject"]


def test_subject_tag_is_added_once() -> None:
    assert tag_subject("Printer on fire", 7) == "[#7] Printer on fire"
    assert tag_subject("Re: AW: [#7] Printer", 7) == "Re: AW: [#7] Printer"
    assert tag_subject("RE: Printer", 7) == "[#7] Printer"


def test_acknowledgment_delivered_to_the_sink_threads_under_the_customer_mail(
    app: App, sink: Sink
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    report = app.sender.deliver_due()

    assert (report.sent, report.failed) == (1, 0)
    [ack] = sink.messages()
    assert ack["Subject"] == f"Re: [#{ticket_id}] Printer on fire"
    assert ack["In-Reply-To"] == "<first@customer.example>"
    assert ack["References"] == "<first@customer.example>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Message-ID"].endswith("@example.com>")
    assert ack["Date"] is not None
    assert ack["Delivered-To"] == "ann@customer.example"
    text = plain_text(ack)
    assert f"ticket #{ticket_id}" in text
    assert "When you will hear from us" in text
    assert "Monday 30 November, 10:00 PST" in text  # the first-response due time, local

    ticket = show(app, ticket_id)
    assert ticket["messages"][1]["delivery"]["status"] == "sent"
    assert any(e["kind"] == "delivered" for e in ticket["events"])


def test_recording_a_delivery_does_not_read_the_ticket_history(app: App, sink: Sink) -> None:
    """A long-running ticket has a long audit log; a delivery adds one line to it."""
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    statements: list[str] = []
    event.listen(app.db.engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    assert app.sender.deliver_due().sent == 1
    assert not [s for s in statements if s.lstrip().startswith("SELECT")
                and "FROM events" in s]
    assert [e["kind"] for e in show(app, ticket_id)["events"]][-1] == "delivered"


def test_relay_carries_the_se_name_and_the_thread(app: App, sink: Sink) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake,
        make_mail(sender="Dan Engineer <dan@example.com>", subject=f"Re: [#{ticket_id}]",
                  message_id="<dan@example.com>", in_reply_to="<first@customer.example>",
                  body="#priority p1\nUnplug it.\n"), "test")
    app.sender.deliver_due()

    relay = sink.messages()[-1]
    assert relay["From"].addresses[0].display_name == "Dan Engineer"
    assert relay["From"].addresses[0].addr_spec == "support@example.com"
    assert relay["Reply-To"] == "Example Support <support@example.com>"
    assert relay["Auto-Submitted"] is None
    ack_id = sink.messages()[0]["Message-ID"]
    assert relay["References"].split() == ["<first@customer.example>", ack_id]
    text = plain_text(relay)
    assert text.startswith("Unplug it.")
    assert "#priority" not in text
    assert "> It is on fire." in text


class _Refusing:
    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.attempts = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.attempts += 1
        return self.answer


@pytest.fixture
def refusing_relay(request: pytest.FixtureRequest) -> Iterator[tuple[int, _Refusing]]:
    handler = _Refusing(request.param)
    with serving(handler) as port:
        yield port, handler


def _app_with_relay(config: Config, clock: FixedClock, port: int) -> App:
    outbound = config.outbound.model_copy(update={"port": port, "max_attempts": 3})
    return build_app(config.model_copy(update={"outbound": outbound}), clock)


@pytest.mark.parametrize("refusing_relay", ["451 4.3.0 try later"], indirect=True)
def test_temporary_refusal_is_retried_with_backoff_then_fails_visibly(
    config: Config, clock: FixedClock, refusing_relay: tuple[int, _Refusing]
) -> None:
    port, relay = refusing_relay
    app = _app_with_relay(config, clock, port)
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    sender = app.sender

    assert sender.deliver_due().deferred == 1
    assert sender.deliver_due().attempted == 0  # not due again yet
    clock.advance(timedelta(minutes=1))
    assert sender.deliver_due().deferred == 1
    clock.advance(timedelta(minutes=2))
    assert sender.deliver_due().failed == 1

    assert relay.attempts == 3
    ticket = show(app, ticket_id)
    delivery = ticket["messages"][1]["delivery"]
    assert delivery["status"] == "failed"
    assert "451" in delivery["error"]
    assert any(e["kind"] == "delivery_failed" for e in ticket["events"])
    app.close()


@pytest.mark.parametrize("refusing_relay", ["550 5.1.1 no such user"], indirect=True)
def test_permanent_refusal_fails_at_once(
    config: Config, clock: FixedClock, refusing_relay: tuple[int, _Refusing]
) -> None:
    port, relay = refusing_relay
    app = _app_with_relay(config, clock, port)
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id

    assert app.sender.deliver_due().failed == 1
    assert relay.attempts == 1
    assert "550" in show(app, ticket_id)["messages"][1]["delivery"]["error"]
    app.close()


def test_relay_down_defers_and_delivers_when_it_is_back(
    config: Config, clock: FixedClock, sink: Sink
) -> None:
    app = _app_with_relay(config, clock, free_port())  # nothing listens there
    ingest(app.intake, make_mail(), "test")
    assert app.sender.deliver_due().deferred == 1

    back = _app_with_relay(config, clock, sink.port)
    clock.advance(timedelta(minutes=1))
    assert back.sender.deliver_due().sent == 1
    assert len(sink.files()) == 1
    app.close()
    back.close()


def test_welcome_mail_is_sent_exactly_once(app: App, sink: Sink) -> None:
    for _ in range(2):
        with app.db.transaction() as session:
            add_customer(app.mails, session, "Customer Inc", domains=["customer.example"],
                         tier="team", plan="cloud", contacts=["Lead@Customer.example"],
                         welcome=True)
    app.sender.deliver_due()

    [welcome] = sink.messages()
    assert welcome["To"] == "lead@customer.example"
    assert welcome["Subject"] == "Welcome to Example Support, Customer Inc"
    assert welcome["Auto-Submitted"] == "auto-generated"
    assert "customer.example" in plain_text(welcome)


def _large_relay(app: App) -> tuple[int, bytes]:
    """A ticket whose SE reply carries an attachment too large for an outbox row."""
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    assert ticket_id is not None
    report = bytes(range(256)) * (IN_ROW_BYTES // 256 + 1)
    reply = email.message_from_bytes(
        make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                  message_id="<dan-big@example.com>", in_reply_to="<first@customer.example>",
                  body="The full log is attached.\n"), policy=email.policy.SMTP)
    assert isinstance(reply, EmailMessage)
    reply.add_attachment(report, maintype="application", subtype="octet-stream",
                         filename="full.log")
    ingest(app.intake, reply.as_bytes(), "test")
    return ticket_id, report


def test_small_mail_is_kept_in_its_row_and_large_mail_in_the_raw_store(
    app: App, sink: Sink
) -> None:
    _, report = _large_relay(app)
    with app.db.transaction() as session:
        rows = {r.purpose: (r.raw, r.raw_sha256, r.message_id)
                for r in session.scalars(select(OutboxMail))}
    assert set(rows) == {"ack", "reply"}
    ack_raw, ack_file, ack_id = rows["ack"]
    assert ack_raw is not None and ack_file is None
    relay_raw, relay_file, relay_id = rows["reply"]
    assert relay_raw is None and relay_file is not None
    assert len(app.raw_store.get(relay_file)) > IN_ROW_BYTES

    assert app.sender.deliver_due().sent == 2

    assert [f for f in sink.files() if f.read_bytes().endswith(ack_raw)]
    sent = {str(m["Message-ID"]): m for m in sink.messages()}
    assert set(sent) == {ack_id, relay_id}
    [attached] = list(sent[relay_id].iter_attachments())
    assert attached.get_content() == report


def test_mail_whose_raw_file_is_gone_fails_at_once_and_says_why(app: App, sink: Sink) -> None:
    ticket_id, _ = _large_relay(app)
    with app.db.transaction() as session:
        row = session.scalars(select(OutboxMail).where(OutboxMail.purpose == "reply")).one()
        assert row.raw_sha256 is not None
        app.raw_store.path_for(row.raw_sha256).unlink()  # e.g. a partial restore of a backup

    report = app.sender.deliver_due()

    assert (report.sent, report.failed, report.deferred) == (1, 1, 0)  # the ack went
    [relay] = [m for m in show(app, ticket_id)["messages"] if m["direction"] == "out"
               and m["kind"] == "public"]
    assert relay["delivery"]["status"] == "failed"
    assert "missing from storage" in relay["delivery"]["error"]
    assert [f for f in sink.files() if b"full.log" in f.read_bytes()] == []


class _ClosesAfterFirstMail:
    """A relay that answers the first message with 421 and hangs up, then accepts."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.refused_once = False

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if not self.refused_once:
            self.refused_once = True
            return "421 4.3.2 Service shutting down, closing channel"
        self.accepted.extend(envelope.rcpt_tos)
        return "250 OK"


def test_relay_hanging_up_mid_batch_is_reconnected_for_the_rest(
    config: Config, clock: FixedClock
) -> None:
    relay = _ClosesAfterFirstMail()
    with serving(relay) as port:
        app = _app_with_relay(config, clock, port)
        try:
            for n in range(3):
                ingest(app.intake, make_mail(sender=f"c{n}@customer.example",
                                             message_id=f"<m{n}@customer.example>"), "test")
            report = app.sender.deliver_due()
        finally:
            app.close()

    assert (report.sent, report.deferred, report.failed) == (2, 1, 0)
    assert sorted(relay.accepted) == ["c1@customer.example", "c2@customer.example"]
