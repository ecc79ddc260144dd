"""The inbound listener answers 250 only for what it has kept, and 451 when it could not."""

from __future__ import annotations

import smtplib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from maild.channels.smtp_listener import SmtpListener
from maild.clock import FixedClock
from maild.config import Config
from maild.intake.pipeline import IngestResult
from maild.runtime.app import App, build_app
from tests.conftest import Sink, free_port, using_postgresql
from tests.helpers import show
from tests.mailbuilder import make_mail


@dataclass
class Listening:
    app: App
    port: int
    listener: SmtpListener
    results: list[IngestResult] = field(default_factory=list)

    def send(self, raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail("ann@customer.example", ["support@example.com"], raw)


@pytest.fixture
def listening(config: Config, clock: FixedClock) -> Iterator[Listening]:
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={"enabled": True, "port": port})
    app = build_app(config.model_copy(update={"inbound_smtp": inbound}), clock)
    results: list[IngestResult] = []
    listener = SmtpListener(app.intake, app.config.inbound_smtp, results.append)
    listener.start()
    try:
        yield Listening(app, port, listener, results)
    finally:
        listener.stop()
        app.close()


def test_accepted_mail_is_already_a_ticket(listening: Listening) -> None:
    listening.send(make_mail())
    assert [r.outcome for r in listening.results] == ["stored"]
    assert show(listening.app, listening.results[0].ticket_id)["status"] == "new"


def test_quarantined_mail_is_accepted_and_kept(listening: Listening) -> None:
    listening.send(make_mail(sender="not-an-address"))
    assert [r.outcome for r in listening.results] == ["quarantined"]


def test_mail_that_cannot_be_kept_gets_451(listening: Listening) -> None:
    # The raw store's place is taken by a file: storing fails as a full disk would.
    listening.app.raw_store.directory.write_text("not a directory")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        listening.send(make_mail())
    assert refused.value.smtp_code == 451
    assert listening.results == []


def _stall_the_database(app: App) -> Any:
    """Hold a lock that makes the intake wait: SQLite's write lock, or a table lock."""
    if using_postgresql():
        connection = app.db.engine.raw_connection()
        connection.cursor().execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        return connection
    database = app.db.engine.url.database
    assert database is not None
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_stopping_finishes_the_message_in_hand(listening: Listening) -> None:
    blocker = _stall_the_database(listening.app)
    sender = threading.Thread(target=listening.send, args=(make_mail(),))
    sender.start()
    deadline = time.monotonic() + 10
    while not listening.app.raw_store.directory.exists():  # raw is kept before the database
        assert time.monotonic() < deadline, "the message never reached the intake"
        time.sleep(0.01)

    stopping = threading.Thread(target=listening.listener.stop)
    stopping.start()
    stopping.join(timeout=0.5)
    assert stopping.is_alive(), "stop() returned while a message was being stored"
    blocker.rollback()
    blocker.close()
    stopping.join(timeout=20)
    sender.join(timeout=20)

    assert [r.outcome for r in listening.results] == ["stored"]
    assert show(listening.app, 1)["messages"][0]["body"] == "It is on fire."


def test_mail_for_another_of_our_addresses_is_answered_from_it(
        config: Config, clock: FixedClock, sink: Sink) -> None:
    """feedback@ taken by the listener: its mail, written to it or Bcc'd to it, is
    answered from feedback@, which is ours, so never a third party in Cc."""
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={
        "enabled": True, "port": port, "addresses": ["feedback@example.com"]})
    app = build_app(config.model_copy(update={"inbound_smtp": inbound}), clock)
    listener = SmtpListener(app.intake, app.config.inbound_smtp, lambda _: None)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.sendmail("ann@customer.example", ["feedback@example.com"], make_mail(
                to="Feedback <feedback@example.com>", message_id="<to@customer.example>"))
            client.sendmail("bob@customer.example", ["feedback@example.com"], make_mail(
                sender="bob@customer.example", to="carol@customer.example",
                subject="Bcc'd", message_id="<bcc@customer.example>"))
            client.sendmail("dee@customer.example", ["support@example.com"], make_mail(
                sender="dee@customer.example", subject="To support",
                message_id="<support@customer.example>"))
        app.sender.deliver_due()
    finally:
        listener.stop()
        app.close()
    acks = {m["Delivered-To"]: m for m in sink.messages()
            if m["Delivered-To"].endswith("@customer.example")}
    for customer in ("ann@customer.example", "bob@customer.example"):
        ack = acks[customer]
        assert ack["From"].addresses[0].addr_spec == "feedback@example.com"
        copied = [a.addr_spec for name in ("To", "Cc") if ack[name]
                  for a in ack[name].addresses]
        assert "feedback@example.com" not in copied
        assert customer in copied
    assert acks["dee@customer.example"]["From"].addresses[0].addr_spec == "support@example.com"
