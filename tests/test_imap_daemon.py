"""`maild run` as a real process reading a real Dovecot: killed between commit and MOVE,
and run under the real supervisord with the project's supervisord.conf."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sink, config_text, mailbox_toml
from tests.mailbuilder import make_mail
from tests.tcp_proxy import TcpProxy
from tests.waiting import child_pids, wait_for

ROOT = Path(__file__).resolve().parent.parent
MAILD = [sys.executable, "-m", "maild"]
SUPERVISORD = Path(sys.executable).parent / "supervisord"


@pytest.fixture
def proxy(dovecot: Any) -> Iterator[TcpProxy]:
    tcp_proxy = TcpProxy(dovecot.port)
    yield tcp_proxy
    tcp_proxy.close()


class Setup:
    def __init__(self, tmp_path: Path, database_url: str, sink: Sink, account: Any,
                 port: int, **mailbox: Any) -> None:
        self.config = tmp_path / "maild.toml"
        self.config.write_text(config_text(
            database_url, tmp_path / "storage", sink.port,
            mailbox_toml(account, port=port, **mailbox)
        ))
        self.env = {**os.environ, "MAILD_CONFIG": str(self.config),
                    "MAILD_TEST_IMAP_SUPPORT": account.password}
        self.log = tmp_path / "maild.log"

    def start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as log:
            return subprocess.Popen([*MAILD, "run"], env=self.env, stderr=log)

    def tickets(self) -> list[dict[str, Any]]:
        listed = subprocess.run([*MAILD, "tickets", "export"], env=self.env,
                                capture_output=True, check=True)
        return [json.loads(line) for line in listed.stdout.splitlines()]


def test_sigkill_between_commit_and_move_loses_and_doubles_nothing(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any, proxy: TcpProxy
) -> None:
    # Waiting on the frozen MOVE for longer than the checks below take on a loaded machine
    # (each `maild` command starts an interpreter): with the tests' 5 s the daemon gives up
    # on the MOVE, reconnects and files the message away before it is killed.
    setup = Setup(tmp_path, database_url, sink, imap_account, proxy.port, timeout_seconds=60)
    imap_account.append(make_mail(subject="Killed mid-move", message_id="<kill@customer.example>"))
    # The MOVE never reaches the server: the daemon waits there, its commit done.
    proxy.freeze_on = b" MOVE "
    first = setup.start()
    try:
        wait_for(proxy.tripped.is_set, "the daemon to commit and ask for the MOVE")
        assert len(setup.tickets()) == 1
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert imap_account.count("INBOX") == 1  # still there: nothing was lost

    second = setup.start()
    try:
        wait_for(lambda: imap_account.count("Processed") == 1, "the message to be filed away")
        wait_for(lambda: acks(sink), "the acknowledgment")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0

    [ticket] = setup.tickets()
    assert [m["direction"] for m in ticket["messages"]] == ["in", "out"]
    assert imap_account.count("INBOX") == 0
    # If the first daemon got the acknowledgment out before it died, the second sent it
    # again with the same Message-ID: a client shows one mail.
    assert len({message["Message-ID"] for message in acks(sink)}) == 1
    assert "<kill@customer.example> is already stored" in setup.log.read_text()


def test_supervisord_runs_serves_and_stops_maild_cleanly(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any, dovecot: Any
) -> None:
    setup = Setup(tmp_path, database_url, sink, imap_account, dovecot.port)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {**setup.env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    supervisord = subprocess.Popen(
        [str(SUPERVISORD), "-n", "-c", str(ROOT / "supervisord.conf"),
         "-l", str(logs / "supervisord.log"), "-j", str(logs / "supervisord.pid"),
         "-q", str(logs)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        imap_account.append(make_mail(subject="Under supervision"))
        [ack] = wait_for(lambda: acks(sink), "the acknowledgment", timeout=30)
        assert ack["Subject"] == "Re: [#1] Under supervision"

        # Killed from outside, maild is started again and goes on serving.
        maild_pid = wait_for(lambda: _maild_pid(supervisord.pid), "maild under supervisord")
        os.kill(maild_pid, signal.SIGKILL)
        wait_for(lambda: (pid := _maild_pid(supervisord.pid)) and pid != maild_pid,
                 "supervisord to restart maild", timeout=30)
        imap_account.append(make_mail(subject="After the restart",
                                      message_id="<again@customer.example>"))
        wait_for(lambda: len(acks(sink)) == 2, "the second acknowledgment", timeout=30)
    finally:
        supervisord.send_signal(signal.SIGTERM)
        supervisord.wait(timeout=150)

    supervisor_log = (logs / "supervisord.log").read_text()
    assert "exited: maild (terminated by SIGKILL" in supervisor_log
    assert "stopped: maild (exit status 0)" in supervisor_log
    [maild_log] = logs.glob("maild-stdout*.log")
    assert maild_log.read_text().rstrip().endswith("maild stopped")



def acks(sink: Sink) -> list[Any]:
    """What the customer received (the SEs' notifications go to the staff list)."""
    return [m for m in sink.messages() if m["Delivered-To"] == "ann@customer.example"]


def _maild_pid(supervisord: int) -> int | None:
    children = child_pids(supervisord)
    return children[0] if children else None
