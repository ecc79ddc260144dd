"""Two real `maild run --only outbound` processes on one outbox, and a real relay
(aiosmtpd) that stalls DATA: every mail is delivered once, however slow the relay, and a
killed sender's mail is delivered by the other within seconds.

The heartbeat is real time on the database's clock (maild/outbound/claims.py), not the
injected one: liveness is how long a process has been silent, which MAILD_NOW cannot
stand for. So the takeover after a kill is awaited for real, bounded by the senders'
silence limit (SILENCE, short so that the wait is short, yet with a sender's own beat
trusted for 2.5 s: a loaded machine's pause does not make a live sender doubt its claims)
plus a few seconds; and a relay that stalls for twice the limit shows the
owner beating through a slow SMTP transaction. Due times stay on the injected clock: the
second sender of the first test runs six minutes ahead, past the five-minute lease
claims had before they had owners.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maild.clock import FixedClock
from maild.config import Config
from maild.db.models import Event, OutboxMail
from maild.intake.pipeline import ingest
from maild.outbound.claims import CLAIM_BATCH, beat_interval
from maild.runtime.app import App
from tests.conftest import config_text
from tests.helpers import serving
from tests.mailbuilder import make_mail
from tests.waiting import wait_for

MAILD = [sys.executable, "-m", "maild"]
MAILS = 6
SILENCE = timedelta(seconds=5)  # the senders' outbound.sender_silence_seconds
BEAT_EVERY = beat_interval(SILENCE)
# A killed sender's mail is delivered within this of the kill: its silence, a beat or a
# look for work of the other sender, and a few seconds for the delivery.
TAKEOVER_BOUND = SILENCE + 2 * BEAT_EVERY + timedelta(seconds=5)


class StallingRelay:
    """Accepts every mail, counting it by Message-ID once it has answered 250. The first
    DATA after `accept_first` mails is answered after `stall` seconds at the least, and
    only once `release` is set; never when `stall` is None (the test ends first)."""

    def __init__(self, stall: float | None, accept_first: int = 0) -> None:
        self.stall = stall
        self.accept_first = accept_first
        self.stalling = threading.Event()
        self.release = threading.Event()
        self.accepted: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if not self.stalling.is_set() and sum(self.delivered().values()) >= self.accept_first:
            self.stalling.set()
            if self.stall is None:
                await asyncio.Event().wait()
            await asyncio.sleep(self.stall or 0)
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        message_id = str(message_from_bytes(envelope.content)["Message-ID"])
        with self._lock:
            self.accepted[message_id] += 1
        return "250 OK"

    def delivered(self) -> Counter[str]:
        with self._lock:
            return Counter(self.accepted)


@pytest.fixture
def config(config: Config) -> Config:
    """One mail per ticket: the engineers' notifications of new tickets are off."""
    return config.model_copy(update={"staff": config.staff.model_copy(
        update={"notify": False})})


class Senders:
    def __init__(self, tmp_path: Path, database_url: str, relay_port: int,
                 connections: int = 1) -> None:
        # A relay timeout longer than the stall: the stall is slow, not broken. One
        # connection unless told otherwise: a sender's mails go one after another, so a
        # stalled mail keeps the rest of its claim in hand, untried.
        self.config = tmp_path / "senders.toml"
        self.config.write_text(
            config_text(database_url, tmp_path / "storage", relay_port, outbound_extra=(
                f"sender_silence_seconds = {SILENCE.total_seconds()}"))
            .replace("timeout_seconds = 5", "timeout_seconds = 60")
            .replace("connections = 1", f"connections = {connections}"))
        self.tmp = tmp_path
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, now: str | None = None) -> None:
        env = {**os.environ, "MAILD_CONFIG": str(self.config)}
        env.pop("MAILD_NOW", None)
        if now:
            env["MAILD_NOW"] = now
        with open(self.log(name), "ab") as log:
            self.processes[name] = subprocess.Popen(
                [*MAILD, "run", "--only", "outbound"], env=env, stderr=log)

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def said(self, name: str) -> str:
        return self.log(name).read_text() if self.log(name).exists() else ""

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            process.wait(timeout=120)


@pytest.fixture
def relay(request: pytest.FixtureRequest) -> Iterator[tuple[StallingRelay, int]]:
    """request.param: the stall, or (the stall, the mails accepted before it)."""
    stall, accept_first = request.param if isinstance(request.param, tuple) \
        else (request.param, 0)
    handler = StallingRelay(stall, accept_first)
    with serving(handler) as port:
        yield handler, port


def _queue(app: App) -> set[str]:
    for n in range(MAILS):
        ingest(app.intake, make_mail(sender=f"c{n}@customer.example", subject=f"Question {n}",
                                     message_id=f"<q{n}@customer.example>"), "test")
    with app.db.transaction() as session:
        queued = set(session.scalars(select(OutboxMail.message_id)))
    assert len(queued) == MAILS
    return queued


def _all_sent(app: App) -> bool:
    with app.db.transaction() as session:
        return set(session.scalars(select(OutboxMail.status))) == {"sent"}


def _owners(app: App, status: str = "sent") -> set[str | None]:
    with app.db.transaction() as session:
        return set(session.scalars(select(OutboxMail.owner)
                                   .where(OutboxMail.status == status)))


def _first_stalled_and_second_sent_one(app: App, handler: StallingRelay,
                                       senders: Senders) -> str:
    """Sender "a" stalled in the relay's first DATA with the rest of its claim in hand,
    and sender "b" started and done with the one mail "a" did not claim: "a"'s owner."""
    senders.start("a")
    assert handler.stalling.wait(30), "the first sender never reached the relay"
    senders.start("b")  # takes the one mail the first did not claim
    wait_for(lambda: len(handler.delivered()) == 1 and _owners(app, "sent"),
             "the second sender to send one", 30)
    [first_owner] = _owners(app, "queued")
    return str(first_owner)


@pytest.mark.parametrize("relay", [2 * SILENCE.total_seconds()], indirect=True)
def test_two_senders_and_a_stalling_relay_deliver_every_mail_once(
    app: App, clock: FixedClock, tmp_path: Path, database_url: str,
    relay: tuple[StallingRelay, int],
) -> None:
    handler, port = relay
    queued = _queue(app)
    senders = Senders(tmp_path, database_url, port)
    try:
        senders.start("a", now=clock.now().isoformat())
        assert handler.stalling.wait(30), "the first sender never reached the relay"
        # The second sender sees the first one's claims long after the old lease ran out.
        senders.start("b", now=(clock.now() + timedelta(minutes=6)).isoformat())
        # The relay answers the first sender only once the second has been at work.
        wait_for(lambda: handler.delivered(), "the second sender to send", timeout=30)
        handler.release.set()
        wait_for(lambda: _all_sent(app), "every mail to be marked sent", timeout=60)
    finally:
        senders.stop_all()  # and let each finish what it had in hand

    delivered = handler.delivered()
    assert set(delivered) == queued
    assert {m: n for m, n in delivered.items() if n > 1} == {}
    assert len(_owners(app)) == 2  # both senders sent: the second took what was free
    for name in ("a", "b"):
        assert "went silent" not in senders.said(name)
        assert "taken over" not in senders.said(name)
        # Beating through the stall, the first never doubted its claims were its own.
        assert "may no longer be its own" not in senders.said(name)


@pytest.mark.parametrize("relay", [None], indirect=True)
def test_a_killed_senders_mail_is_delivered_by_the_other_within_seconds(
    app: App, tmp_path: Path, database_url: str, relay: tuple[StallingRelay, int],
) -> None:
    handler, port = relay
    queued = _queue(app)
    senders = Senders(tmp_path, database_url, port)
    try:
        killed_owner = _first_stalled_and_second_sent_one(app, handler, senders)

        senders.processes["a"].send_signal(signal.SIGKILL)
        senders.processes["a"].wait(timeout=10)
        killed_at = time.monotonic()
        wait_for(lambda: set(handler.delivered()) == queued,
                 "the killed sender's mail to be delivered",
                 timeout=TAKEOVER_BOUND.total_seconds())
        took = time.monotonic() - killed_at
        wait_for(lambda: _all_sent(app), "every mail to be marked sent")
    finally:
        senders.stop_all()

    assert took < TAKEOVER_BOUND.total_seconds()
    assert {m: n for m, n in handler.delivered().items() if n > 1} == {}
    assert f"sender {killed_owner} went silent" in senders.said("b")
    assert f"{CLAIM_BATCH} claimed mail(s) taken over" in senders.said("b")


@pytest.mark.parametrize("relay", [0], indirect=True)
def test_a_sender_stopped_with_sigterm_releases_what_it_has_not_sent(
    app: App, tmp_path: Path, database_url: str, relay: tuple[StallingRelay, int],
) -> None:
    # The first sender is in the middle of a stalled DATA, with the rest of its batch
    # claimed, when it is told to stop: it finishes that mail and frees the others, and
    # the second sender delivers them at once, with no takeover (that is, sooner than
    # the silence limit, and without a sender found silent).
    handler, port = relay
    queued = _queue(app)
    senders = Senders(tmp_path, database_url, port)
    try:
        stopped_owner = _first_stalled_and_second_sent_one(app, handler, senders)

        senders.processes["a"].send_signal(signal.SIGTERM)
        # Told to stop before its relay answers: the rest of the batch must not follow.
        wait_for(lambda: "maild stopping" in senders.said("a"), "the first sender to stop")
        handler.release.set()
        assert senders.processes["a"].wait(timeout=30) == 0
        wait_for(lambda: set(handler.delivered()) == queued,
                 "the released mail to be delivered by the second sender",
                 timeout=SILENCE.total_seconds())
        wait_for(lambda: _all_sent(app), "every mail to be marked sent")
    finally:
        senders.stop_all()

    assert {m: n for m, n in handler.delivered().items() if n > 1} == {}
    with app.db.transaction() as session:
        senders_of = Counter(session.scalars(select(OutboxMail.owner)))
        attempts = Counter(session.scalars(select(OutboxMail.attempts)))
    # The stalled mail was finished by the sender that had it; the other four were sent
    # by the second one.
    assert senders_of[stopped_owner] == 1
    # The mails freed untried were not counted as tried: each was sent at its first try.
    assert attempts == Counter({1: MAILS})
    assert sorted(senders_of.values()) == [1, MAILS - 1]
    assert (f"outbox sender {stopped_owner} released {CLAIM_BATCH - 1} claimed mail(s)"
            in senders.said("a"))
    assert "went silent" not in senders.said("b")


def _kill_a_and_let_b_deliver(app: App, senders: Senders, handler: StallingRelay,
                              queued: set[str]) -> None:
    """SIGKILL sender "a" and start "b", which takes over a's silent claim and delivers
    and records every queued mail."""
    senders.processes["a"].send_signal(signal.SIGKILL)
    senders.processes["a"].wait(timeout=10)
    senders.start("b")
    wait_for(lambda: set(handler.delivered()) == queued,
             "every mail to be delivered", timeout=TAKEOVER_BOUND.total_seconds())
    wait_for(lambda: _all_sent(app), "every mail to be marked sent")


@pytest.mark.parametrize("relay", [(None, 2)], indirect=True)
def test_mail_a_killed_sender_had_sent_and_not_recorded_is_sent_again_never_lost(
    app: App, tmp_path: Path, database_url: str, relay: tuple[StallingRelay, int],
) -> None:
    """A claim's mails are recorded together, after the last of them (maild/outbound/
    sender.py): a sender killed part-way through a claim has handed some to the relay
    and recorded none. The sender that takes over sends them again, under the same
    Message-IDs; every mail arrives, and each is recorded once."""
    handler, port = relay
    queued = _queue(app)
    senders = Senders(tmp_path, database_url, port)
    try:
        senders.start("a")
        assert handler.stalling.wait(30), "the first sender never reached its third mail"
        accepted_before_the_kill = set(handler.delivered())
        _kill_a_and_let_b_deliver(app, senders, handler, queued)
    finally:
        senders.stop_all()

    assert len(accepted_before_the_kill) == 2
    twice = {m for m, n in handler.delivered().items() if n > 1}
    assert twice == accepted_before_the_kill
    assert max(handler.delivered().values()) == 2
    with app.db.transaction() as session:
        delivered = session.scalars(select(Event.new).where(Event.kind == "delivered")).all()
    assert sorted(delivered) == sorted(queued)  # each mail recorded once


@pytest.mark.parametrize("relay", [None], indirect=True)
def test_a_killed_sender_with_several_connections_has_at_most_a_claim_sent_twice(
    app: App, tmp_path: Path, database_url: str, relay: tuple[StallingRelay, int],
) -> None:
    """With three connections a claim's five mails are in the relay's hands side by side:
    the relay holds the answer to the first DATA and accepts the other four, and the
    sender is killed waiting for it. The four were accepted and not recorded, so the
    sender that takes over sends them again (and the fifth): at most a claim's worth
    twice, as with one connection, and every mail recorded once."""
    handler, port = relay
    queued = _queue(app)
    senders = Senders(tmp_path, database_url, port, connections=3)
    try:
        senders.start("a")
        wait_for(lambda: handler.stalling.is_set()
                 and len(handler.delivered()) == CLAIM_BATCH - 1,
                 "the first sender's other mails to be accepted", 30)
        accepted_before_the_kill = set(handler.delivered())
        _kill_a_and_let_b_deliver(app, senders, handler, queued)
    finally:
        senders.stop_all()

    twice = {m for m, n in handler.delivered().items() if n > 1}
    assert twice == accepted_before_the_kill
    assert len(twice) == CLAIM_BATCH - 1
    assert max(handler.delivered().values()) == 2
    with app.db.transaction() as session:
        delivered = session.scalars(select(Event.new).where(Event.kind == "delivered")).all()
    assert sorted(delivered) == sorted(queued)  # each mail recorded once
