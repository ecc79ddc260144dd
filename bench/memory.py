"""Peak memory of maild taking in a backlog with big mail, on every channel: 10,000
messages of the drain's realistic mix, ten of them replaced by a 34 MB mail with a 25 MB
attachment, (a) drained from Dovecot by `maild run --once --only inbound`, (b) sent to
the SMTP listener of `maild run --only inbound` over a few connections at once, (c) given
to `maild ingest`, a process per file, as an MTA's pipe does.

    .venv/bin/python -m bench.memory                                   # about 10 minutes
    .venv/bin/python -m bench.memory --messages 1000 --ingest-files 40 # about 2 minutes
    .venv/bin/python -m bench.memory --code /tmp/memory-before         # another checkout

Every channel starts maild on an empty database, so each first start migrates the
schema (in a process of its own since 2026-12-01). maild's peak "in all" is its own
(VmHWM; for a command that ends on its own, ru_maxrss from wait4) plus its parser
process's peak; the migration's process, which runs before anything is taken in, is
printed beside it with maild's size while it ran. For `maild ingest` each file is a
process of its own: the figure in all is the largest of them.
"""

from __future__ import annotations

import argparse
import os
import queue
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.mailbox import backlog_with_big_mail, config_environment, config_text, fill
from bench.maild_process import (
    Finished,
    Helpers,
    maild_command,
    run_measured,
    vm_hwm_mb,
    wait_until_listening,
)
from tests.dovecot import Account, Dovecot, free_port

LIMIT_MB = 150.0


def write_config(directory: Path, text: str) -> Path:
    (directory / "storage").mkdir(parents=True)
    path = directory / "maild.toml"
    path.write_text(text + '\n[logging]\nlevel = "warning"\n')
    return path


def base_config(directory: Path, accounts: list[Account] | None = None) -> str:
    return config_text(f"sqlite:///{directory}/maild.db", str(directory / "storage"),
                       free_port(), accounts or [])


def report(channel: str, count: int, seconds: float, own: float, helpers: Helpers,
           note: str = "") -> float:
    """Prints and returns maild's peak in all: the larger of its own peak with its
    parser process's, and of its size during its start's migration with the migration's
    process (the two are alive together)."""
    working = own + helpers.parser_mb
    migrating = helpers.during_migration_mb + helpers.migration_mb
    in_all = max(working, migrating)
    verdict = "under" if in_all < LIMIT_MB else "OVER"
    print(f"  {channel:30s} {count / seconds:5.1f} msg/s, peak {in_all:4.0f} MB in all, "
          f"{verdict} {LIMIT_MB:.0f}: {own:.0f} + the parser process's "
          f"{helpers.parser_mb:.0f}; at start {helpers.during_migration_mb:.0f} + the "
          f"migration's process {helpers.migration_mb:.0f}{note}", flush=True)
    return in_all


def imap(messages: list[bytes], workdir: Path, code: Path | None) -> float:
    dovecot = Dovecot()
    dovecot.start()
    try:
        account = dovecot.add_account()
        started = time.perf_counter()
        fill(account, "INBOX", messages)
        print(f"  (Dovecot's INBOX filled in {time.perf_counter() - started:.0f} s)", flush=True)
        directory = workdir / "imap"
        directory.mkdir()
        config = write_config(directory, base_config(directory, [account]))
        os.environ.update(config_environment([account]))
        log = directory / "maild.log"
        finished = run_measured([*maild_command(code), "--config", str(config), "run", "--once",
                                 "--only", "inbound"], log)
        said = [line for line in log.read_text().splitlines() if line.startswith("received")]
        if finished.exit_code != 0 or not said:
            raise SystemExit(f"maild run --once: exit {finished.exit_code}, see {log}")
        return report("IMAP, maild run --once", len(messages), finished.seconds,
                      finished.peak_mb, finished.helpers, f"; {said[-1].split(';')[0]}")
    finally:
        dovecot.close()


def listener(messages: list[bytes], workdir: Path, connections: int,
             code: Path | None) -> float:
    directory = workdir / "listener"
    directory.mkdir()
    port = free_port()
    config = write_config(directory, base_config(directory) + f"""
[inbound_smtp]
enabled = true
host = "127.0.0.1"
port = {port}
max_message_bytes = 104857600
""")
    with (directory / "maild.log").open("wb") as log:
        daemon = subprocess.Popen([*maild_command(code), "--config", str(config), "run",
                                   "--only", "inbound"], stdout=log, stderr=log)
    helpers, running = Helpers(), threading.Event()
    running.set()
    watcher = threading.Thread(target=helpers.watch, args=(daemon.pid, running), daemon=True)
    watcher.start()
    try:
        wait_until_listening(port, daemon)
        waiting: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        for raw in messages:
            waiting.put(raw)
        refused: list[str] = []

        def send() -> None:
            """An MTA's delivery agent: one connection, mail after mail; a mail
            deferred (4xx) is tried again."""
            with smtplib.SMTP("127.0.0.1", port, timeout=600) as client:
                while True:
                    try:
                        raw = waiting.get_nowait()
                    except queue.Empty:
                        return
                    for _ in range(5):
                        try:
                            client.sendmail("c@customer.example", ["support@example.com"], raw)
                            break
                        except smtplib.SMTPResponseException as exc:
                            if exc.smtp_code // 100 != 4:
                                refused.append(f"{exc.smtp_code} {exc.smtp_error[:60]!r}")
                                break
                            time.sleep(1)
                            client.rset()

        started = time.perf_counter()
        senders = [threading.Thread(target=send) for _ in range(connections)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        seconds = time.perf_counter() - started
        helpers.look(daemon.pid)
        own = vm_hwm_mb(daemon.pid)
    finally:
        running.clear()
        watcher.join()
        daemon.terminate()
        daemon.wait(timeout=120)
    note = f"; {len(messages) - len(refused)} accepted" + (
        f", refused: {refused[:3]}" if refused else "")
    return report(f"SMTP listener, {connections} connections", len(messages), seconds, own,
                  helpers, note)


def ingest(messages: list[bytes], workdir: Path, files: int, code: Path | None) -> float:
    """`files` of the messages, every big one among them, each given to a `maild ingest`
    of its own, one after the other."""
    big = [i for i, raw in enumerate(messages) if len(raw) > 1024 * 1024]
    small = [i for i, raw in enumerate(messages) if len(raw) <= 1024 * 1024]
    step = max(1, len(small) // max(1, files - len(big)))
    chosen = sorted(big + small[::step][:max(0, files - len(big))])
    directory = workdir / "ingest"
    directory.mkdir()
    config = write_config(directory, base_config(directory))
    mail = directory / "mail.eml"
    log = directory / "maild.log"
    peaks: list[tuple[float, Finished]] = []
    seconds = 0.0
    codes: dict[int, int] = {}
    for i in chosen:
        mail.write_bytes(messages[i])
        finished = run_measured([*maild_command(code), "--config", str(config), "ingest",
                                 str(mail)], log)
        codes[finished.exit_code] = codes.get(finished.exit_code, 0) + 1
        seconds += finished.seconds
        peaks.append((finished.peak_mb + finished.helpers.parser_mb, finished))
    _, largest = max(peaks, key=lambda pair: pair[0])
    first = peaks[0][1].helpers  # the one that migrated the empty database
    largest.helpers.migration_mb = first.migration_mb
    largest.helpers.during_migration_mb = first.during_migration_mb
    exits = ", ".join(f"{n} exit {code}" for code, n in sorted(codes.items()))
    return report(f"maild ingest, {len(chosen)} files", len(chosen), seconds,
                  largest.peak_mb, largest.helpers,
                  f"; the largest of {len(chosen)} processes ({exits})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=10, help="messages with 25 MB attached")
    parser.add_argument("--connections", type=int, default=4,
                        help="senders at once to the SMTP listener")
    parser.add_argument("--ingest-files", type=int, default=200,
                        help="files given to `maild ingest` (every big one among them): a "
                             "process each, about a second each")
    parser.add_argument("--code", type=Path,
                        help="run the maild package in this checkout (the code before)")
    parser.add_argument("--skip", default="", help="comma-separated: imap,listener,ingest")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    code = args.code.resolve() if args.code else None

    messages = backlog_with_big_mail(args.messages, args.big)
    print(f"maild memory benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, maild from "
          f"{code or 'this checkout'}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{len(messages)} messages, {sum(map(len, messages)) / 2**20:.0f} MB, {args.big} "
          f"of them {max(map(len, messages)) / 2**20:.1f} MB with a 25 MB attachment; "
          f"limit {LIMIT_MB:.0f} MB in all, helpers counted", flush=True)
    peaks = []
    with tempfile.TemporaryDirectory(prefix="maild-memory-") as tmp:
        workdir = Path(tmp)
        if "imap" not in skip:
            peaks.append(imap(messages, workdir, code))
        if "listener" not in skip:
            peaks.append(listener(messages, workdir, args.connections, code))
        if "ingest" not in skip:
            peaks.append(ingest(messages, workdir, args.ingest_files, code))
    print(f"  {'every channel':30s} {'':11s}  peak {max(peaks):4.0f} MB in all "
          f"({'met' if max(peaks) < LIMIT_MB else 'NOT met'}); load average at the end "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
