"""A sender's connections to the relay ([outbound] connections): the mails of a claim go
side by side, over no more connections than configured, and a sender told to stop
finishes those in the relay's hands and frees the rest. The relays are real (aiosmtpd);
two senders are two `Sender`s of the composition root, as two processes would be.

How many unrecorded mails a killed sender leaves to be sent twice, with several
connections, is tests/test_outbox_senders.py's (real processes, a real kill).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes
from typing import Any

import pytest
from sqlalchemy import event, select

from maild.config import Config
from maild.db.models import OutboxMail
from maild.intake.pipeline import ingest
from maild.outbound.claims import CLAIM_BATCH
from maild.outbound.sender import DeliveryReport, Sender
from maild.runtime.app import App
from tests.conftest import Sink
from tests.helpers import serving
from tests.mailbuilder import make_mail
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_for


@pytest.fixture
def config(config: Config) -> Config:
    """One mail per ticket: the engineers' notifications of new tickets are off."""
    return config.model_copy(update={"staff": config.staff.model_copy(
        update={"notify": False})})


def _customers(app: App, count: int) -> None:
    """`count` new tickets, each with its acknowledgment in the outbox."""
    for n in range(count):
        ingest(app.intake, make_mail(sender=f"c{n}@customer.example",
                                     message_id=f"<q{n}@customer.example>"), "test")


class HoldingRelay:
    """Holds the answer to every DATA until `release` is set, counting the mails it holds
    at once and the SMTP sessions they came over."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.accepted: list[str] = []
        self.holding = 0
        self.most_at_once = 0
        self.sessions: set[int] = set()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        with self._lock:
            self.holding += 1
            self.most_at_once = max(self.most_at_once, self.holding)
            self.sessions.add(id(session))
        while not self.release.is_set():
            await asyncio.sleep(0.02)
        with self._lock:
            self.holding -= 1
            self.accepted.append(str(message_from_bytes(envelope.content)["Message-ID"]))
        return "250 OK"

    def held(self) -> int:
        with self._lock:
            return self.holding


@pytest.fixture
def relay() -> Iterator[tuple[HoldingRelay, int]]:
    handler = HoldingRelay()
    with serving(handler) as port:
        try:
            yield handler, port
        finally:
            handler.release.set()


def _sender(app: App, app_with: Callable[..., App], port: int, connections: int) -> Sender:
    return app_with(outbound=app.config.outbound.model_copy(
        update={"port": port, "connections": connections})).sender


def _in_the_background(sender: Sender, stop: threading.Event | None = None
                       ) -> tuple[threading.Thread, list[DeliveryReport]]:
    reports: list[DeliveryReport] = []
    thread = threading.Thread(
        target=lambda: reports.append(sender.deliver_due(limit=None, stop=stop)))
    thread.start()
    return thread, reports


def _rows(app: App) -> list[tuple[str, str | None, int]]:
    with app.db.transaction() as session:
        return [(row.status, row.owner, row.attempts)
                for row in session.scalars(select(OutboxMail).order_by(OutboxMail.id))]


@pytest.mark.parametrize("connections", [1, 3])
def test_a_claims_mails_go_to_the_relay_over_as_many_connections_at_once(
    app: App, app_with: Callable[..., App], relay: tuple[HoldingRelay, int],
    connections: int,
) -> None:
    handler, port = relay
    _customers(app, CLAIM_BATCH + 2)
    sender = _sender(app, app_with, port, connections)
    thread, reports = _in_the_background(sender)
    try:
        # The relay answers nothing until the sender has this many mails in its hands.
        wait_for(lambda: handler.held() == connections,
                 f"{connections} mails in the relay's hands at once")
    finally:
        handler.release.set()
        thread.join(timeout=30)

    assert reports == [DeliveryReport(sent=CLAIM_BATCH + 2)]
    assert handler.most_at_once == connections
    assert len(handler.sessions) == connections
    assert sorted(handler.accepted) == sorted(_message_ids(app))
    assert {status for status, _, _ in _rows(app)} == {"sent"}


def _message_ids(app: App) -> list[str]:
    with app.db.transaction() as session:
        return list(session.scalars(select(OutboxMail.message_id)))


def test_a_sender_told_to_stop_finishes_the_mails_in_the_relays_hands_and_frees_the_rest(
    app: App, app_with: Callable[..., App], relay: tuple[HoldingRelay, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, port = relay
    _customers(app, CLAIM_BATCH + 1)
    sender = _sender(app, app_with, port, 3)
    stop = threading.Event()
    with caplog.at_level(logging.INFO):
        thread, reports = _in_the_background(sender, stop)
        try:
            wait_for(lambda: handler.held() == 3, "three mails in the relay's hands")
            stop.set()  # as SIGTERM does in `maild run`
        finally:
            handler.release.set()
            thread.join(timeout=30)

    assert reports == [DeliveryReport(sent=3)]
    assert len(handler.accepted) == 3
    rows = _rows(app)
    assert sorted(status for status, _, _ in rows) == ["queued"] * 3 + ["sent"] * 3
    # The two claimed and never begun are free at once, their claim's attempt not
    # counted; the sixth was never claimed.
    assert [(owner, attempts) for status, owner, attempts in rows if status == "queued"] \
        == [(None, 0)] * 3
    assert (f"outbox sender {sender.identity.owner} released {CLAIM_BATCH - 3} claimed "
            "mail(s)") in caplog.text


def test_a_relay_that_takes_fewer_connections_gets_the_mail_over_those_it_takes(
    app: App, app_with: Callable[..., App], sink: Sink, caplog: pytest.LogCaptureFixture,
) -> None:
    """A relay that limits its clients' connections answers the one too many with 421 and
    hangs up (Postfix's smtpd_client_connection_count_limit, say): the sender sends over
    the connections it has, and no mail is deferred for it."""
    front = TcpProxy(sink.port)
    front.accept_only = 1
    sender = _sender(app, app_with, front.port, 3)
    _customers(app, CLAIM_BATCH + 2)
    try:
        with caplog.at_level(logging.INFO):
            report = sender.deliver_due(limit=None)
    finally:
        front.close()

    assert report == DeliveryReport(sent=CLAIM_BATCH + 2)
    assert len(sink.files()) == CLAIM_BATCH + 2
    assert front.connections == 1
    assert front.refused >= 1
    assert "the relay refused connection" in caplog.text
    assert "sending over 1" in caplog.text


def test_a_claim_of_five_is_recorded_and_the_next_claimed_in_four_statements(
    app: App, sink: Sink,
) -> None:
    """The transaction that records what a claim's five mails came to and claims the next
    five: the five marked sent in one statement, their tickets' events in one, the
    tickets' time in one, and the claim in one. Neither the heartbeat's work (beating,
    looking for silent senders) nor a read of any ticket is in it."""
    _customers(app, 2 * CLAIM_BATCH + 1)
    sending = threading.current_thread()
    transactions: list[list[str]] = [[]]

    def executed(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.current_thread() is sending and not statement.startswith("BEGIN"):
            transactions[-1].append(statement.split(None, 3)[0] + " " + _table(statement))

    event.listen(app.db.engine, "before_cursor_execute", executed)
    event.listen(app.db.engine, "commit", lambda connection: transactions.append([])
                 if threading.current_thread() is sending else None)

    assert app.sender.deliver_due(limit=None).sent == 2 * CLAIM_BATCH + 1

    # The first claim; two that each record five and claim more; the last record with a
    # claim that finds nothing; the sender leaving.
    recording_and_claiming = transactions[1:3]
    assert recording_and_claiming == [
        ["UPDATE outbox", "INSERT events", "UPDATE tickets", "UPDATE outbox"]] * 2


def _table(statement: str) -> str:
    words = statement.replace("(", " ").split()
    for keyword in ("UPDATE", "INTO", "FROM"):
        if keyword in words:
            return words[words.index(keyword) + 1]
    return "?"
