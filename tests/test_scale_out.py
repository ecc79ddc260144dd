"""Two `maild run` processes on one database and one mailbox: one reads it while the
other stands by; when the reader is killed the other takes over within seconds, and no
ticket, message or mail is lost or doubled.

The kill may land while the killed process holds outbox claims. Those used to wait out a
five-minute lease, longer than this test waits, and it failed now and then; a claim now
belongs to a sender that beats, and the survivor takes a silent sender's claims over
once it has been silent for outbound.sender_silence_seconds, here a short SILENCE
(tests/test_outbox_senders.py kills a sender in the middle of a batch on purpose)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from maild.runtime.leases import application_name
from tests.conftest import PG_URL, Sink, config_text, mailbox_toml, using_postgresql
from tests.mailbuilder import make_mail
from tests.waiting import wait_for

MAILD = [sys.executable, "-m", "maild"]
# The daemons' outbound.sender_silence_seconds: short, and still long enough that a daemon
# whose beat waits on another's intake batch for the write lock is not taken for dead.
SILENCE = timedelta(seconds=5)


class Daemons:
    def __init__(self, tmp_path: Path, database_url: str, sink: Sink,
                 accounts: dict[str, Any]) -> None:
        """`accounts`: the mailboxes to read, by name."""
        self.config = tmp_path / "maild.toml"
        self.config.write_text(config_text(
            database_url, tmp_path / "storage", sink.port,
            "".join(mailbox_toml(account, name, address=f"{name}@example.com")
                    for name, account in accounts.items()),
            outbound_extra=f"sender_silence_seconds = {SILENCE.total_seconds()}"))
        self.env = {**os.environ, "MAILD_CONFIG": str(self.config),
                    **{f"MAILD_TEST_IMAP_{name.upper()}": account.password
                       for name, account in accounts.items()}}
        self.tmp = tmp_path
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, now: str | None = None) -> None:
        env = {**self.env, "MAILD_NOW": now} if now else self.env
        with open(self.log(name), "ab") as log:
            self.processes[name] = subprocess.Popen([*MAILD, "run"], env=env, stderr=log)

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def said(self, name: str, text: str) -> bool:
        return self.log(name).exists() and text in self.log(name).read_text()

    def count(self, name: str, text: str) -> int:
        """How many lines of `name`'s log hold `text`."""
        if not self.log(name).exists():
            return 0
        return sum(text in line for line in self.log(name).read_text().splitlines())

    def said_at(self, name: str, text: str) -> datetime:
        """When `name` first logged a line holding `text` (the log's own timestamp)."""
        for line in self.log(name).read_text().splitlines():
            if text in line:
                return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        raise AssertionError(f"{name} never said {text!r}")

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            process.wait(timeout=60)

    def tickets(self) -> list[dict[str, Any]]:
        listed = subprocess.run([*MAILD, "tickets", "export"], env=self.env,
                                capture_output=True, check=True)
        return [json.loads(line) for line in listed.stdout.splitlines()]


def customer_mail(n: int) -> bytes:
    return make_mail(sender=f"c{n}@customer.example", subject=f"Question {n}",
                     message_id=f"<q{n}@customer.example>")


def acknowledgments(sink: Sink) -> dict[str, set[str]]:
    """The Message-IDs each customer was sent. A kill between the relay's acceptance and
    the outbox's record may send one mail twice, but always as the same Message-ID."""
    sent: dict[str, set[str]] = defaultdict(set)
    for mail in sink.messages():
        if str(mail["Delivered-To"]).startswith("c"):
            sent[str(mail["Delivered-To"])].add(str(mail["Message-ID"]))
    return sent


def test_two_daemons_share_a_mailbox_and_the_survivor_takes_over(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any
) -> None:
    daemons = Daemons(tmp_path, database_url, sink, {"support": imap_account})
    for n in range(20):
        imap_account.append(customer_mail(n))
    daemons.start("a")
    wait_for(lambda: daemons.said("a", "reading INBOX"), "the first daemon to read")
    daemons.start("b")
    try:
        wait_for(lambda: daemons.said("b", "another maild is reading it; standing by"),
                 "the second daemon to stand by")
        wait_for(lambda: imap_account.count("Processed") == 20, "the first 20 to be filed")

        # The reader dies in the middle of a stream of mail; the standby takes over.
        for n in range(20, 30):
            imap_account.append(customer_mail(n))
        daemons.processes["a"].send_signal(signal.SIGKILL)
        daemons.processes["a"].wait(timeout=10)
        for n in range(30, 40):
            imap_account.append(customer_mail(n))
        wait_for(lambda: daemons.said("b", "the other reader is gone; taking over"),
                 "the standby to take over", timeout=20)
        wait_for(lambda: imap_account.count("Processed") == 40, "all 40 to be filed",
                 timeout=30)
        wait_for(lambda: len(acknowledgments(sink)) == 40, "40 acknowledgments",
                 timeout=SILENCE.total_seconds() + 15)
    finally:
        daemons.stop_all()

    tickets = daemons.tickets()
    assert sorted(t["subject"] for t in tickets) == sorted(f"Question {n}" for n in range(40))
    assert all(len([m for m in t["messages"] if m["direction"] == "in"]) == 1 for t in tickets)
    doubled = {who: ids for who, ids in acknowledgments(sink).items() if len(ids) > 1}
    assert doubled == {}
    assert imap_account.count("INBOX") == 0


@contextlib.contextmanager
def reading_two_mailboxes(tmp_path: Path, database_url: str, sink: Sink, dovecot: Any
                          ) -> Iterator[tuple[Daemons, dict[str, Any], Engine]]:
    """Daemon "a" reading two mailboxes, "support" and "sales", and a connection of the
    server's administrator, to end sessions with; the daemons stopped after."""
    accounts = {"support": dovecot.add_account(), "sales": dovecot.add_account()}
    daemons = Daemons(tmp_path, database_url, sink, accounts)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        daemons.start("a")
        for name in accounts:
            wait_for(lambda name=name: daemons.said("a", f"mailbox {name}: reading INBOX"),
                     f"the first daemon to read {name}")
        yield daemons, accounts, admin
    finally:
        daemons.stop_all()
        admin.dispose()


@pytest.mark.skipif(not using_postgresql(), reason="a PostgreSQL session ending under a reader")
def test_when_a_daemons_lock_session_ends_it_stops_reading_before_the_standby_reads(
    tmp_path: Path, database_url: str, sink: Sink, dovecot: Any
) -> None:
    with reading_two_mailboxes(tmp_path, database_url, sink, dovecot) as (
            daemons, accounts, admin):
        daemons.start("b")
        for name in accounts:
            wait_for(lambda name=name: daemons.said(
                "b", f"mailbox {name}: another maild is reading it; standing by"),
                f"the second daemon to stand by for {name}")
        for n, account in enumerate(accounts.values()):
            account.append(customer_mail(n))

        # What a PostgreSQL restart does to a daemon's lock session, done to a's alone.
        holder = application_name(daemons.processes["a"].pid)
        with admin.connect() as connection:
            ended = connection.scalars(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :holder"), {"holder": holder}).all()
        assert ended == [True]  # one session held both mailboxes' locks

        for name in accounts:
            wait_for(lambda name=name: daemons.said("b", f"mailbox {name}: reading INBOX"),
                     f"the standby to read {name}", timeout=30)
            assert (daemons.said_at("a", f"mailbox {name}: no longer ours to read")
                    < daemons.said_at("b", f"mailbox {name}: reading INBOX"))
            wait_for(lambda name=name: daemons.said(
                "a", f"mailbox {name}: another maild is reading it; standing by"),
                f"the first daemon to stand by for {name}")
        for n, account in enumerate(accounts.values(), start=2):
            account.append(customer_mail(n))
        for account in accounts.values():
            wait_for(lambda account=account: account.count("Processed") == 2,
                     "both messages of each mailbox to be filed", timeout=30)

    tickets = daemons.tickets()
    assert sorted(t["subject"] for t in tickets) == [f"Question {n}" for n in range(4)]
    assert all(len([m for m in t["messages"] if m["direction"] == "in"]) == 1 for t in tickets)


@pytest.mark.skipif(not using_postgresql(), reason="a PostgreSQL session ending under a reader")
def test_a_daemon_alone_whose_lock_session_ends_takes_its_mailboxes_back(
    tmp_path: Path, database_url: str, sink: Sink, dovecot: Any
) -> None:
    sessions = text("SELECT pid FROM pg_stat_activity WHERE application_name = :holder")
    with reading_two_mailboxes(tmp_path, database_url, sink, dovecot) as (
            daemons, accounts, admin):
        holder = application_name(daemons.processes["a"].pid)
        with admin.connect() as connection:
            (first,) = connection.scalars(sessions, {"holder": holder}).all()
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        for name in accounts:
            wait_for(lambda name=name: daemons.log("a").read_text().count(
                f"mailbox {name}: reading INBOX") == 2, f"the daemon to read {name} again",
                timeout=30)
            assert daemons.said("a", f"mailbox {name}: no longer ours to read")
        with admin.connect() as connection:
            (second,) = connection.scalars(sessions, {"holder": holder}).all()
        assert second != first  # both locks again on one new session
        for n, account in enumerate(accounts.values()):
            account.append(customer_mail(n))
        for account in accounts.values():
            wait_for(lambda account=account: account.count("Processed") == 1,
                     "the mail after it to be filed", timeout=30)
