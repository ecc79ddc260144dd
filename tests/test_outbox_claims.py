"""Outbox claims have an owner: a live sender's claims are offered to no one else, a
silent one's are taken over, and a sender that lost a claim records nothing on it.

Two senders here are two `Sender`s of the composition root on one database, each with its
own owner id, as two processes would be. Liveness is read on the database's clock
(maild/outbound/claims.py): a sender is made silent by writing its last heartbeat a
minute (or as long as a test says) into the database's past, which is what a minute
without a beat leaves behind.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes
from typing import Any

import pytest
from sqlalchemy import event, select, text, update

from maild.clock import FixedClock
from maild.config import Config
from maild.db.database import Database
from maild.db.migrate import upgrade
from maild.db.models import Event, OutboxMail, OutboxSender
from maild.intake.pipeline import ingest
from maild.outbound.claims import (
    CLAIM_BATCH,
    SenderIdentity,
    beat_interval,
    claim,
    database_time,
    defer,
    mark_failed,
    mark_sent,
    register,
)
from maild.outbound.heartbeat import Heartbeat
from maild.outbound.sender import DeliveryReport, Sender
from maild.runtime.app import App
from tests.conftest import Sink
from tests.helpers import downgrade, serving
from tests.mailbuilder import make_mail
from tests.waiting import wait_for

OLD_LEASE = timedelta(minutes=5)  # the bare time lease claims had before they had owners


def _customers(app: App, count: int) -> None:
    """`count` new tickets, each with one mail in the outbox (its acknowledgment)."""
    for n in range(count):
        ingest(app.intake, make_mail(sender=f"c{n}@customer.example",
                                     message_id=f"<q{n}@customer.example>"), "test")
    assert len(_rows(app)) == count


@pytest.fixture
def config(config: Config) -> Config:
    """One mail per ticket: the engineers' notifications of new tickets are off."""
    return config.model_copy(update={"staff": config.staff.model_copy(
        update={"notify": False})})


def _claim(sender: Sender, limit: int = 5) -> list[int]:
    with sender.db.transaction() as session:
        return [mail.id for mail in claim(session, sender.identity, sender.clock.now(), limit,
                                          silence_limit=sender.config.sender_silence)]


def _silence(app: App, sender: Sender, seconds: float = 60) -> None:
    """The sender's last heartbeat, `seconds` ago on the database's clock."""
    with app.db.transaction() as session:
        session.execute(update(OutboxSender)
                        .where(OutboxSender.owner == sender.identity.owner)
                        .values(beat_at=database_time(-seconds)))


def _rows(app: App) -> dict[int, tuple[str, str | None, int]]:
    with app.db.transaction() as session:
        return {row.id: (row.status, row.owner, row.attempts)
                for row in session.scalars(select(OutboxMail))}


def _delivered_events(app: App) -> int:
    with app.db.transaction() as session:
        return len(session.scalars(select(Event).where(Event.kind == "delivered")).all())


@pytest.fixture
def second_sender(app: App, app_with: Callable[..., App]) -> Sender:
    """Another maild's sender on the same database and relay."""
    return app_with().sender


def test_a_sender_claims_a_few_mails_under_its_own_owner_id(
    app: App, second_sender: Sender
) -> None:
    _customers(app, 7)
    first = _claim(app.sender)
    second = _claim(second_sender)

    assert app.sender.identity.owner != second_sender.identity.owner
    assert (len(first), len(second)) == (5, 2)
    rows = _rows(app)
    assert {rows[i][1] for i in first} == {app.sender.identity.owner}
    assert {rows[i][1] for i in second} == {second_sender.identity.owner}


def test_a_live_senders_claims_are_not_offered_after_the_old_lease(
    app: App, clock: FixedClock, second_sender: Sender, sink: Sink
) -> None:
    _customers(app, 2)
    claimed = _claim(app.sender)  # its process is still at work: it beats
    clock.advance(OLD_LEASE + timedelta(minutes=1))

    assert second_sender.deliver_due().attempted == 0
    assert sink.files() == []
    assert {owner for _, owner, _ in _rows(app).values()} == {app.sender.identity.owner}
    assert len(claimed) == 2


def test_a_silent_senders_claims_are_taken_over_at_once(
    app: App, second_sender: Sender, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    """No clock moves here: what frees the claims is the heartbeat gone stale, not time
    on the injected clock."""
    _customers(app, 2)
    _claim(app.sender)
    _silence(app, app.sender)
    assert app.config.outbound.sender_silence < timedelta(seconds=60)

    with caplog.at_level(logging.WARNING):
        report = second_sender.deliver_due()

    assert report.sent == 2
    assert len(sink.files()) == 2
    rows = _rows(app)
    assert {status for status, _, _ in rows.values()} == {"sent"}
    assert {owner for _, owner, _ in rows.values()} == {second_sender.identity.owner}
    assert {attempts for _, _, attempts in rows.values()} == {2}  # the silent one's counts
    assert f"sender {app.sender.identity.owner} went silent" in caplog.text
    assert "2 claimed mail(s) taken over" in caplog.text
    with app.db.transaction() as session:  # the dead sender is no longer listed at work
        assert session.scalars(select(OutboxSender.owner)).all() == []


@pytest.mark.parametrize(("limit", "silent_for", "taken_over"), [
    (5, 8, True),    # silent past a short limit: dead
    (5, 2, False),   # within it: alive
    (15, 8, False),  # the same silence within the default limit: alive
])
def test_a_sender_is_taken_for_dead_after_the_configured_silence(
    app: App, app_with: Callable[..., App], limit: float, silent_for: float,
    taken_over: bool,
) -> None:
    outbound = app.config.outbound.model_copy(update={"sender_silence_seconds": limit})
    first, second = app_with(outbound=outbound).sender, app_with(outbound=outbound).sender
    _customers(app, 2)
    claimed = _claim(first)
    _silence(app, first, silent_for)

    assert _claim(second) == (claimed if taken_over else [])
    holder = second if taken_over else first
    assert {owner for _, owner, _ in _rows(app).values()} == {holder.identity.owner}


def test_a_sender_beats_and_trusts_its_beat_by_its_silence_limit(app: App) -> None:
    """Several beats within the limit, at most 3 s apart; and a sender stops sending once
    its last beat is half the limit old, so that what it sends is recorded before anyone
    may take it for dead."""
    assert [beat_interval(timedelta(seconds=limit)) for limit in (3, 15, 600)] == [
        timedelta(seconds=0.6), timedelta(seconds=3), timedelta(seconds=3)]
    beat_two_seconds_ago = time.monotonic() - 2
    assert not Heartbeat(app.db, "s", beat_two_seconds_ago, timedelta(seconds=3)).holding()
    assert Heartbeat(app.db, "s", beat_two_seconds_ago, timedelta(seconds=15)).holding()


def test_a_sender_at_work_beats_several_times_within_a_short_silence_limit(app: App) -> None:
    """Real beats on the database's clock, watched for most of a 3 s limit: a beat every
    0.6 s, and the sender sure of its claims all along."""
    limit = timedelta(seconds=3)
    identity = SenderIdentity()
    with app.db.transaction() as session:
        register(session, identity, app.clock.now())
    heartbeat = Heartbeat(app.db, identity.owner, time.monotonic(), limit).start()
    beats: set[datetime] = set()
    holding: set[bool] = set()
    try:
        watch_until = time.monotonic() + 0.8 * limit.total_seconds()
        while time.monotonic() < watch_until:
            with app.db.transaction() as session:
                beats.add(session.scalar(select(OutboxSender.beat_at)))
            holding.add(heartbeat.holding())
            time.sleep(0.05)
    finally:
        heartbeat.stop()

    assert len(beats) >= 3  # the registration's, and at 0.6, 1.2 (and 1.8) s
    assert holding == {True}


def test_an_update_by_a_sender_that_lost_its_claim_marks_nothing(
    app: App, clock: FixedClock, second_sender: Sender
) -> None:
    """The first sender is slow (a stalled relay, a paused machine) and is found silent;
    the second takes its mail over. Whatever the first then learns of its attempt, the
    mail is the second's: neither sent, nor deferred, nor failed by the first."""
    _customers(app, 1)
    [mail_id] = _claim(app.sender)
    _silence(app, app.sender)
    assert _claim(second_sender) == [mail_id]
    before = _rows(app)[mail_id]
    loser = app.sender.identity.owner

    with app.db.transaction() as session:
        assert mark_sent(session, loser, mail_id, clock.now(), None) is None
        assert defer(session, loser, mail_id, clock.now() + timedelta(minutes=1),
                     "451 try later") is False
        assert mark_failed(session, loser, mail_id, "550 no such user") is None

    assert _rows(app)[mail_id] == before == ("queued", second_sender.identity.owner, 2)
    assert _delivered_events(app) == 0

    # The owner's own update goes through, once.
    with app.db.transaction() as session:
        assert mark_sent(session, second_sender.identity.owner, mail_id, clock.now(),
                         None) is not None
    with app.db.transaction() as session:
        assert mark_sent(session, loser, mail_id, clock.now(), None) is None
        assert mark_failed(session, loser, mail_id, "550 no such user") is None
    assert _rows(app)[mail_id] == ("sent", second_sender.identity.owner, 2)


def test_a_sender_that_finishes_leaves_nothing_claimed_and_is_not_listed(
    app: App, sink: Sink
) -> None:
    _customers(app, 7)
    report = app.sender.deliver_due(limit=6)  # two claims: five, then one

    assert report.sent == 6
    rows = _rows(app)
    assert sorted(status for status, _, _ in rows.values()) == ["queued"] + ["sent"] * 6
    assert [owner for status, owner, _ in rows.values() if status == "queued"] == [None]
    with app.db.transaction() as session:
        assert session.scalars(select(OutboxSender)).all() == []


def test_a_claims_mails_are_recorded_together_with_the_next_claim(
    app: App, sink: Sink
) -> None:
    """A commit per claim, not per mail: what five mails came to is written in the
    transaction that claims the next five (docs/design.md, "Outgoing mail is durable")."""
    _customers(app, 2 * CLAIM_BATCH + 1)
    sending = threading.current_thread()
    commits: list[str] = []
    # Only the sender's own: its heartbeat commits from a thread of its own.
    event.listen(app.db.engine, "commit", lambda connection: commits.append(
        "sender" if threading.current_thread() is sending else "heartbeat"))

    report = app.sender.deliver_due(limit=None)

    assert report.sent == 2 * CLAIM_BATCH + 1
    claims = 3  # five, five, one
    # Each claim's transaction records the one before; then the last claim's mails with
    # a claim that finds nothing more, and the sender's row removed as it leaves.
    assert commits.count("sender") == claims + 2
    assert _delivered_events(app) == 2 * CLAIM_BATCH + 1
    assert {status for status, _, _ in _rows(app).values()} == {"sent"}


class _StallsFirstMail:
    """A real relay (aiosmtpd) that holds the answer to the first DATA until released."""

    def __init__(self) -> None:
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.accepted: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if not self.stalled.is_set():
            self.stalled.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        self.accepted.append(str(message_from_bytes(envelope.content)["Message-ID"]))
        return "250 OK"


def test_a_sender_found_silent_mid_send_stops_and_records_nothing(
    app: App, app_with: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """The first sender waits on a stalled relay and is found silent (as when its
    machine was paused); the second takes its mail over and sends it. When the relay
    finally answers the first, the mail is not the first's any more: it records nothing,
    and sends nothing more."""
    relay = _StallsFirstMail()
    with serving(relay) as port:
        # One connection: the first sender's other mails wait, untried, behind the stall.
        outbound = app.config.outbound.model_copy(update={"port": port, "connections": 1})
        first = app_with(outbound=outbound).sender
        second = app_with(outbound=outbound).sender
        _customers(app, 3)
        outcome: list[DeliveryReport] = []
        sending = threading.Thread(target=lambda: outcome.append(first.deliver_due()))
        try:
            with caplog.at_level(logging.WARNING):
                sending.start()
                assert relay.stalled.wait(10)
                _silence(app, first)
                assert second.deliver_due().sent == 3
                wait_for(lambda: "its claims were taken over" in caplog.text,
                         "the first sender to learn it was found silent")
                relay.release.set()
                sending.join(timeout=30)
        finally:
            relay.release.set()

    assert outcome == [DeliveryReport(sent=0, deferred=0, failed=0, taken_over=1)]
    assert "not marked sent" in caplog.text
    rows = _rows(app)
    assert {(status, owner) for status, owner, _ in rows.values()} == {
        ("sent", second.identity.owner)}
    assert _delivered_events(app) == 3
    # The mail in the relay's hands when the first was found silent went twice, as the
    # same message; the others once, by the second sender only.
    assert sorted(Counter(relay.accepted).values()) == [1, 1, 2]


def test_mail_queued_by_the_older_version_is_claimed_after_the_upgrade_and_back(
    database_url: str, clock: FixedClock
) -> None:
    database = Database(database_url)
    try:
        upgrade(database, "0013")
        with database.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO outbox (purpose, message_id, mail_from, recipients, raw, status,"
                " attempts, next_attempt_at, created_at) VALUES ('ack', '<m1@example.com>',"
                " 's@example.com', '[\"a@customer.example\"]', :raw, 'queued', 0, :at, :at)"),
                {"raw": b"queued by the older version", "at": "2026-11-23 17:00:00.000000"})
        upgrade(database)
        identity = SenderIdentity()
        with database.transaction() as session:
            [claimed] = claim(session, identity, clock.now(), 5,
                              silence_limit=timedelta(seconds=15))
        assert claimed.raw == b"queued by the older version"
        with database.transaction() as session:
            assert mark_sent(session, identity.owner, claimed.id, clock.now(), None)

        downgrade(database, "0013")
        with database.engine.begin() as connection:
            assert connection.execute(text("SELECT status FROM outbox")).scalar() == "sent"
    finally:
        database.dispose()
