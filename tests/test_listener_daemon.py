"""The SMTP listener of a real `maild run`, as a sending server meets it through smtplib:
it refuses in the dialogue what it would not keep, takes large mail in turns, and is
known as maild on its port."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from maild.channels.smtp_listener import who_listens
from maild.db.database import Database
from tests.conftest import Sink, config_text, free_port, using_postgresql
from tests.helpers import NOW, maild, raw_kept
from tests.mailbuilder import make_mail
from tests.test_large_mail import PDF, large_mail
from tests.waiting import wait_for

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
WEB_TOKEN = "a-token-for-the-dashboard-of-the-test"


@dataclass
class Listening:
    config: Path
    port: int
    web_port: int
    storage: Path
    database_url: str
    process: subprocess.Popen[bytes]

    def client(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        client.ehlo()
        return client

    def tickets(self) -> list[dict[str, Any]]:
        listed = maild(self.config, "tickets", "list", "--json")
        assert listed.exit_code == 0, listed.output
        return list(json.loads(listed.output))

    def raw_files(self) -> list[Path]:
        return [p for p in (self.storage / "raw").rglob("*.eml")]

    def raw_kept(self) -> int:
        database = Database(self.database_url)
        try:
            return raw_kept(database, self.storage / "raw")
        finally:
            database.dispose()


@pytest.fixture
def listening(tmp_path: Path, database_url: str, sink: Sink) -> Iterator[Listening]:
    port, web_port = free_port(), free_port()
    config = tmp_path / "maild.toml"
    config.write_text(config_text(database_url, tmp_path / "storage", sink.port, f"""
[inbound_smtp]
enabled = true
host = "127.0.0.1"
port = {port}
max_message_bytes = {MAX_MESSAGE_BYTES}
addresses = ["feedback@example.com"]
max_connections = 3
[web]
enabled = true
host = "127.0.0.1"
port = {web_port}
"""))
    log = open(tmp_path / "maild.log", "wb")  # noqa: SIM115
    process = start_daemon(config, port, log)
    try:
        yield Listening(config, port, web_port, tmp_path / "storage", database_url, process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def start_daemon(config: Path, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`maild run --only inbound`, once its listener answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "maild", "--config", str(config), "run", "--only", "inbound"],
        env={**os.environ, "MAILD_NOW": NOW, "MAILD_WEB_TOKEN": WEB_TOKEN}, stderr=log)
    wait_for(lambda: process.poll() is not None
             or who_listens("127.0.0.1", port) == "in use by a running maild",
             "the listener", timeout=60)
    assert process.poll() is None, Path(log.name).read_text()
    return process


def test_what_would_not_be_kept_is_refused_in_the_dialogue(listening: Listening) -> None:
    with listening.client() as client:
        assert client.esmtp_features["size"] == str(MAX_MESSAGE_BYTES)
        assert b"DATA" in client.help()
        client.mail("ann@customer.example")
        code, said = client.rcpt("someone@elsewhere.example")
        assert (code, said[:5]) == (550, b"5.1.1")
        assert client.rcpt("support@Example.com")[0] == 250
        assert client.rcpt("Feedback@example.com")[0] == 250  # [inbound_smtp] addresses
        client.rset()

        # Declared too large: refused before a byte of it is sent.
        assert client.mail("ann@customer.example", [f"SIZE={MAX_MESSAGE_BYTES + 1}"])[0] == 552
        client.rset()
        # Not declared, and too large: refused at the end of DATA, nothing of it kept.
        client.mail("ann@customer.example")
        client.rcpt("support@example.com")
        too_large = make_mail(body=("x" * 70 + "\n") * (MAX_MESSAGE_BYTES // 71 + 1))
        assert client.data(too_large)[0] == 552

        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("ann@customer.example", ["nobody@example.com"], make_mail())

    assert listening.tickets() == []
    assert listening.raw_kept() == 0


def test_clients_beyond_the_limit_are_deferred(listening: Listening) -> None:
    first, second, third = listening.client(), listening.client(), listening.client()
    fourth = listening.client()
    try:
        assert third.mail("ann@customer.example")[0] == 250
        third.rset()
        code, said = fourth.mail("ann@customer.example")
        assert (code, said[:5]) == (451, b"4.3.2")
        first.quit()
        second.quit()

        def accepted() -> bool:
            fourth.rset()
            return fourth.mail("ann@customer.example")[0] == 250

        wait_for(accepted, "room for the fourth client")
        fourth.rcpt("support@example.com")
        assert fourth.data(make_mail())[0] == 250
    finally:
        third.close()
        fourth.close()
    assert [t["subject"] for t in listening.tickets()] == ["Printer on fire"]


def _stall_the_database(url: str) -> Any:
    """Hold a lock that makes the daemon's intake wait: SQLite's write lock, or a table
    lock on PostgreSQL."""
    if using_postgresql():
        # No pool: closing it closes the connection.
        connection = create_engine(url, poolclass=NullPool).raw_connection()
        connection.cursor().execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        return connection
    blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_large_messages_take_turns_and_small_ones_do_not_wait(listening: Listening) -> None:
    large = large_mail()
    answers: list[tuple[int, bytes]] = []

    def send_large() -> None:
        with listening.client() as client:
            client.mail("ann@customer.example", [f"SIZE={len(large)}"])
            client.rcpt("support@example.com")
            answers.append(client.data(large))

    blocker = _stall_the_database(listening.database_url)
    try:
        sender = threading.Thread(target=send_large)
        sender.start()
        # Received and on disk, its ticket waiting on the database: its turn goes on.
        wait_for(listening.raw_files, "the large message on disk")

        waiting = listening.client()
        waiting.mail("bob@customer.example", [f"SIZE={len(large)}"])
        waiting.rcpt("support@example.com")
        waiting.putcmd("data")
        assert waiting.sock is not None
        waiting.sock.settimeout(1.0)
        with pytest.raises(socket.timeout):  # no 354 while the other one has the turn
            waiting.sock.recv(1)

        small = listening.client()  # declared small: received at once
        small.mail("carol@customer.example", ["SIZE=2000"])
        small.rcpt("support@example.com")
        small.putcmd("data")
        assert small.getreply()[0] == 354
        small.close()  # gone in the middle of its DATA: nothing of it is kept
    finally:
        blocker.rollback()
        blocker.close()
    sender.join(timeout=60)
    assert answers and answers[0][0] == 250

    assert waiting.sock is not None
    waiting.sock.settimeout(30)
    assert waiting.getreply()[0] == 354  # its turn came once the first was stored
    waiting.close()

    [ticket] = listening.tickets()
    shown = json.loads(maild(listening.config, "tickets", "show", str(ticket["id"]),
                             "--json").output)
    assert shown["messages"][0]["body"] == "The logs are attached."
    pdf = next(a for a in shown["messages"][0]["attachments"] if a["filename"] == "logs.pdf")
    stored = listening.storage / "attachments" / pdf["sha256"][:2] / pdf["sha256"][2:4]
    assert (stored / f"{pdf['sha256']}.bin").read_bytes() == PDF


def test_a_running_maild_is_known_on_its_ports(listening: Listening,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILD_WEB_TOKEN", WEB_TOKEN)
    wait_for(lambda: maild(listening.config, "check").output.count("in use by a running "
                                                                     "maild") == 2,
             "the web part too")
    checked = maild(listening.config, "check")
    assert (f"ok   inbound SMTP: 127.0.0.1:{listening.port} is in use by a running maild"
            in checked.output)
    assert (f"ok   web: http://127.0.0.1:{listening.web_port}/ is in use by a running maild"
            in checked.output)

    again = maild(listening.config, "run")
    assert again.exit_code == 1
    assert again.output.splitlines() == [
        f"maild: inbound SMTP cannot listen on 127.0.0.1:{listening.port}: Address already "
        "in use (in use by a running maild)"]


def test_a_message_half_received_by_a_killed_maild_is_removed_at_the_next_start(
        listening: Listening) -> None:
    """The sender was never answered and sends it again; nothing of it is kept."""
    spool = listening.storage / "raw" / "spool"
    client = listening.client()
    client.mail("ann@customer.example")
    client.rcpt("support@example.com")
    assert client.docmd("DATA")[0] == 354
    assert client.sock is not None
    client.sock.sendall(b"Subject: half\r\n\r\nthe first half\r\n")
    wait_for(lambda: list(spool.glob("*")), "the message being received")

    listening.process.send_signal(signal.SIGKILL)
    listening.process.wait(timeout=30)
    client.close()
    assert list(spool.glob("*")), "a killed maild leaves its spool file"

    with open(listening.config.parent / "restarted.log", "wb") as log:
        restarted = start_daemon(listening.config, listening.port, log)
        try:
            assert list(spool.glob("*")) == []
            with listening.client() as client:
                client.sendmail("ann@customer.example", ["support@example.com"], make_mail())
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=60)
        assert b"removed 1 spool file(s)" in Path(log.name).read_bytes()
    assert [t["subject"] for t in listening.tickets()] == ["Printer on fire"]
    assert listening.raw_kept() == 1
