"""Every mail maild writes, read from the bytes the sink received.

A conversation told through the command line (`maild ingest`, `maild run --once` at the
moments things fall due, `maild customers add --welcome`), on the test database: the
acknowledgment, the staff notification, the SLA warning, the relayed reply, both
nudges, the auto-solve notice, the survey and the welcome mail. Each must thread
(unencoded msg-ids, `[#N]`, In-Reply-To and References), keep every header line within
998 octets, and read back through `email.policy.default` as exactly what was meant.
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import Sink
from tests.helpers import maild
from tests.mailbuilder import make_mail, plain_text
from tests.test_headers import DERIVED, OUTLOOK_365, assert_well_formed

SUBJECT = "Größenänderung schlägt fehl ✉ — bitte helfen"
CUSTOMER = "Zoë Müller <zoe@customer.example>"
ENGINEER = "Dan Ångström <dan@example.com>"


@dataclass(frozen=True)
class Sent:
    raw: bytes
    mail: EmailMessage

    @property
    def to(self) -> str:
        return str(self.mail["Delivered-To"])


def sent(sink: Sink) -> list[Sent]:
    found = []
    for path in sink.files():
        raw = path.read_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(Sent(raw, parsed))
    return found


def run_at(config_file: Path, now: str) -> None:
    result = maild(config_file, "run", "--once", now=now)
    assert result.exit_code == 0, result.output


def ingest_at(config_file: Path, raw: bytes, now: str) -> None:
    result = maild(config_file, "ingest", "-", stdin=raw, now=now)
    assert result.exit_code == 0, result.output


def show(config_file: Path, ticket_id: int) -> dict[str, object]:
    result = maild(config_file, "tickets", "show", str(ticket_id), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert isinstance(shown, dict)
    return shown


def test_every_mail_of_a_conversation_threads_and_reads_back_exactly(
    config_file: Path, sink: Sink
) -> None:
    ingest_at(config_file, make_mail(sender=CUSTOMER, subject=SUBJECT, message_id=OUTLOOK_365),
              "2026-11-23T10:00:00-08:00")
    run_at(config_file, "2026-11-23T10:00:00-08:00")  # acknowledgment, notification
    run_at(config_file, "2026-11-23T10:46:00-08:00")  # our own target comes due: warning
    notice = next(s.mail for s in sent(sink) if s.to == "dan@example.com")
    ingest_at(config_file, make_mail(
        sender=ENGINEER, subject=f"Re: {notice['Subject']}", message_id="<dan.1@example.com>",
        in_reply_to=notice["Message-ID"],
        references=[*notice["References"].split(), notice["Message-ID"]],
        body="Bitte leeren Sie den Cache — danach geht es wieder.\n"),
        "2026-11-23T10:50:00-08:00")
    run_at(config_file, "2026-11-23T10:50:00-08:00")  # the relayed reply
    for now in ("2026-11-25T10:51:00-08:00", "2026-11-27T10:51:00-08:00",  # two nudges
                "2026-12-01T10:51:00-08:00"):  # auto-solved, asking how we did
        run_at(config_file, now)

    mails = sent(sink)
    to_customer = [s for s in mails if s.to == "zoe@customer.example"]
    to_staff = [s for s in mails if s.to == "dan@example.com"]
    assert [str(s.mail["Subject"]) for s in to_customer] == [
        f"Re: [#1] {SUBJECT}",  # acknowledgment
        f"Re: [#1] {SUBJECT}",  # the engineer's reply
        f"Re: [#1] {SUBJECT}", f"Re: [#1] {SUBJECT}",  # nudges
        f"Re: [#1] {SUBJECT}",  # solved for them, and how did we do: one mail
    ]
    assert [str(s.mail["Subject"]) for s in to_staff] == [
        f"[#1] {SUBJECT}", f"[#1] SLA due soon: {SUBJECT}"]
    ids = [str(s.mail["Message-ID"]) for s in mails]
    assert len(set(ids)) == len(ids)
    for each in mails:
        assert_well_formed(each.raw)
        # Every mail threads under the customer's first mail, whatever client they use.
        assert each.mail["In-Reply-To"] is not None
        assert each.mail["References"].split()[0] == OUTLOOK_365
    ack, relay = to_customer[0].mail, to_customer[1].mail
    assert ack["In-Reply-To"] == OUTLOOK_365
    assert relay["In-Reply-To"] == OUTLOOK_365  # the message the engineer answered
    assert relay["From"].addresses[0].display_name == "Dan Ångström"
    assert plain_text(relay).startswith("Bitte leeren Sie den Cache — danach geht es wieder.")
    assert plain_text(ack).startswith("Hello Zoë Müller,")


def test_the_acknowledgment_of_a_mail_without_message_id_threads(
    config_file: Path, sink: Sink
) -> None:
    """maild makes up an ID for it (<sha256@no-message-id.maild>, 88 characters)."""
    raw = make_mail(sender=CUSTOMER, subject=SUBJECT, message_id=None)
    ingest_at(config_file, raw, "2026-11-23T10:00:00-08:00")
    run_at(config_file, "2026-11-23T10:00:00-08:00")

    made_up = show(config_file, 1)["messages"][0]["message_id"]  # type: ignore[index]
    assert len(made_up) == len(DERIVED)
    for each in sent(sink):
        assert_well_formed(each.raw)
        assert each.mail["In-Reply-To"] == made_up
        assert each.mail["References"].split()[0] == made_up


def test_the_welcome_mail_is_well_formed(config_file: Path, sink: Sink) -> None:
    added = maild(config_file, "customers", "add", "Kältetechnik Müller Söhne",
                  "--domain", "customer.example", "--plan", "cloud",
                  "--contact", "zoe@customer.example", "--welcome")
    assert added.exit_code == 0, added.output
    run_at(config_file, "2026-11-23T10:00:00-08:00")

    [welcome] = sent(sink)
    assert_well_formed(welcome.raw)
    assert welcome.mail["Subject"] == "Welcome to Example Support, Kältetechnik Müller Söhne"
    assert welcome.mail["From"].addresses[0].display_name == "Example Support"
    assert welcome.mail["Message-ID"] is not None
    # It introduces the team, how to reach it and when, and promises only what maild does:
    # a customer's own "severity 1" is not taken at its word, the engineer sets it.
    text = " ".join(plain_text(welcome.mail).split())
    assert "We are the support engineers who help Kältetechnik Müller Söhne" in text
    assert "Write to support@example.com." in text
    assert ("Our support hours are Monday to Friday, 09:00 to 24:00 UTC; during them we aim "
            "to give a first answer within 1 business hour.") in text
    assert "The engineer who takes your ticket sets its severity." in text
    assert "we treat it so" not in text


def test_a_raw_latin1_subject_and_name_are_stored_and_quoted_as_written(
    config_file: Path, sink: Sink
) -> None:
    """An old client writes its headers in Latin-1, without RFC 2047."""
    raw = ("From: Zoë Müller <zoe@customer.example>\r\nTo: support@example.com\r\n"
           "Subject: Café crème: Größe ändern\r\nMessage-ID: <old.client@customer.example>\r\n"
           "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n\r\nHallo, es geht nicht.\r\n"
           ).encode("latin-1")
    ingest_at(config_file, raw, "2026-11-23T10:00:00-08:00")
    run_at(config_file, "2026-11-23T10:00:00-08:00")

    ticket = show(config_file, 1)
    assert ticket["subject"] == "Café crème: Größe ändern"
    assert ticket["messages"][0]["author_name"] == "Zoë Müller"  # type: ignore[index]
    ack = next(s for s in sent(sink) if s.to == "zoe@customer.example")
    notice = next(s for s in sent(sink) if s.to == "dan@example.com")
    assert ack.mail["Subject"] == "Re: [#1] Café crème: Größe ändern"
    assert plain_text(ack.mail).startswith("Hello Zoë Müller,")
    assert plain_text(notice.mail).startswith("New ticket from Zoë Müller <zoe@customer.example>:")
    for each in (ack, notice):
        assert_well_formed(each.raw)
        assert "\ufffd" not in plain_text(each.mail)
