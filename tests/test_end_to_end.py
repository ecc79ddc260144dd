"""The whole customer loop against a running daemon: real processes, real SMTP, real files.

Results are read only the way a user reads them: the sink's .eml files and
`maild tickets show --json`. Waiting polls for the awaited file or state with a
deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import config_text, free_port
from tests.mailbuilder import make_mail, plain_text, read_eml
from tests.test_attachments import PDF, with_attachment
from tests.test_bounces import postfix
from tests.waiting import wait_for

MAILD = [sys.executable, "-m", "maild"]
MAX_MESSAGE_BYTES = 1_000_000
NOW = "2026-11-23T10:00:00-08:00"


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Desk:
    def __init__(self, tmp_path: Path, database_url: str, staff_extra: str = "") -> None:
        self.inbound_port = free_port()
        self.sink_port = free_port()
        self.sink_dir = tmp_path / "sink"
        self.config = tmp_path / "maild.toml"
        self.config.write_text(config_text(
            database_url, tmp_path / "storage", self.sink_port,
            extra=f"[inbound_smtp]\nenabled = true\nport = {self.inbound_port}\n"
                  f"max_message_bytes = {MAX_MESSAGE_BYTES}\n",
            staff_extra=staff_extra,
        ))
        self.database_url = database_url
        self.env = {**os.environ, "MAILD_NOW": NOW}
        self.log = tmp_path / "maild.log"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.processes.append(subprocess.Popen(
            [*MAILD, "sink", "--port", str(self.sink_port), "--dir", str(self.sink_dir)],
            env=self.env, stderr=subprocess.DEVNULL))
        with open(self.log, "wb") as log:
            self.daemon = subprocess.Popen([*MAILD, "--config", str(self.config), "run"],
                                           env=self.env, stderr=log)
        self.processes.append(self.daemon)
        wait_for(lambda: port_open(self.sink_port), "the sink to listen")
        wait_for(lambda: port_open(self.inbound_port), "the daemon to listen")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> None:
        with smtplib.SMTP("127.0.0.1", self.inbound_port, timeout=10) as client:
            client.sendmail(sender, recipients, raw)

    def sink_mail(self, to: str) -> list[EmailMessage]:
        mails = [read_eml(p) for p in sorted(self.sink_dir.glob("*.eml"))]
        return [m for m in mails if m["Delivered-To"] == to]

    def wait_for_mail(self, count: int, to: str) -> list[EmailMessage]:
        return wait_for(lambda: (m := self.sink_mail(to)) and len(m) >= count and m,
                        f"{count} mails to {to} in the sink")

    def show(self, ticket_id: int) -> dict[str, Any]:
        result = subprocess.run(
            [*MAILD, "--config", str(self.config), "tickets", "show", str(ticket_id), "--json"],
            env=self.env, capture_output=True, check=True)
        return json.loads(result.stdout)


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    running = Desk(tmp_path, database_url)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_the_customer_loop(desk: Desk) -> None:
    customer = "ann@customer.example"
    desk.send(make_mail(), customer, ["support@example.com"])

    [ack] = desk.wait_for_mail(1, to=customer)
    assert ack["Subject"] == "Re: [#1] Printer on fire"
    assert ack["In-Reply-To"] == "<first@customer.example>"
    assert ack["Delivered-To"] == customer
    assert "Monday 30 November, 10:00 PST" in plain_text(ack)
    ticket = desk.show(1)
    assert ticket["status"] == "new"
    assert ticket["messages"][1]["delivery"]["status"] == "sent"
    # The SE on the staff list is told, in the ticket's thread.
    [notice] = desk.wait_for_mail(1, to="dan@example.com")
    assert notice["Subject"] == "[#1] Printer on fire"
    assert notice["In-Reply-To"] == "<first@customer.example>"
    assert notice["Reply-To"] == "Example Support <support@example.com>"
    assert plain_text(notice).startswith(
        "New ticket from Ann Customer <ann@customer.example>:\n\nIt is on fire.\n")

    # The customer answers the acknowledgment: threaded by its headers.
    desk.send(make_mail(subject="Re: [#1] Printer on fire", message_id="<c2@customer.example>",
                        in_reply_to=ack["Message-ID"],
                        references=["<first@customer.example>", ack["Message-ID"]],
                        body="It smells of smoke, too.\n\nOn Mon, Support wrote:\n> Hello\n"),
              customer, ["support@example.com"])
    wait_for(lambda: desk.show(1)["status"] == "open", "the ticket to open")
    assert desk.show(1)["messages"][-1]["body"] == "It smells of smoke, too."

    # A new mail with only the tag, from the same address: the same ticket.
    desk.send(make_mail(subject="[#1] one more thing", message_id="<c3@customer.example>",
                        body="Model XR-7.\n"), customer, ["support@example.com"])
    wait_for(lambda: len(desk.show(1)["messages"]) == 4, "the tagged mail on ticket 1")

    # The same Message-ID delivered again changes nothing.
    desk.send(make_mail(subject="[#1] one more thing", message_id="<c3@customer.example>",
                        body="Model XR-7.\n"), customer, ["support@example.com"])

    # Each reply was passed on to the SE; he answers the last notification.
    notices = desk.wait_for_mail(3, to="dan@example.com")
    assert plain_text(notices[-1]).startswith(
        "Ann Customer <ann@customer.example> replied:\n\nModel XR-7.\n")
    desk.send(make_mail(sender="Dan Engineer <dan@example.com>",
                        subject="Re: [#1] Printer on fire", message_id="<dan1@example.com>",
                        in_reply_to=notices[-1]["Message-ID"],
                        body="Unplug it and send me a photo of the label.\n\n"
                             "On Mon, Example Support wrote:\n> Model XR-7.\n"),
              "dan@example.com", ["support@example.com"])
    relay = desk.wait_for_mail(2, to=customer)[-1]
    assert relay["From"].addresses[0].addr_spec == "support@example.com"
    assert relay["From"].addresses[0].display_name == "Dan Engineer"
    assert relay["Delivered-To"] == customer
    assert relay["Subject"] == "Re: [#1] Printer on fire"
    assert plain_text(relay).startswith("Unplug it and send me a photo of the label.")
    assert ack["Message-ID"] in relay["References"].split()

    ticket = wait_for(lambda: (t := desk.show(1))["status"] == "pending" and t,
                      "the ticket to be pending")
    assert ticket["first_response_at"] == "2026-11-23T18:00:00+00:00"
    assert ticket["assignee"] == "dan@example.com"
    assert [m["message_id"] for m in ticket["messages"]].count("<c3@customer.example>") == 1
    assert [(m["direction"], m["kind"]) for m in ticket["messages"]] == [
        ("in", "public"), ("out", "system"), ("in", "public"), ("in", "public"),
        ("out", "public"),
    ]

    desk.daemon.send_signal(signal.SIGTERM)
    assert desk.daemon.wait(timeout=20) == 0
    assert b"maild stopped" in desk.log.read_bytes()


HOSTILE: dict[str, bytes] = {
    "loop from our own address": make_mail(sender="support@example.com",
                                           message_id="<loop@example.com>"),
    "bounce of mail we never sent": (
        b"From: MAILER-DAEMON@mx.elsewhere.example\r\nTo: support@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b@mx.example>\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=X\r\n\r\n"
        b"--X\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Final-Recipient: rfc822; a@b.example\r\nAction: failed\r\n\r\n--X--\r\n"),
    "auto-reply to nothing": make_mail(message_id="<ooo@customer.example>",
                                       headers={"Auto-Submitted": "auto-replied"}),
    "no From at all": b"Subject: who am I\r\nMessage-ID: <nofrom@x.example>\r\n\r\nhi\r\n",
    "header injection": make_mail(subject="x", message_id="<inj@customer.example>").replace(
        b"Subject: x", b"Subject: =?utf-8?q?Hi=0D=0ABcc=3A_victim=40evil=2Eexample?="),
    "raw 8-bit and NUL": (b"From: J\xfcrgen <j@customer.example>\r\nTo: support@example.com"
                          b"\r\nSubject: caf\xe9\x00\r\nMessage-ID: <8bit@customer.example>"
                          b"\r\n\r\nK\xf6ln\x00\r\n"),
    "broken base64 in a missing boundary": (
        b"From: m@customer.example\r\nTo: support@example.com\r\nSubject: broken\r\n"
        b"Message-ID: <mime@customer.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=NOPE\r\n\r\n--ELSE\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"),
    "deep nesting": make_mail(message_id="<deep@customer.example>").replace(
        b"\r\n\r\n", b"\r\n\r\n" + b"".join(
            b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (n, n + 1)
            for n in range(60)), 1),
}


def test_hostile_mail_is_stored_or_quarantined_and_the_daemon_goes_on(desk: Desk) -> None:
    for raw in HOSTILE.values():
        desk.send(raw, "someone@elsewhere.example", ["support@example.com"])
    with pytest.raises(smtplib.SMTPResponseException) as too_big:
        desk.send(make_mail(body="x" * (MAX_MESSAGE_BYTES + 1000)),
                  "big@customer.example", ["support@example.com"])
    assert too_big.value.smtp_code == 552  # refused in the dialogue: the sender keeps it

    assert desk.daemon.poll() is None
    desk.send(make_mail(sender="after@customer.example", message_id="<after@customer.example>",
                        subject="After the storm"), "after@customer.example",
              ["support@example.com"])
    [ack] = desk.wait_for_mail(1, to="after@customer.example")
    assert "After the storm" in ack["Subject"]

    # Every message that was accepted ended as a stored message or in the quarantine.
    engine = create_engine(desk.database_url)
    with engine.connect() as connection:
        stored = connection.execute(text(
            "SELECT count(*) FROM messages WHERE direction = 'in'")).scalar_one()
        held = connection.execute(text("SELECT count(*) FROM quarantine")).scalar_one()
        eight_bit = connection.execute(text(
            "SELECT body FROM messages WHERE message_id = '<8bit@customer.example>'"
        )).scalar_one()
    engine.dispose()
    assert eight_bit == "Köln"
    assert stored + held == len(HOSTILE) + 1
    # Set aside: the loop, the stray bounce, the stray auto-reply, the missing From. The
    # rest became tickets, their text kept ("Köln" decoded, NUL dropped).
    assert (stored, held) == (5, 4)


def test_attachments_outlook_replies_and_bounces_through_the_running_daemon(desk: Desk) -> None:
    customer = "ann@customer.example"
    desk.send(make_mail(), customer, ["support@example.com"])
    [ack] = desk.wait_for_mail(1, to=customer)

    # Outlook through a gateway: only "RE: [#1]" ties the reply to its ticket.
    desk.send(make_mail(subject="RE: [#1] Printer on fire", message_id="<ol@customer.example>",
                        body="Here is more.\n\n________________________________\n"
                             "From: Example Support <support@example.com>\n"
                             "Sent: Monday, November 23, 2026 10:00 AM\n"),
              customer, ["support@example.com"])
    wait_for(lambda: desk.show(1)["messages"][-1]["body"] == "Here is more.",
             "the Outlook reply on ticket 1")

    # The SE answers the notification with a report attached; it reaches the customer.
    notice = desk.wait_for_mail(2, to="dan@example.com")[-1]
    desk.send(with_attachment(
        make_mail(sender="Dan Engineer <dan@example.com>", subject=f"Re: {notice['Subject']}",
                  message_id="<dan-pdf@example.com>", in_reply_to=notice["Message-ID"],
                  body="The report is attached.\n"),
        PDF, "Prüfbericht.pdf"), "dan@example.com", ["support@example.com"])
    relay = desk.wait_for_mail(2, to=customer)[-1]
    [attached] = list(relay.iter_attachments())
    assert (attached.get_filename(), attached.get_content()) == ("Prüfbericht.pdf", PDF)

    # The customer's server bounces the relay: the ticket shows that delivery failed.
    desk.send(postfix(relay["Message-ID"]), "", ["support@example.com"])
    wait_for(lambda: desk.show(1)["messages"][-2]["delivery"]["status"] == "failed",
             "the relay's delivery to be marked failed")
    ticket = desk.show(1)
    assert ticket["status"] == "pending"  # the bounce reopened nothing
    assert ticket["messages"][-1]["kind"] == "internal"


def test_mail_in_an_se_s_name_that_fails_the_check_changes_nothing(
    tmp_path: Path, database_url: str
) -> None:
    desk = Desk(tmp_path, database_url, staff_extra=(
        'verify = "authentication-results"\ntrusted_authserv_ids = ["mx.example.com"]'))
    desk.start()
    try:
        customer = "ann@customer.example"
        desk.send(make_mail(), customer, ["support@example.com"])
        [ack] = desk.wait_for_mail(1, to=customer)
        verdict = "mx.example.com; dkim=none; spf=fail smtp.mailfrom=evil.example"
        forged = make_mail(sender="Dan Engineer <dan@example.com>",
                           subject="Re: [#1] Printer on fire", message_id="<forged@evil.example>",
                           in_reply_to=ack["Message-ID"], body="#solve\nAll done, bye.\n",
                           headers={"Authentication-Results": verdict})
        desk.send(forged, "dan@example.com", ["support@example.com"])

        caution = wait_for(
            lambda: [m for m in desk.sink_mail("dan@example.com")
                     if "handled as a customer's" in m["Subject"]],
            "the notice to the SE whose name was used")
        assert "Its commands were not run:\n  #solve\n" in plain_text(caution[0])
        assert plain_text(caution[0]).endswith("What it said:\n\n#solve\nAll done, bye.\n")
        ticket = desk.show(1)
        assert ticket["status"] == "open"  # the forged #solve did nothing
        assert [e["kind"] for e in ticket["events"]].count("staff_unverified") == 1
        assert len(desk.sink_mail(customer)) == 1  # nothing was relayed to the customer
    finally:
        desk.stop()
