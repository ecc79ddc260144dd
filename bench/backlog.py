"""A backlog of mail as the world writes it (tests/realmail.py), answered end to end by
`maild run --once` through a real Dovecot, next to the floor measured in the same run.

    .venv/bin/python -m bench.backlog --messages 2000 [--before /tmp/drain-before]
    .venv/bin/python -m bench.backlog --messages 2000 --profile /tmp/after.prof
    .venv/bin/python -m bench.backlog --messages 2000 --phases   # where each run's time went

The backlog comes in two sittings, as mail happens: the customers' first mails (new
conversations, noise, duplicates), then, once maild's acknowledgments have reached them,
their replies in every client's style, their out-of-office answers, their servers'
bounces, strangers, noise and duplicates. Each sitting is put in INBOX, the floor reads
it, then one `maild run --once` (a process of its own, as an operator starts it) takes it
in and sends every acknowledgment and staff notification to maild's SMTP sink. maild's
time is the wall clock of those processes, start to exit; the run is checked afterwards:
every message stored or set aside, nothing left queued in the outbox.

Floor, as bench/drain.py defines it: a bare imapclient FETCH (batches of 50) of the same
INBOX, `email.message_from_bytes(policy=default)` and one SQLite INSERT committed per
message. With --before, another checkout (e.g. a `git worktree` of main) is measured on
the same corpus first, by this checkout's interpreter with that checkout first on the path.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import drain
from maild.channels.sink import start_sink
from tests.conftest import free_port
from tests.dovecot import Dovecot
from tests.realmail import Corpus, Desk

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STAFF = ["dan@example.com", "eve@example.com", "raj@example.com", "kim@example.com"]
MAILS_PER_CONVERSATION = 2.7


def config(url: str, storage: Path, sink_port: int, account: Any, staff: int) -> str:
    return f"""
[support]
address = "support@example.com"
name = "Example Support"
[storage]
url = "{url}"
dir = "{storage}"
[outbound]
host = "127.0.0.1"
port = {sink_port}
auto_replies_per_hour = 100000
[staff]
addresses = {STAFF[:staff]!r}
[[mailboxes]]
name = "support"
host = "127.0.0.1"
port = {account.server.port}
security = "none"
username = "{account.username}"
password_env = "BENCH_IMAP_PASSWORD"
address = "support@example.com"
"""


def floor_drain(account: Any, database: Path) -> float:
    """bench/drain.py's floor: FETCH, parse, one INSERT committed per message. Seconds.
    OR IGNORE, as the world's mail repeats Message-IDs (duplicates) or has none."""
    return drain.floor_drain(account, database, or_ignore=True)


def reset_postgres() -> None:
    from sqlalchemy import create_engine

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


# What maild logs as it ends one message of the intake, and as it sends one mail.
_TAKEN_IN = (" stored ", " is already stored", " ignored ", " quarantined ")
_SENT = " sent outbox #"


def phases(stderr: str, started: float, ended: float) -> str:
    """Where a run's wall clock went, read from its log's timestamps: until the first
    message was taken in (start-up: imports, migrations, login), until the last one was
    (the intake), until the last mail was sent (sending left after the intake: the sweeps,
    then the first mail sent after them to the last), to exit."""
    taken, sent = [], []
    for line in stderr.splitlines():
        try:
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        except ValueError:
            continue
        if any(mark in line for mark in _TAKEN_IN):
            taken.append(at)
        elif _SENT in line:
            sent.append(at)
    if not taken:
        return f"{ended - started:.1f} s, nothing taken in"
    intake_end = taken[-1]
    sending_end = max(sent[-1], intake_end) if sent else intake_end
    during = sum(at <= intake_end for at in sent)
    after = [at for at in sent if at > intake_end]
    split = (f" = {after[0] - intake_end:.1f} s to the first mail (the sweeps) + "
             f"{after[-1] - after[0]:.1f} s sending {len(after)} mails" if after else "")
    return (f"start-up {taken[0] - started:.1f} s, intake {intake_end - taken[0]:.1f} s "
            f"({during} of {len(sent)} mails sent meanwhile), "
            f"sending after it {sending_end - intake_end:.1f} s{split}, "
            f"to exit {ended - sending_end:.1f} s")


class TimedDesk(Desk):
    """`maild run --once`, timed; optionally under cProfile."""

    profile: Path | None = None
    seconds: float = 0.0
    runs: int = 0
    show_phases: bool = False

    def run_once(self, now: datetime) -> None:
        command = self.command
        if self.profile is not None:
            self.runs += 1
            command = [command[0], "-m", "cProfile", "-o", f"{self.profile}.{self.runs}",
                       *command[1:]]
        started, wall_started = time.perf_counter(), time.time()
        children, sink = resource.getrusage(resource.RUSAGE_CHILDREN), time.process_time()
        done = subprocess.run([*command, "run", "--once"],
                              env={**self.env, "MAILD_NOW": now.isoformat()},
                              capture_output=True, timeout=3600, cwd=self.cwd)
        self.seconds += time.perf_counter() - started
        sink = time.process_time() - sink  # this process waited: its time is the sink's
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        maild_user = children_after.ru_utime - children.ru_utime
        maild_system = children_after.ru_stime - children.ru_stime
        if done.returncode != 0:
            raise RuntimeError(f"maild run --once failed: {done.stderr.decode()[-2000:]}")
        if self.show_phases:
            said = phases(done.stderr.decode(errors="replace"), wall_started, time.time())
            print(f"    run: {said}")
            print(f"      CPU: maild's processes {maild_user + maild_system:.1f} s "
                  f"({maild_system:.1f} s of it in the kernel), the sink {sink:.1f} s")
            print(f"      {self.arrivals(wall_started)}")
        errors = [line for line in done.stderr.decode(errors="replace").splitlines()
                  if " ERROR " in line or " CRITICAL " in line or " WARNING " in line]
        if errors:
            print(f"  {len(errors)} warning(s) or error(s) logged, the first: {errors[0][:600]}")

    def arrivals(self, since: float) -> str:
        """When the run's mail reached the sink, from the start of the run: the sink
        names each file by the time it took the mail (maild/channels/sink.py)."""
        taken = sorted(at - since for at in (int(path.name.split(".", 1)[0]) / 1e9
                                             for path in self.sink_dir.glob("*.eml"))
                       if at >= since)
        if not taken:
            return "no mail reached the sink"
        return (f"mails at the sink: the first {taken[0]:.1f} s after the start, half by "
                f"{taken[len(taken) // 2]:.1f} s, the last by {taken[-1]:.1f} s")


def inbox_count(account: Any) -> int:
    """What maild has not taken in: it files every message it stores or sets aside."""
    client = account.client()
    try:
        return int(client.select_folder("INBOX", readonly=True)[b"EXISTS"])
    finally:
        client.logout()


def outcome(url: str, sink_dir: Path) -> dict[str, int]:
    """What the run left: messages stored, set aside, outbox rows by status, mail in the sink."""
    counts: dict[str, int] = {}
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        rows = connection.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
        counts["messages in"] = connection.execute(
            "SELECT count(*) FROM messages WHERE direction = 'in'").fetchone()[0]
        counts["set aside"] = connection.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        connection.close()
    else:
        from sqlalchemy import create_engine

        engine = create_engine(POSTGRES_URL)
        with engine.connect() as connection:
            rows = list(connection.exec_driver_sql(
                "SELECT status, count(*) FROM outbox GROUP BY status"))
            counts["messages in"] = connection.exec_driver_sql(
                "SELECT count(*) FROM messages WHERE direction = 'in'").scalar_one()
            counts["set aside"] = connection.exec_driver_sql(
                "SELECT count(*) FROM quarantine").scalar_one()
        engine.dispose()
    counts.update({f"outbox {status}": n for status, n in rows})
    counts["in the sink"] = len(list(sink_dir.glob("*.eml")))
    return counts


def measure(name: str, checkout: Path, dovecot: Dovecot, work: Path, conversations: int,
            seed: int, database: str, profile: Path | None, staff: int,
            show_phases: bool = False) -> tuple[float, float, int]:
    """One checkout on the corpus: (floor seconds, maild seconds, messages)."""
    account = dovecot.add_account()
    sink_dir = work / "sink"
    port = free_port()
    sink = start_sink("127.0.0.1", port, sink_dir)
    url = f"sqlite:///{work}/maild.db" if database == "sqlite" else POSTGRES_URL
    if database == "postgresql":
        reset_postgres()
    try:
        path = work / "maild.toml"
        path.write_text(config(url, work / "storage", port, account, staff))
        env = {**os.environ, "MAILD_CONFIG": str(path), "BENCH_IMAP_PASSWORD": account.password,
               "PYTHONPATH": str(checkout)}
        desk = TimedDesk([sys.executable, "-m", "maild"], env, account, sink_dir, cwd=checkout)
        desk.profile = profile
        desk.show_phases = show_phases
        corpus = Corpus(seed=seed)
        floor = 0.0
        count = 0
        for sitting in range(2):
            if sitting == 0:
                mails = corpus.first_round(conversations)
            else:
                corpus.learn(desk.sent())
                mails = corpus.reply_round()
            desk.deliver(mails)
            cpu = time.process_time()
            seconds = floor_drain(account, work / f"floor{sitting}.db")
            floor += seconds
            if show_phases:
                print(f"    floor: {seconds:.1f} s, CPU {time.process_time() - cpu:.1f} s "
                      f"(Dovecot's apart)")
            desk.run_once(corpus.now)
            count += len(mails)
            left_in_inbox = inbox_count(account)
            if left_in_inbox:
                raise SystemExit(f"{name}: maild left {left_in_inbox} messages in INBOX")
        left = outcome(url, sink_dir)
        print(f"  {name} ({checkout}), {database}: {count} messages, {left}")
        if left.get("outbox queued"):
            raise SystemExit("maild left mail queued in the outbox")
        return floor, desk.seconds, count
    finally:
        sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000,
                        help="about this many messages in all (both sittings)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rounds", type=int, default=1, help="before/after pairs")
    parser.add_argument("--before", type=Path, help="another checkout to measure too")
    parser.add_argument("--staff", type=int, default=1,
                        help="engineers on the staff list, each notified of every mail")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql or both")
    parser.add_argument("--profile", type=Path,
                        help="cProfile this checkout's runs into PROFILE.1, PROFILE.2")
    parser.add_argument("--phases", action="store_true",
                        help="say where each run's wall clock went, from its log")
    args = parser.parse_args()
    conversations = round(args.messages / MAILS_PER_CONVERSATION)
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    load = os.getloadavg()
    print(f"maild backlog benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"Python {sys.version.split()[0]}, {conversations} conversations, "
          f"{args.staff} engineer(s) notified")
    checkouts = [("before", args.before.resolve())] if args.before else []
    checkouts.append(("after", ROOT))
    dovecot = Dovecot()
    dovecot.start()
    try:
        for database in databases:
            for _ in range(args.rounds):
                for name, checkout in checkouts:
                    with tempfile.TemporaryDirectory(prefix=f"maild-backlog-{name}-") as work:
                        floor, seconds, count = measure(
                            name, checkout, dovecot, Path(work), conversations, args.seed,
                            database, args.profile if name == "after" else None, args.staff,
                            args.phases)
                    print(f"    floor {count / floor:6.0f} msg/s ({floor:5.1f} s), maild "
                          f"{count / seconds:6.0f} msg/s ({seconds:5.1f} s): "
                          f"floor/maild = {floor / seconds:.2f}")
                    sys.stdout.flush()
    finally:
        dovecot.close()


if __name__ == "__main__":
    main()
