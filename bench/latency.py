"""IMAP intake against a private Dovecot on loopback: push latency and backlog drain,
each next to a floor measured in the same run.

    .venv/bin/python -m bench.imap [--messages 2000] [--latency-samples 100]

Latency: a message appended by another connection → maild's acknowledgment accepted
by an SMTP sink, with IDLE on; floor: the same append → the IDLE notification seen by
a bare imapclient. Drain: a backlog of N mixed messages → stored tickets with their
acknowledgments queued; floor: bare imapclient FETCH + email.message_from_bytes of the
same messages. Ratios are maild's rate over the floor's (1.0 = as fast as the floor).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import random
import resource
import statistics
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

from maild.app import App, build_app
from maild.channels.imap.reader import MailboxReader
from maild.clock import SystemClock
from maild.config import parse_config
from maild.daemon import Daemon
from tests.dovecot import Account, Dovecot, free_port
from tests.mailbuilder import make_mail

FETCH_BATCH = 50


def backlog(count: int) -> list[bytes]:
    """A realistic mix: new questions, replies in their threads, HTML-only mail,
    attachments, and a few auto-replies."""
    messages = []
    for n in range(count):
        customer = f"Customer {n % 300} <c{n % 300}@customer{n % 40}.example>"
        kind = n % 10
        if kind < 5:
            raw = make_mail(customer, subject=f"Question {n}", message_id=f"<q{n}@bench>",
                            body="Hello,\n\nSomething is wrong.\n" * 20)
        elif kind < 7:
            raw = make_mail(customer, subject=f"Re: Question {n - 2}",
                            message_id=f"<r{n}@bench>", in_reply_to=f"<q{n - 2}@bench>",
                            body="More details.\n\nOn Mon, Support wrote:\n> Hello\n" * 5)
        elif kind < 9:
            raw = make_mail(customer, subject=f"HTML {n}", message_id=f"<h{n}@bench>",
                            html="<p>Hello <b>team</b></p>" * 50)
        else:
            raw = make_mail(customer, subject=f"Out of office {n}", message_id=f"<o{n}@bench>",
                            headers={"Auto-Submitted": "auto-replied"})
        if n % 25 == 0:
            raw = with_attachment(raw, n)
        messages.append(raw)
    return messages


def with_attachment(raw: bytes, n: int) -> bytes:
    """The same mail with a 60 KB PDF-like attachment."""
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    if message.is_multipart():
        message.make_mixed()
    message.add_attachment(bytes(range(256)) * 240, maintype="application", subtype="pdf",
                           filename=f"invoice-{n}.pdf")
    return message.as_bytes()


def fill(account: Account, folder: str, messages: list[bytes]) -> None:
    client = account.client()
    if not client.folder_exists(folder):
        client.create_folder(folder)
    for start in range(0, len(messages), 200):
        client.multiappend(folder, messages[start:start + 200])
    client.logout()


def floor_drain(account: Account, folder: str) -> float:
    """Bare imapclient: FETCH every message in batches and parse it. Seconds."""
    started = time.perf_counter()
    client = account.client()
    client.select_folder(folder, readonly=True)
    uids = client.search()
    for start in range(0, len(uids), FETCH_BATCH):
        for data in client.fetch(uids[start:start + FETCH_BATCH], ["BODY.PEEK[]"]).values():
            email.message_from_bytes(data[b"BODY[]"], policy=email.policy.default)
    client.logout()
    return time.perf_counter() - started


def make_app(workdir: Path, account: Account, sink_port: int) -> App:
    text = f"""
[support]
address = "support@example.com"
[storage]
url = "sqlite:///{workdir}/maild.db"
dir = "{workdir}/storage"
[outbound]
port = {sink_port}
poll_seconds = 0.2
auto_replies_per_hour = 1000
[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {account.server.port}
security = "none"
username = "{account.username}"
password_env = "BENCH_IMAP_PASSWORD"
"""
    return build_app(parse_config(text, {"BENCH_IMAP_PASSWORD": account.password}),
                     SystemClock())


class TimingSink:
    """An SMTP server that notes when each acknowledgment arrives, by the subject's
    question number."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.event = threading.Condition()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        message = email.message_from_bytes(envelope.content)  # type: ignore[attr-defined]
        with self.event:
            self.arrived[str(message["Subject"]).rsplit(" ", 1)[-1]] = time.perf_counter()
            self.event.notify_all()
        return "250 OK"

    def wait(self, key: str, timeout: float = 30) -> float:
        with self.event:
            self.event.wait_for(lambda: key in self.arrived, timeout)
            return self.arrived[key]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def floor_latency(account: Account, samples: int) -> list[float]:
    watcher = account.client()
    watcher.select_folder("INBOX", readonly=True)
    appender = account.client()
    latencies = []
    for n in range(samples):
        watcher.idle()
        started = time.perf_counter()
        appender.append("INBOX", make_mail(message_id=f"<floor{n}@bench>"))
        while not any(r[1] == b"EXISTS" for r in watcher.idle_check(timeout=5)):
            pass
        latencies.append(time.perf_counter() - started)
        watcher.idle_done()
    appender.logout()
    watcher.logout()
    return latencies


def maild_latency(
    app: App, account: Account, sink: TimingSink, samples: int, max_pause: float
) -> list[float]:
    """Each message is appended a random pause (up to max_pause) after the previous one
    was acknowledged; with no pause, arrivals land while maild files the last one away."""
    sink.arrived.clear()
    stop = threading.Event()
    daemon = threading.Thread(target=Daemon(app).run, args=(stop,), daemon=True)
    daemon.start()
    appender = account.client()
    latencies = []
    pauses = random.Random(7)
    try:
        time.sleep(1)  # the reader connects and starts idling
        for n in range(samples):
            started = time.perf_counter()
            appender.append("INBOX", make_mail(f"c{n}@customer.example", subject=f"Ping {n}",
                                               message_id=f"<ping{n}@bench>"))
            latencies.append(sink.wait(str(n)) - started)
            time.sleep(pauses.uniform(0, max_pause))
    finally:
        appender.logout()
        stop.set()
        daemon.join(timeout=60)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=100)
    args = parser.parse_args()

    dovecot = Dovecot()
    dovecot.start()
    sink = TimingSink()
    try:
        with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmp:
            workdir = Path(tmp)
            print(f"IMAP intake on Dovecot, loopback; {args.messages} messages, "
                  f"{args.latency_samples} latency samples")

            account = dovecot.add_account()
            messages = backlog(args.messages)
            fill(account, "Baseline", messages)
            fill(account, "INBOX", messages)
            size = sum(len(m) for m in messages)
            print(f"backlog: {size / 1e6:.1f} MB")

            floor_seconds = floor_drain(account, "Baseline")
            app = make_app(workdir / "drain", account, sink.port)
            started = time.perf_counter()
            report = MailboxReader(app, app.config.mailboxes[0]).drain_once()
            maild_seconds = time.perf_counter() - started
            app.db.dispose()
            floor_rate = args.messages / floor_seconds
            maild_rate = args.messages / maild_seconds
            print(f"drain floor (FETCH + parse):      {floor_rate:8.0f} msg/s")
            print(f"drain maild (stored, ack queued): {maild_rate:8.0f} msg/s "
                  f"= {maild_rate / floor_rate:.2f} of the floor "
                  f"({report.stored} stored, {report.quarantined} quarantined)")

            floor = floor_latency(dovecot.add_account(), args.latency_samples)
            account = dovecot.add_account()
            app = make_app(workdir / "latency", account, sink.port)
            measured = maild_latency(app, account, sink, args.latency_samples, 0.5)
            app.db.dispose()
            account = dovecot.add_account()
            app = make_app(workdir / "back-to-back", account, sink.port)
            back_to_back = maild_latency(app, account, sink, args.latency_samples, 0.0)
            app.db.dispose()
            for name, values in (("IDLE notice floor", floor),
                                 ("append -> ack in sink", measured),
                                 ("same, back to back", back_to_back)):
                print(f"latency {name:22s} p50 {percentile(values, 0.5) * 1000:7.1f} ms   "
                      f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   "
                      f"max {max(values) * 1000:7.1f} ms")
            print(f"latency p50 = {statistics.median(measured) / statistics.median(floor):.1f}"
                  " x the IDLE notice floor")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"peak RSS of this process: {peak:.0f} MB")
    finally:
        sink.controller.stop()
        dovecot.close()


if __name__ == "__main__":
    main()
