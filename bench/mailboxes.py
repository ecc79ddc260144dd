"""Many mailboxes at once: one `maild run` reading N mailboxes of a private Dovecot in IDLE,
mail arriving in all of them, and what each mailbox costs the process.

    .venv/bin/python -m bench.mailboxes [--counts 1,50] [--samples 200] [--rate 5] [--url URL]

For each count, a fresh `maild run` (the daemon as an operator starts it: its own
process, SQLite or, with --url, a fresh schema of that PostgreSQL database, the IMAP
readers, the sender, the scheduler) reads N mailboxes, one
Dovecot user each, and sends its acknowledgments to an SMTP sink in this process. Every
mailbox gets a message by IMAP APPEND from a connection of its own, a random pause
(exponential, mean N / rate seconds, so about `rate` messages a second in all) after its
previous one was acknowledged. Latency: the APPEND's start -> the acknowledgment accepted
by the sink. Beside it, a bare imapclient watcher per mailbox, in IDLE on the same folder,
notes when Dovecot announces each message (its EXISTS push): Dovecot's own notice delay,
for the same messages in the same run. The process's threads, IMAP connections, database
connections, open files and RSS (with the parser process's) are sampled throughout.
"""

from __future__ import annotations

import argparse
import bisect
import email
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bench.mailbox import config_environment, config_text
from tests.dovecot import Account, Dovecot, free_port
from tests.mailbuilder import make_mail
from tests.waiting import child_pids

# Dovecot's defaults stop at 100 processes a service, and its imap service (one process
# a connection) at 1,024 of its own: the benchmark holds three connections per mailbox
# (maild's, the watcher's, the appender's).
DOVECOT_LIMITS = """
default_process_limit = 2000
default_client_limit = 10000
default_vsz_limit = 0
service imap {
  process_limit = 2000
}
"""


class AckSink:
    """An SMTP server noting when the first mail answering each benchmark message arrives
    (by its In-Reply-To, the message's own Message-ID)."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.condition = threading.Condition()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        at = time.perf_counter()
        message = email.message_from_bytes(envelope.content)  # type: ignore[attr-defined]
        key = str(message.get("In-Reply-To", "")).strip()
        with self.condition:
            self.arrived.setdefault(key, at)
            self.condition.notify_all()
        return "250 OK"

    def wait(self, key: str, stop: threading.Event, timeout: float = 60) -> float | None:
        deadline = time.monotonic() + timeout
        with self.condition:
            while key not in self.arrived:
                if stop.is_set() or time.monotonic() > deadline:
                    return None
                self.condition.wait(0.5)
            return self.arrived[key]


class Watcher(threading.Thread):
    """A bare imapclient in IDLE on INBOX (read-only), noting every EXISTS push."""

    def __init__(self, account: Account, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.account = account
        self.stop = stop
        self.pushes: list[float] = []
        self.ready = threading.Event()

    def run(self) -> None:
        client = self.account.client()
        client.select_folder("INBOX", readonly=True)
        client.idle()
        self.ready.set()
        while not self.stop.is_set():
            responses = client.idle_check(timeout=1)
            at = time.perf_counter()
            if any(len(r) >= 2 and r[1] == b"EXISTS" for r in responses):
                self.pushes.append(at)
        client.idle_done()
        client.logout()

    def notice_after(self, started: float) -> float | None:
        index = bisect.bisect_right(self.pushes, started)
        return self.pushes[index] - started if index < len(self.pushes) else None


@dataclass
class Usage:
    """The most of each figure seen while sampling the maild process and its children."""

    threads: int = 0
    imap_connections: int = 0
    db_connections: int = 0
    open_files: int = 0
    rss_mb: float = 0.0
    helper_rss_mb: float = 0.0
    peak_mb: float = 0.0  # VmHWM of the process and of its helpers, summed

    def take(self, other: Usage) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, max(getattr(self, name), getattr(other, name)))


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = row.partition(":")
        fields[name] = value.strip()
    return fields


def _kb(value: str) -> float:
    return int(value.split()[0]) / 1024


def _sockets_to(port: int) -> set[str]:
    """Inodes of the TCP sockets on this machine connected to 127.0.0.1:`port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            columns = row.split()
            if int(columns[2].rsplit(":", 1)[1], 16) == port and columns[3] == "01":
                inodes.add(columns[9])
    return inodes


@dataclass(frozen=True)
class Store:
    """Where the round's maild keeps its database: a SQLite file, or a PostgreSQL schema
    (its connections are counted as sockets to the server's port)."""

    url: str
    sqlite_file: Path | None = None
    postgresql_port: int = 0

    @property
    def kind(self) -> str:
        return "SQLite" if self.sqlite_file else "PostgreSQL"


@contextmanager
def fresh_store(workdir: Path, postgresql_url: str | None) -> Iterator[Store]:
    if postgresql_url is None:
        database = workdir / "maild.db"
        yield Store(f"sqlite:///{database}", sqlite_file=database)
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgresql_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield Store(f"{postgresql_url}?options=-csearch_path%3D{schema}",
                    postgresql_port=make_url(postgresql_url).port or 5432)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def sample(pid: int, imap_port: int, store: Store) -> Usage:
    usage = Usage()
    status = _status(pid)
    usage.threads = int(status["Threads"])
    usage.rss_mb = _kb(status["VmRSS"])
    usage.peak_mb = _kb(status["VmHWM"])
    for child in child_pids(pid):
        child_status = _status(child)
        usage.helper_rss_mb += _kb(child_status["VmRSS"])
        usage.peak_mb += _kb(child_status["VmHWM"])
    imap = _sockets_to(imap_port)
    postgresql = _sockets_to(store.postgresql_port) if store.postgresql_port else set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        usage.open_files += 1
        if target.startswith("socket:[") and target[8:-1] in imap:
            usage.imap_connections += 1
        elif target.startswith("socket:[") and target[8:-1] in postgresql:
            usage.db_connections += 1
        elif target == str(store.sqlite_file):  # each SQLite connection holds it open once
            usage.db_connections += 1
    return usage


class Sampler(threading.Thread):
    def __init__(self, probe: Callable[[], Usage]) -> None:
        super().__init__(daemon=True)
        self.probe = probe
        self.most = Usage()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.most.take(self.probe())
            except (OSError, KeyError):
                return  # the process ended


class Budget:
    """How many messages are still to be sent, over all mailboxes."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left == 0:
                return False
            self.left -= 1
            return True

    def spent(self) -> bool:
        with self.lock:
            return self.left == 0


@dataclass
class Round:
    count: int
    latencies: list[float] = field(default_factory=list)
    notices: list[float] = field(default_factory=list)
    missing: int = 0  # appended, never acknowledged within the minute
    started_in: float = 0.0  # from `maild run` to every reader connected
    store: str = "SQLite"
    idle_usage: Usage = field(default_factory=Usage)
    busy_usage: Usage = field(default_factory=Usage)
    log: Path | None = None


CONNECTED = "SELECT count(*) FROM mailbox_connections WHERE state = 'connected'"


def connected_readers(store: Store) -> int:
    if store.sqlite_file is not None:
        try:
            with sqlite3.connect(f"file:{store.sqlite_file}?mode=ro", uri=True,
                                 timeout=1) as db:
                return int(db.execute(CONNECTED).fetchone()[0])
        except sqlite3.Error:
            return 0
    engine = create_engine(store.url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text(CONNECTED)) or 0)
    except SQLAlchemyError:
        return 0  # the schema is not made yet
    finally:
        engine.dispose()


def start_maild(workdir: Path, accounts: list[Account], sink_port: int,
                store: Store) -> subprocess.Popen[bytes]:
    config = workdir / "maild.toml"
    config.write_text(config_text(store.url, str(workdir / "storage"), sink_port, accounts))
    env = {**os.environ, **config_environment(accounts)}
    with open(workdir / "maild.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "maild", "--config", str(config), "run"],
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def measure(dovecot: Dovecot, sink: AckSink, workdir: Path, count: int, samples: int,
            rate: float, connect_timeout: float, store: Store) -> Round:
    result = Round(count, log=workdir / "maild.log", store=store.kind)
    accounts = [dovecot.add_account() for _ in range(count)]
    started = time.perf_counter()
    maild = start_maild(workdir, accounts, sink.port, store)
    stop = threading.Event()
    watchers = [Watcher(account, stop) for account in accounts]
    try:
        deadline = time.monotonic() + connect_timeout
        while connected_readers(store) < count:
            if maild.poll() is not None:
                raise SystemExit(f"maild exited with {maild.returncode}; see {result.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"only {connected_readers(store)} of {count} readers "
                                 f"connected after {connect_timeout:.0f} s; see {result.log}")
            time.sleep(0.2)
        result.started_in = time.perf_counter() - started
        time.sleep(2)  # past the readers' first, one-second confirming IDLE
        result.idle_usage = sample(maild.pid, dovecot.port, store)
        for watcher in watchers:
            watcher.start()
            watcher.ready.wait(10)
        sampler = Sampler(lambda: sample(maild.pid, dovecot.port, store))
        sampler.start()
        budget = Budget(samples)
        lock = threading.Lock()
        mean_pause = max(0.25, count / rate)

        def deliver(index: int, account: Account, watcher: Watcher) -> None:
            pauses = random.Random(index)
            client = account.client()
            n = 0
            try:
                time.sleep(pauses.uniform(0, mean_pause))  # spread the first arrivals
                while not stop.is_set() and budget.take():
                    key = f"<b{count}m{index}n{n}@bench>"
                    raw = make_mail(f"c{index}x{n}@customer{index}.example",
                                    subject=f"Ping {index}.{n}", message_id=key)
                    appended = time.perf_counter()
                    client.append("INBOX", raw)
                    acked = sink.wait(key, stop)
                    notice = watcher.notice_after(appended)
                    with lock:
                        if acked is None:
                            result.missing += 1
                        else:
                            result.latencies.append(acked - appended)
                        if notice is not None:
                            result.notices.append(notice)
                    n += 1
                    if budget.spent():  # no pause after the last one
                        break
                    time.sleep(pauses.expovariate(1 / mean_pause))
            finally:
                client.logout()

        senders = [threading.Thread(target=deliver, args=(i, a, w), daemon=True)
                   for i, (a, w) in enumerate(zip(accounts, watchers, strict=True))]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        sampler.stop.set()
        sampler.join()
        result.busy_usage = sampler.most
    finally:
        stop.set()
        maild.send_signal(signal.SIGTERM)
        try:
            maild.wait(timeout=90)
        except subprocess.TimeoutExpired:
            maild.kill()
            maild.wait()
        for watcher in watchers:
            if watcher.is_alive():
                watcher.join(timeout=5)
    return result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def figures(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {percentile(values, 0.5) * 1000:6.0f} ms  "
            f"p95 {percentile(values, 0.95) * 1000:6.0f} ms  "
            f"max {max(values) * 1000:6.0f} ms")


def report(result: Round) -> None:
    idle, busy = result.idle_usage, result.busy_usage
    print(f"{result.count} mailbox(es), {result.store}: {len(result.latencies)} acknowledged"
          + (f", {result.missing} NOT within a minute" if result.missing else "")
          + f"; every reader connected {result.started_in:.1f} s after the start")
    print(f"  Dovecot's notice (APPEND -> EXISTS)  {figures(result.notices)}")
    print(f"  maild (APPEND -> ack in the sink)    {figures(result.latencies)}")
    for name, usage in (("connected, idle", idle), ("most while busy", busy)):
        print(f"  {name:16s} threads {usage.threads:4d}  IMAP connections "
              f"{usage.imap_connections:4d}  DB connections {usage.db_connections:3d}  "
              f"open files {usage.open_files:4d}  RSS {usage.rss_mb:5.0f} MB "
              f"+ parser {usage.helper_rss_mb:3.0f} MB")
    print(f"  peak RSS {busy.peak_mb:.0f} MB (maild and the parser process, VmHWM)")


def dovecot_complaints(dovecot: Dovecot, offset: int) -> int:
    """Print Dovecot's warnings and errors logged since `offset` (each kind once, counted);
    the new offset."""
    log = dovecot.root / "dovecot.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    kinds: dict[str, int] = {}
    for row in text[offset:].splitlines():
        if "Warning" in row or "Error" in row or "Fatal" in row or "Panic" in row:
            kind = row.split(": ", 1)[-1].split("(", 1)[0][:140]
            kinds[kind] = kinds.get(kind, 0) + 1
    for kind, times in kinds.items():
        print(f"  Dovecot logged {times} x: {kind}")
    return len(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,50", help="mailbox counts, comma-separated")
    parser.add_argument("--samples", type=int, default=200, help="messages per count")
    parser.add_argument("--rate", type=float, default=5.0,
                        help="messages a second over all mailboxes (one mailbox: as fast as "
                             "a quarter-second pause after each acknowledgment allows)")
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--idle-check-seconds", type=int,
                        help="Dovecot's mailbox_idle_check_interval (its default: 30): how "
                             "often an IDLE session past Linux's inotify limit looks")
    parser.add_argument("--url", help="a PostgreSQL database (each count gets a schema of "
                                      "its own in it); default: SQLite")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"maild with many mailboxes, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    dovecot = Dovecot()
    with open(dovecot.config, "a") as config:
        config.write(DOVECOT_LIMITS)
        if args.idle_check_seconds:
            config.write(f"mailbox_idle_check_interval = {args.idle_check_seconds} secs\n")
    dovecot.start()
    sink = AckSink()
    try:
        tmp = Path(tempfile.mkdtemp(prefix="maild-bench-"))
        logged = 0
        missed = False
        for count in (int(c) for c in args.counts.split(",")):
            workdir = tmp / f"boxes{count}"
            workdir.mkdir(parents=True)
            with fresh_store(workdir, args.url) as store:
                result = measure(dovecot, sink, workdir, count, args.samples, args.rate,
                                 args.connect_timeout, store)
            report(result)
            missed = missed or result.missing > 0
            logged = dovecot_complaints(dovecot, logged)
            sys.stdout.flush()
        if missed:
            print(f"maild's logs are kept in {tmp}")
        else:  # kept, with maild's logs, when a count fails
            shutil.rmtree(tmp)
    finally:
        sink.controller.stop()
        dovecot.close()
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
