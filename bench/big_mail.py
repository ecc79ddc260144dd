"""Peak memory of big mail outside IMAP: the SMTP listener (one mail, six at once) and
`maild ingest`, each mail carrying a 25 MB attachment; and, first, the listener's rate
for small mail (one connection, one mail after the other) and its size when idle.

    .venv/bin/python -m bench.big_mail                      # this checkout
    .venv/bin/python -m bench.big_mail --code /tmp/bigmail-before   # another checkout's maild

Every figure is measured on a fresh `maild` process, started on a database made
beforehand by `maild db upgrade` (the code before 2026-12-01 kept Alembic, 12 MB, after
a first start's migration; the backlog on every channel, first starts included, is
`bench/memory.py`): `maild run --only inbound` for the listener (its peak RSS, VmHWM, read
before it is stopped, plus the peak of any parser process it started), `maild ingest
FILE` for the command line (ru_maxrss of the process, from wait4). `--code DIR` runs
the maild package found in DIR with this virtualenv's libraries: the code before a
change, measured in the same run as the code after it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import smtplib
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.mailbox import BIG_ATTACHMENT_BYTES, big_mail, customer_mail
from bench.maild_process import (
    maild_command,
    run_measured,
    vm_hwm_mb,
    wait_until_listening,
)
from tests.conftest import free_port
from tests.processes import parser_pids


def write_config(directory: Path, port: int) -> Path:
    storage = directory / "storage"
    storage.mkdir()
    path = directory / "maild.toml"
    # Only keys every version of maild knows: the same file for the code before and after.
    path.write_text(f"""
[support]
address = "support@example.com"
[storage]
url = "sqlite:///{storage}/maild.db"
dir = "{storage}"
[outbound]
port = {free_port()}
[inbound_smtp]
enabled = true
host = "127.0.0.1"
port = {port}
max_message_bytes = 104857600
[logging]
level = "warning"
""")
    return path


def migrate(command: list[str], config: Path) -> None:
    """The schema made beforehand, as a deployment's first start or `maild db upgrade`
    does: what is measured is a start on an existing database."""
    subprocess.run([*command, "--config", str(config), "db", "upgrade"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def running_listener(code: Path | None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A fresh `maild run --only inbound` and its port, once it answers."""
    command = maild_command(code)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        config = write_config(Path(tmp), port)
        migrate(command, config)
        daemon = subprocess.Popen([*command, "--config", str(config), "run", "--only",
                                   "inbound"], stderr=subprocess.DEVNULL)
        try:
            wait_until_listening(port, daemon)
            yield daemon, port
        finally:
            daemon.terminate()
            daemon.wait(timeout=120)


def listener_peak(code: Path | None, mails: list[bytes]) -> tuple[float, float, list[str]]:
    """(peak RSS of the daemon, of its parser process, the answers) for `mails` sent
    at once, each over a connection of its own."""
    with running_listener(code) as (daemon, port):
        helpers: set[int] = set()
        answers: list[str] = []

        def send(raw: bytes) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=600) as client:
                    client.sendmail("c@customer.example", ["support@example.com"], raw)
                answers.append("250")
            except smtplib.SMTPException as exc:
                answers.append(repr(exc)[:80])

        senders = [threading.Thread(target=send, args=(raw,)) for raw in mails]
        for sender in senders:
            sender.start()
        while any(s.is_alive() for s in senders):
            helpers |= parser_pids(daemon.pid)
            time.sleep(0.2)
        helper_peak = 0.0
        for pid in helpers:
            try:
                helper_peak = max(helper_peak, vm_hwm_mb(pid))
            except OSError:
                pass  # it ended: its figure is gone with it
        return vm_hwm_mb(daemon.pid), helper_peak, answers


def small_mail(n: int) -> bytes:
    return customer_mail(n, f"Question {n}", f"<small{n}@customer.example>",
                         "How do I reset my password?\n" * 20).as_bytes()


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listener_rate(code: Path | None, count: int) -> tuple[float, float, float]:
    """(mails a second, the daemon's CPU milliseconds a mail, its idle RSS in MB) for
    `count` small mails sent one after the other over one connection, each answered 250
    after its commit. The CPU time is the steadier figure on a shared machine."""
    mails = [small_mail(n) for n in range(count)]
    with running_listener(code) as (daemon, port):
        idle = vm_hwm_mb(daemon.pid)
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            cpu, started = cpu_seconds(daemon.pid), time.perf_counter()
            for raw in mails:
                client.sendmail("c@customer.example", ["support@example.com"], raw)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(daemon.pid) - cpu
        return count / elapsed, 1000 * cpu / count, idle


def ingest_peak(code: Path | None, mail: Path) -> tuple[float, int]:
    command = maild_command(code)
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), free_port())
        migrate(command, config)
        finished = run_measured([*command, "--config", str(config), "ingest", str(mail)],
                                Path(tmp) / "ingest.log")
        return finished.peak_mb, finished.exit_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", type=Path, help="run the maild package in this checkout")
    parser.add_argument("--small", type=int, default=300,
                        help="small mails sent one after the other for the rate (0: none)")
    args = parser.parse_args()
    code = args.code.resolve() if args.code else None
    if args.small:
        rate, cpu, idle = listener_rate(code, args.small)
        print(f"maild from {code or 'this checkout'}; idle listener {idle:.0f} MB; "
              f"{args.small} small mails on one connection: {rate:.0f} mails/s, "
              f"{cpu:.1f} ms of CPU a mail")
    mails = [big_mail(n) for n in range(6)]
    print(f"maild from {code or 'this checkout'}; each mail {len(mails[0]) / 2**20:.1f} MB "
          f"with a {BIG_ATTACHMENT_BYTES // 2**20} MB attachment")
    one, one_helper, answers = listener_peak(code, mails[:1])
    print(f"SMTP listener, one mail:   {one:6.0f} MB (+ parser process {one_helper:.0f} MB)"
          f"  answers {answers}")
    six, six_helper, answers = listener_peak(code, mails)
    print(f"SMTP listener, six at once:{six:6.0f} MB (+ parser process {six_helper:.0f} MB)"
          f"  answers {sorted(answers)}")
    with tempfile.TemporaryDirectory() as tmp:
        mail = Path(tmp) / "big.eml"
        mail.write_bytes(mails[0])
        peak, exit_code = ingest_peak(code, mail)
    print(f"maild ingest FILE:         {peak:6.0f} MB  exit {exit_code}")


if __name__ == "__main__":
    main()
