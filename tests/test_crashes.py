"""`maild run` SIGKILLed again and again at random points while it drains a mailbox and
sends mail, then run to the end: every message is stored exactly once and every mail it
caused is sent, once, or twice under the same Message-ID when the kill fell between the
relay's acceptance and the outbox's record."""

from __future__ import annotations

import random
import signal
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from maild.db.models import OutboxMail
from tests.conftest import Sink
from tests.mailbuilder import make_mail
from tests.test_scale_out import Daemons
from tests.waiting import wait_for

# Enough mail that the kills land while it is drained and sent.
CONVERSATIONS = 160
REPLIES = 40
KILLS = 8
BATCH = 50  # [[mailboxes]] batch_messages by default


def outbox_by_purpose_and_status(database_url: str) -> dict[tuple[str, str], int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {(purpose, status): count for purpose, status, count in connection.execute(
                select(OutboxMail.purpose, OutboxMail.status, func.count())
                .group_by(OutboxMail.purpose, OutboxMail.status))}
    finally:
        engine.dispose()


def test_killed_at_random_points_stores_everything_once_and_sends_everything(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any
) -> None:
    for n in range(CONVERSATIONS):
        imap_account.append(make_mail(sender=f"c{n}@customer.example", subject=f"Question {n}",
                                      message_id=f"<q{n}@customer.example>"))
    for n in range(REPLIES):
        imap_account.append(make_mail(sender=f"c{n}@customer.example",
                                      subject=f"Re: Question {n}",
                                      message_id=f"<r{n}@customer.example>",
                                      in_reply_to=f"<q{n}@customer.example>",
                                      body="More detail.\n"))
    daemons = Daemons(tmp_path, database_url, sink, {"support": imap_account})
    chance = random.Random(20261123)
    interrupted = 0
    for round_number in range(KILLS):
        name = f"run{round_number}"
        daemons.start(name)
        # A random moment of the drain: after a random number of messages stored (not a
        # delay after the first), so a faster drain does not outrun the kills, and kills
        # land inside a batch, between its commit and its filing away, and while sending.
        stored_before_kill = chance.randint(1, BATCH + BATCH // 2)
        # Read from the log alone, so each look is quick next to the drain; not after
        # "maild running", which comes after the first sweep, when readers may have
        # drained hundreds of messages.
        wait_for(lambda name=name, k=stored_before_kill: daemons.count(name, "stored <") >= k
                 or daemons.said(name, "waiting were handled"), "the drain to be under way",
                 timeout=30)
        daemons.processes[name].send_signal(signal.SIGKILL)
        daemons.processes[name].wait(timeout=10)
        interrupted += daemons.said(name, "stored <") and imap_account.count("INBOX") > 0

    # Mail a killed sender had claimed is taken over once it has been silent for the
    # daemons' outbound.sender_silence_seconds (real seconds, within the waits below); mail
    # deferred after a failed attempt waits out its retry delay, which the last run skips
    # on the injected clock.
    daemons.start("last", now=(datetime.now(UTC) + timedelta(minutes=6)).isoformat())
    try:
        wait_for(lambda: imap_account.count("INBOX") == 0, "the mailbox to be drained",
                 timeout=60)
        wait_for(lambda: set(outbox_by_purpose_and_status(database_url))
                 <= {("ack", "sent"), ("notify", "sent")}, "every mail to be sent", timeout=60)
    finally:
        daemons.stop_all()

    tickets = daemons.tickets()
    assert len(tickets) == CONVERSATIONS
    received = [m["message_id"] for t in tickets for m in t["messages"] if m["direction"] == "in"]
    assert sorted(received) == sorted([f"<q{n}@customer.example>" for n in range(CONVERSATIONS)]
                                      + [f"<r{n}@customer.example>" for n in range(REPLIES)])
    assert outbox_by_purpose_and_status(database_url) == {
        ("ack", "sent"): CONVERSATIONS, ("notify", "sent"): CONVERSATIONS + REPLIES}
    sent: dict[str, set[str]] = defaultdict(set)
    for mail in sink.messages():
        sent[str(mail["Delivered-To"])].add(str(mail["Message-ID"]))
    assert all(len(sent[f"c{n}@customer.example"]) == 1 for n in range(CONVERSATIONS))
    assert len(sent["dan@example.com"]) == CONVERSATIONS + REPLIES
    assert interrupted >= 3, "the kills must land while mail is being drained"
