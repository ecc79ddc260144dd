"""The sender's throughput to maild's SMTP sink, this checkout against another revision
of maild (by default `main`), next to a floor, all in one run.

    .venv/bin/python -m bench.outbox [--mails 1000] [--rounds 2] [--before main]

One SQLite database with `--mails` tickets, each with its acknowledgment queued, is built
once by this checkout; every run delivers a copy of it in a child process (`Sender.deliver_due`
until nothing is due: claim, send, record the delivery on the ticket). The other revision
is `git archive`d into a temporary directory and run on the same copy without migrating
(the columns it does not know are left alone). Floor: smtplib sending the same bytes over
one connection. Rounds alternate the two revisions, as the machine's speed drifts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from maild.channels.sink import start_sink
from maild.clock import SystemClock
from maild.config import parse_config
from maild.intake.pipeline import ingest
from maild.runtime.app import build_app
from tests.conftest import free_port

WORKER = """
import json, logging, sys, time
from maild.clock import SystemClock
from maild.config import parse_config
from maild.runtime.app import build_app
logging.disable(logging.WARNING)
app = build_app(parse_config(sys.argv[1], {}), SystemClock(), migrate=False)
started = time.perf_counter()
sent = 0
while True:
    report = app.sender.deliver_due(limit=500)
    if not report.attempted:
        break
    sent += report.sent
print(json.dumps({"sent": sent, "seconds": time.perf_counter() - started}))
app.close()
"""


def config_text(database: Path, storage: Path, port: int) -> str:
    return f"""
[support]
address = "support@example.com"
[storage]
url = "sqlite:///{database}"
dir = "{storage}"
[outbound]
host = "127.0.0.1"
port = {port}
[business_hours]
timezone = "America/Los_Angeles"
"""


def customer_mail(n: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Customer {n} <c{n}@customer.example>"
    mail["To"] = "support@example.com"
    mail["Subject"] = f"Question {n}"
    mail["Message-ID"] = f"<q{n}@customer.example>"
    mail["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
    mail.set_content(f"Hello,\n\nquestion number {n}.\n")
    return mail.as_bytes()


def build(workdir: Path, mails: int, port: int) -> Path:
    database = workdir / "outbox.db"
    app = build_app(parse_config(config_text(database, workdir / "storage", port), {}),
                    SystemClock())
    for n in range(mails):
        ingest(app.intake, customer_mail(n), "bench")
    app.close()
    return database


def floor(database: Path, port: int, connections: int = 1) -> tuple[int, float]:
    """smtplib sending the queued mails, over `connections` side by side (threads, each
    its share): what the sink takes with nothing else to do."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    connection = sqlite3.connect(database)
    rows = connection.execute(
        "SELECT mail_from, recipients, raw FROM outbox WHERE status = 'queued'").fetchall()
    connection.close()

    def send(share: list[Any]) -> None:
        client = smtplib.SMTP("127.0.0.1", port)
        for mail_from, recipients, raw in share:
            client.sendmail(mail_from, json.loads(recipients), raw)
        client.quit()

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, [rows[n::connections] for n in range(connections)]))
    return len(rows), time.perf_counter() - started


def checkout(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", revision, "maild"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def deliver(code: Path, database: Path, workdir: Path, port: int, name: str) -> dict[str, float]:
    copy = workdir / f"{name}.db"
    shutil.copy(database, copy)
    env = {**os.environ, "PYTHONPATH": str(code)}
    env.pop("MAILD_NOW", None)
    done = subprocess.run(
        [sys.executable, "-c", WORKER, config_text(copy, workdir / "storage", port)],
        env=env, cwd=code, capture_output=True, text=True, check=True)
    copy.unlink()
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="main")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="maild-bench-outbox-") as temp:
        workdir = Path(temp)
        port = free_port()
        sink = start_sink("127.0.0.1", port, workdir / "sink")
        try:
            database = build(workdir, args.mails, port)
            before = checkout(args.before, workdir / "before")
            after = Path(__file__).resolve().parent.parent
            count, seconds = floor(database, port)
            floor_rate = count / seconds
            print(f"outbox -> sink, {count} mails, {args.rounds} rounds")
            print(f"  floor (smtplib, one connection)  {floor_rate:7.0f} mails/s")
            _, three = floor(database, port, connections=3)
            print(f"  smtplib, three connections       {count / three:7.0f} mails/s")
            rates: dict[str, list[float]] = {"before": [], "after": []}
            for round_ in range(args.rounds):
                for name, code in (("before", before), ("after", after)):
                    result = deliver(code, database, workdir, port, f"{name}{round_}")
                    assert result["sent"] == count, result
                    rate = result["sent"] / result["seconds"]
                    rates[name].append(rate)
                    print(f"  {name:6} ({args.before if name == 'before' else 'this checkout'})"
                          f"  {rate:7.0f} mails/s = {rate / floor_rate:.2f} of the floor")
            ratio = statistics.median(rates["after"]) / statistics.median(rates["before"])
            print(f"  after / before (medians)         {ratio:.2f}")
        finally:
            sink.stop()


if __name__ == "__main__":
    main()
