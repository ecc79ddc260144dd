"""Push latency against a private Dovecot on loopback, next to a floor measured in the
same run (the backlog drain is bench/drain.py).

    .venv/bin/python -m bench.latency [--samples 200]

A message appended by another connection → maild's acknowledgment accepted by an SMTP
sink, with IDLE on; floor: the same append → the IDLE notification seen by a bare
imapclient.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from bench.mailbox import config_environment, config_text
from maild.clock import SystemClock
from maild.config import parse_config
from maild.runtime.app import App, build_app
from maild.runtime.daemon import Daemon
from tests.dovecot import Account, Dovecot, free_port
from tests.mailbuilder import make_mail


def make_app(workdir: Path, account: Account, sink_port: int) -> App:
    text = config_text(f"sqlite:///{workdir}/maild.db", str(workdir / "storage"), sink_port,
                       [account])
    return build_app(parse_config(text, config_environment([account])), SystemClock())


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
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()

    dovecot = Dovecot()
    dovecot.start()
    sink = TimingSink()
    try:
        with tempfile.TemporaryDirectory(prefix="maild-bench-") as tmp:
            workdir = Path(tmp)
            print(f"IDLE push latency on Dovecot, loopback; {args.samples} messages each")
            floor = floor_latency(dovecot.add_account(), args.samples)
            account = dovecot.add_account()
            app = make_app(workdir / "latency", account, sink.port)
            measured = maild_latency(app, account, sink, args.samples, 0.5)
            app.close()
            account = dovecot.add_account()
            app = make_app(workdir / "back-to-back", account, sink.port)
            back_to_back = maild_latency(app, account, sink, args.samples, 0.0)
            app.close()
            for name, values in (("IDLE notice floor", floor),
                                 ("append -> ack in sink", measured),
                                 ("same, back to back", back_to_back)):
                print(f"{name:22s} p50 {percentile(values, 0.5) * 1000:7.1f} ms   "
                      f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   "
                      f"max {max(values) * 1000:7.1f} ms")
            print(f"p50 = {statistics.median(measured) / statistics.median(floor):.2f}"
                  " x the IDLE notice floor")
    finally:
        sink.controller.stop()
        dovecot.close()


if __name__ == "__main__":
    main()
