"""Backlog drain against a private Dovecot on loopback, next to the floor of the job
measured in the same run.

    .venv/bin/python -m bench.drain                       # everything, as in bench/README.md
    .venv/bin/python -m bench.drain --sizes 2000 --skip memory,scale,postgres   # quicker

Floor: a bare imapclient FETCH (batches of 50) of the same mailbox, each message parsed
with `email.message_from_bytes(policy=default)` and one SQLite INSERT committed per
message (Python's sqlite3 as it comes: rollback journal, synchronous=FULL).
maild: `MailboxReader.drain_once`, a fresh process per drain, every message stored on a
ticket (or quarantined with its reason) and its acknowledgment in the outbox.
Each maild drain runs in a child process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.mailbox import backlog, config_environment, config_text, fill
from maild.channels.sink import start_sink
from tests.dovecot import Account, Dovecot, free_port
from tests.processes import parser_pids

FETCH_BATCH = 50
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# --- the floor ---------------------------------------------------------------------------

def floor_drain(account: Account, database: Path, *, or_ignore: bool = False) -> float:
    """Bare imapclient + email + sqlite3, one committed INSERT per message. Seconds.
    `or_ignore`: for mail as the world sends it, which repeats Message-IDs."""
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE mail (id INTEGER PRIMARY KEY, message_id TEXT UNIQUE,"
                       " sender TEXT, subject TEXT, raw BLOB)")
    connection.commit()
    started = time.perf_counter()
    client = account.client()
    client.select_folder("INBOX", readonly=True)
    uids = client.search()
    for start in range(0, len(uids), FETCH_BATCH):
        for data in client.fetch(uids[start:start + FETCH_BATCH], ["BODY.PEEK[]"]).values():
            raw = data[b"BODY[]"]
            message = email.message_from_bytes(raw, policy=email.policy.default)
            connection.execute(
                f"INSERT {'OR IGNORE ' if or_ignore else ''}INTO mail"
                " (message_id, sender, subject, raw) VALUES (?, ?, ?, ?)",
                (str(message["Message-ID"]), str(message["From"]), str(message["Subject"]),
                 raw),
            )
            connection.commit()
    client.logout()
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


# --- maild, in a child process -------------------------------------------------------------

def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's own high-water mark. Not ru_maxrss: Linux carries that across exec,
    so a child would report the peak of the benchmark that forked it."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def parser_process_peak_rss_mb() -> float:
    """The high-water mark of this process's parser process (0 when it has none)."""
    return sum(peak_rss_mb(pid) for pid in parser_pids())


def run_worker(spec: dict[str, Any]) -> None:
    """The child: one drain (or one outbox delivery), figures as JSON on stdout."""
    import logging

    from maild.channels.imap.reader import MailboxReader
    from maild.clock import SystemClock
    from maild.config import parse_config
    from maild.runtime.app import build_app

    logging.disable(logging.WARNING)
    # Migrated as `maild run` migrates: in a process of its own, Alembic never loaded here.
    app = build_app(parse_config(spec["config"], spec["environment"]), SystemClock(),
                    migrate_in_a_child=True)
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if spec["job"] == "drain":
        report = MailboxReader(app.intake, app.leases,
                               app.config.mailboxes[spec["mailbox"]]).drain_once()
        result.update(stored=report.stored, duplicates=report.duplicates,
                      quarantined=report.quarantined)
    else:
        sent = 0
        while True:
            delivered = app.sender.deliver_due(limit=500)
            if not delivered.attempted:
                break
            sent += delivered.sent
        result.update(sent=sent)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = peak_rss_mb()
    result["parser_rss_mb"] = parser_process_peak_rss_mb()
    app.close()
    print(json.dumps(result))


def worker(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.drain", "--worker", json.dumps(spec)],
        stdout=subprocess.PIPE, text=True,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a benchmark worker failed with exit code {process.returncode}")
    return dict(json.loads(out.strip().splitlines()[-1]))


class Bench:
    def __init__(self, dovecot: Dovecot, workdir: Path, sink_port: int,
                 parser_process: bool = True) -> None:
        self.dovecot = dovecot
        self.parser_process = parser_process
        self.workdir = workdir
        self.sink_port = sink_port
        self.runs = 0

    def setup(self, url: str | None, accounts: list[Account]) -> dict[str, Any]:
        self.runs += 1
        directory = self.workdir / f"run{self.runs}"
        url = url or f"sqlite:///{directory}/maild.db"
        return {
            "url": url,
            "config": config_text(url, str(directory / "storage"), self.sink_port, accounts)
            + f"[intake]\nparse_in_second_process = {str(self.parser_process).lower()}\n",
            "environment": config_environment(accounts),
        }

    def drain(self, spec: dict[str, Any], mailbox: int = 0) -> dict[str, Any]:
        return finish(worker({**spec, "job": "drain", "mailbox": mailbox}))

    def filled(self, messages: list[bytes]) -> Account:
        account = self.dovecot.add_account()
        fill(account, "INBOX", messages)
        return account


def rss(result: dict[str, Any]) -> str:
    """The drain's peak RSS; with a parser process, the sum of the two peaks (which
    need not have come at the same moment, so this is at most what both held at once)."""
    own, parser = result["peak_rss_mb"], result.get("parser_rss_mb", 0.0)
    if not parser:
        return f"{own:.0f} MB"
    return f"{own + parser:.0f} MB ({own:.0f} + the parser process's {parser:.0f})"


def rate(count: int, seconds: float) -> float:
    return count / seconds


def line(label: str, count: int, seconds: float, floor_rate: float | None = None,
         extra: str = "") -> float:
    value = rate(count, seconds)
    ratio = f" = {value / floor_rate:4.2f} of the floor" if floor_rate else ""
    print(f"  {label:44s} {value:8.0f} msg/s{ratio}{extra}")
    return value


# --- the sections ------------------------------------------------------------------------------

def drain_section(bench: Bench, sizes: list[int], rounds: int) -> dict[int, float]:
    """Backlog drain into an empty SQLite database; returns maild's rate per size (the
    median over the rounds). The first size is drained `rounds` times, each round the
    floor and then maild on a freshly filled mailbox, so that a slow spell of the
    machine shows as one odd round rather than as the figure."""
    rates = {}
    for size in sizes:
        messages = backlog(size)
        times = rounds if size == sizes[0] else 1
        print(f"backlog of {size} messages, {sum(map(len, messages)) / 1e6:.1f} MB"
              + (f", {times} rounds" if times > 1 else ""))
        ratios, maild_rates = [], []
        for _ in range(times):
            account = bench.filled(messages)
            floor_seconds = floor_drain(account, bench.workdir / f"floor{bench.runs}.db")
            floor_rate = line("floor (FETCH + parse + INSERT/commit)", size, floor_seconds)
            spec = bench.setup(None, [account])
            result = bench.drain(spec)
            maild_rates.append(line(
                "maild (ticket, ack in the outbox)", size, result["seconds"], floor_rate,
                f"; {result['stored']} stored, {result['quarantined']} quarantined, "
                f"peak RSS {rss(result)}",
            ))
            ratios.append(maild_rates[-1] / floor_rate)
        rates[size] = statistics.median(maild_rates)
        if times > 1:
            print(f"  {'maild, median of ' + str(times) + ' rounds':44s} {rates[size]:8.0f} msg/s"
                  f" = {statistics.median(ratios):4.2f} of the floor (rounds: "
                  f"{', '.join(f'{r:.2f}' for r in ratios)})")
        if size == max(sizes):
            outbound_section(bench, spec, result["stored"])
    return rates


def outbound_section(bench: Bench, spec: dict[str, Any], stored: int) -> None:
    """The outbox the drain left → the SMTP sink; floor: smtplib sending the same bytes
    over one connection."""
    import smtplib

    from maild.clock import SystemClock
    from maild.config import parse_config
    from maild.db.models import OutboxMail
    from maild.outbound.outbox import mail_bytes
    from maild.runtime.app import build_app

    app = build_app(parse_config(spec["config"], spec["environment"]), SystemClock())
    with app.db.transaction() as session:
        rows = [(r.mail_from, list(r.recipients), mail_bytes(r.raw, r.raw_sha256, app.raw_store))
                for r in session.query(OutboxMail).filter_by(status="queued")]
    app.close()
    started = time.perf_counter()
    client = smtplib.SMTP("127.0.0.1", bench.sink_port)
    for mail_from, recipients, raw in rows:
        client.sendmail(mail_from, recipients, raw)
    client.quit()
    floor_rate = line("outbound floor (smtplib, one connection)", len(rows),
                      time.perf_counter() - started)
    result = finish(worker({**spec, "job": "send"}))
    line("maild outbox -> sink (claimed, sent, recorded)", result["sent"], result["seconds"],
         floor_rate, f"; {len(rows)} queued")


def memory_section(bench: Bench, count: int, big: int) -> None:
    messages = backlog(count, big_attachments=big)
    account = bench.filled(messages)
    del messages
    spec = bench.setup(None, [account])
    result = bench.drain(spec)  # a first start: it migrates the empty database
    print(f"memory: {count} messages, {big} with a 25 MB attachment, a first start")
    line("maild", count, result["seconds"], None,
         f"; peak RSS {rss(result)} (limit 150 MB)")


def prefill(url: str, messages: int) -> None:
    """A database that already holds `messages` messages: 4 per ticket, 250 tickets per
    customer address, an acknowledgment in the outbox per ticket."""
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from maild.db.database import Database
    from maild.db.fulltext import index_new_messages
    from maild.db.migrate import upgrade
    from maild.db.models import Event, Message, OutboxMail, Participant, Ticket

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    database = Database(url)
    upgrade(database)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    tickets = messages // 4
    chunk = 20_000
    with database.engine.begin() as connection:
        for first in range(1, tickets + 1, chunk):
            ids = range(first, min(first + chunk, tickets + 1))
            when = [at + timedelta(minutes=i) for i in ids]
            connection.execute(insert(Ticket), [
                {"id": i, "subject": f"Old question {i}", "status": "closed", "priority": "p2",
                 "requester": f"old{i % 1000}@past{i % 97}.example", "created_at": w,
                 "updated_at": w, "nudges_sent": 0, "sla_alerts_sent": [],
                 # what migration 0022 keeps on every ticket: its thread's Message-IDs
                 "thread_ids": [f"<old{i}.{k}@past>" for k in range(4)],
                 "requester_mails": 2, "sla_pauses": []}
                for i, w in zip(ids, when, strict=True)])
            connection.execute(insert(Participant), [
                {"ticket_id": i, "address": f"old{i % 1000}@past{i % 97}.example",
                 "role": "requester"} for i in ids])
            connection.execute(insert(Event), [
                {"ticket_id": i, "at": w, "actor": "maild", "kind": "created", "new": "new"}
                for i, w in zip(ids, when, strict=True)])
            rows = []
            for i, w in zip(ids, when, strict=True):
                for k in range(4):
                    rows.append({
                        "id": i * 4 + k, "ticket_id": i, "message_id": f"<old{i}.{k}@past>",
                        "direction": "in" if k % 2 == 0 else "out",
                        "kind": "system" if k == 1 else "public",
                        "author": f"old{i % 1000}@past{i % 97}.example",
                        "created_at": w + timedelta(minutes=k), "subject": f"Old question {i}",
                        "body": "Hello,\n\nAn old question.\n" * 8, "channel": "imap:box0",
                        "attachments": []})
            connection.execute(insert(Message), rows)
            connection.execute(insert(OutboxMail), [
                {"ticket_id": i, "message_row_id": i * 4 + 1, "purpose": "ack",
                 "message_id": f"<maild.{i}.old@example.com>", "mail_from": "support@example.com",
                 "recipients": [f"old{i % 1000}@past{i % 97}.example"], "raw_sha256": "0" * 64,
                 "status": "sent", "attempts": 1, "next_attempt_at": w, "created_at": w}
                for i, w in zip(ids, when, strict=True)])
    if database.is_postgresql:
        with database.engine.begin() as connection:
            for table in ("tickets", "messages", "outbox", "participants", "events"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))")
                connection.exec_driver_sql(f"ANALYZE {table}")
    else:
        with database.engine.begin() as connection:
            # The search index holds every message a desk stored (the intake adds each as
            # it stores it; migration 0016 added those before it): so must this one.
            index_new_messages(Session(connection))
            connection.exec_driver_sql("ANALYZE")
    database.dispose()


def scale_section(bench: Bench, size: int, existing: int) -> None:
    """The drain into a database holding `existing` messages, between two drains of the
    same backlog into an empty one: the machine's speed drifts over minutes, so the full
    database is compared with the mean of the empty runs on either side of it."""
    messages = backlog(size)
    full = bench.setup(None, [bench.filled(messages)])
    started = time.perf_counter()
    prefill(full["url"], existing)
    print(f"scale: {size} messages into a database holding {existing:,} messages "
          f"(filled in {time.perf_counter() - started:.0f} s)")
    before = bench.drain(bench.setup(None, [bench.filled(messages)]))
    empty_before = line("maild into an empty database", size, before["seconds"])
    full_rate = line("maild into the full database", size, bench.drain(full)["seconds"])
    after = bench.drain(bench.setup(None, [bench.filled(messages)]))
    empty_after = line("maild into an empty database, again", size, after["seconds"])
    empty_rate = (empty_before + empty_after) / 2
    print(f"  = {full_rate / empty_rate:.2f} of the empty-database rate ({empty_rate:.0f} msg/s,"
          f" the mean of the runs either side)")


def reset_postgres() -> None:
    from maild.db.database import Database

    database = Database(POSTGRES_URL)
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    database.dispose()


def migrate(url: str) -> None:
    from maild.db.database import Database
    from maild.db.migrate import upgrade

    database = Database(url)
    upgrade(database)
    database.dispose()


def postgres_section(bench: Bench, size: int) -> None:
    print(f"PostgreSQL ({POSTGRES_URL.split('@')[1]}), {size} messages")
    messages = backlog(size)
    reset_postgres()
    account = bench.filled(messages)
    floor_seconds = floor_drain(account, bench.workdir / f"pgfloor{size}.db")
    floor_rate = line("floor (FETCH + parse + SQLite INSERT)", size, floor_seconds)
    one = bench.drain(bench.setup(POSTGRES_URL, [account]))
    line("maild, one daemon", size, one["seconds"], floor_rate)

    reset_postgres()
    halves = [bench.filled(messages[:size // 2]), bench.filled(messages[size // 2:])]
    spec = bench.setup(POSTGRES_URL, halves)
    migrate(POSTGRES_URL)  # before the race, not by both daemons at once
    started = time.perf_counter()
    both = [worker({**spec, "job": "drain", "mailbox": i}) for i in range(2)]
    results = [finish(p) for p in both]
    line("maild, two daemons, a mailbox each", size, time.perf_counter() - started,
         floor_rate, f"; {sum(r['stored'] for r in results)} stored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--rounds", type=int, default=3,
                        help="floor/maild rounds for the first size (median reported)")
    parser.add_argument("--memory-messages", type=int, default=10_000)
    parser.add_argument("--big-attachments", type=int, default=10)
    parser.add_argument("--scale-existing", type=int, default=1_000_000)
    parser.add_argument("--skip", default="", help="comma-separated: memory,scale,postgres")
    parser.add_argument("--no-parser-process", action="store_true",
                        help="parse in the intake itself ([intake] parse_in_second_process)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(json.loads(args.worker))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    print(f"maild drain benchmark, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}")
    dovecot = Dovecot()
    dovecot.start()
    with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmp:
        workdir = Path(tmp)
        sink_port = free_port()
        sink = start_sink("127.0.0.1", sink_port, workdir / "sink")
        try:
            bench = Bench(dovecot, workdir, sink_port, not args.no_parser_process)
            drain_section(bench, sizes, args.rounds)
            if "memory" not in skip:
                memory_section(bench, args.memory_messages, args.big_attachments)
            if "scale" not in skip:
                scale_section(bench, sizes[0], args.scale_existing)
            if "postgres" not in skip:
                postgres_section(bench, sizes[0])
        finally:
            sink.stop()
            dovecot.close()


if __name__ == "__main__":
    main()
