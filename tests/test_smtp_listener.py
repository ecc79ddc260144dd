"""The inbound listener answers 250 only for what it has kept, and 451 when it could not."""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import random
import smtplib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maild.channels.smtp_data import HOLD_BYTES
from maild.channels.smtp_listener import SmtpListener
from maild.clock import FixedClock
from maild.config import Config
from maild.db.models import Message
from maild.intake.pipeline import IngestResult
from maild.runtime.app import App, build_app
from tests.conftest import Sink, free_port, using_postgresql
from tests.helpers import kept_raw, raw_kept, show
from tests.mailbuilder import make_mail
from tests.waiting import wait_for

MAX_MESSAGE_BYTES = 40 * 1024 * 1024
TRACE = b"Return-Path: <ann@customer.example>\r\nDelivered-To: support@example.com\r\n"


@dataclass
class Listening:
    app: App
    port: int
    listener: SmtpListener
    results: list[IngestResult] = field(default_factory=list)

    def send(self, raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail("ann@customer.example", ["support@example.com"], raw)

    def wire(self) -> Wire:
        return Wire(socket.create_connection(("127.0.0.1", self.port), timeout=30))

    def raw_of(self, message_id: str) -> bytes:
        """The message as the raw store keeps it."""
        with self.app.db.transaction() as session:
            stored = session.scalars(
                select(Message).where(Message.message_id == message_id)).one()
            assert stored.raw_sha256 is not None
            return kept_raw(self.app, stored.raw_sha256)

    def spool_files(self) -> list[Path]:
        return list((self.app.raw_store.directory / "spool").glob("*"))

    def raw_kept(self) -> int:
        return raw_kept(self.app.db, self.app.raw_store.directory)


class Wire:
    """SMTP by hand, for what smtplib never sends: pipelined commands, a message in
    pieces, a client gone in the middle."""

    def __init__(self, connection: socket.socket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection = connection
        self.replies = connection.makefile("rb")
        assert self.reply()[0] == 220

    def send(self, data: bytes, piece_bytes: int = 0) -> None:
        if not piece_bytes:
            self.connection.sendall(data)
            return
        for start in range(0, len(data), piece_bytes):
            self.connection.sendall(data[start:start + piece_bytes])
            time.sleep(0.001)  # each piece a segment of its own, mostly

    def reply(self) -> tuple[int, bytes]:
        while True:
            line = self.replies.readline()
            assert line, "the listener closed the connection"
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].strip()

    def command(self, line: bytes) -> int:
        self.send(line + b"\r\n")
        return self.reply()[0]

    def close(self) -> None:
        self.replies.close()
        self.connection.close()


def stuffed(raw: bytes) -> bytes:
    """The message as DATA on the wire: dot-stuffed, ended by a lone dot."""
    lines = raw.split(b"\r\n")
    assert lines[-1] == b""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                    for line in lines[:-1]) + b".\r\n"


@contextlib.contextmanager
def listener_of(config: Config, clock: FixedClock, max_message_bytes: int,
                **settings: Any) -> Iterator[Listening]:
    """A listener on a free port, taking messages up to `max_message_bytes`, with these
    other [inbound_smtp] `settings`."""
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={
        "enabled": True, "port": port, "max_message_bytes": max_message_bytes, **settings})
    app = build_app(config.model_copy(update={"inbound_smtp": inbound}), clock)
    results: list[IngestResult] = []
    listener = SmtpListener(app.intake, app.config.inbound_smtp, results.append)
    listener.start()
    try:
        yield Listening(app, port, listener, results)
    finally:
        listener.stop()
        app.close()


@pytest.fixture
def listening(config: Config, clock: FixedClock) -> Iterator[Listening]:
    with listener_of(config, clock, MAX_MESSAGE_BYTES) as listening:
        yield listening


def test_accepted_mail_is_already_a_ticket(listening: Listening) -> None:
    listening.send(make_mail())
    assert [r.outcome for r in listening.results] == ["stored"]
    assert show(listening.app, listening.results[0].ticket_id)["status"] == "new"


def test_quarantined_mail_is_accepted_and_kept(listening: Listening) -> None:
    listening.send(make_mail(sender="not-an-address"))
    assert [r.outcome for r in listening.results] == ["quarantined"]


def test_mail_that_cannot_be_kept_gets_451(listening: Listening) -> None:
    # The raw store's place is taken by a file: storing fails as a full disk would.
    listening.app.raw_store.directory.write_text("not a directory")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        listening.send(make_mail())
    assert refused.value.smtp_code == 451
    assert listening.results == []


def _stall_the_database(app: App) -> Any:
    """Hold a lock that makes the intake wait: SQLite's write lock, or a table lock."""
    if using_postgresql():
        connection = app.db.engine.raw_connection()
        connection.cursor().execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        return connection
    database = app.db.engine.url.database
    assert database is not None
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_stopping_finishes_the_message_in_hand(listening: Listening) -> None:
    blocker = _stall_the_database(listening.app)
    sender = threading.Thread(target=listening.send, args=(make_mail(),))
    sender.start()
    wait_for(lambda: listening.listener.handler.in_flight, "the message in the intake",
             timeout=10)

    stopping = threading.Thread(target=listening.listener.stop)
    stopping.start()
    stopping.join(timeout=0.5)
    assert stopping.is_alive(), "stop() returned while a message was being stored"
    blocker.rollback()
    blocker.close()
    stopping.join(timeout=20)
    sender.join(timeout=20)

    assert [r.outcome for r in listening.results] == ["stored"]
    assert show(listening.app, 1)["messages"][0]["body"] == "It is on fire."


def test_mail_for_another_of_our_addresses_is_answered_from_it(
        config: Config, clock: FixedClock, sink: Sink) -> None:
    """feedback@ taken by the listener: its mail, written to it or Bcc'd to it, is
    answered from feedback@, which is ours, so never a third party in Cc."""
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={
        "enabled": True, "port": port, "addresses": ["feedback@example.com"]})
    app = build_app(config.model_copy(update={"inbound_smtp": inbound}), clock)
    listener = SmtpListener(app.intake, app.config.inbound_smtp, lambda _: None)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.sendmail("ann@customer.example", ["feedback@example.com"], make_mail(
                to="Feedback <feedback@example.com>", message_id="<to@customer.example>"))
            client.sendmail("bob@customer.example", ["feedback@example.com"], make_mail(
                sender="bob@customer.example", to="carol@customer.example",
                subject="Bcc'd", message_id="<bcc@customer.example>"))
            client.sendmail("dee@customer.example", ["support@example.com"], make_mail(
                sender="dee@customer.example", subject="To support",
                message_id="<support@customer.example>"))
        app.sender.deliver_due()
    finally:
        listener.stop()
        app.close()
    acks = {m["Delivered-To"]: m for m in sink.messages()
            if m["Delivered-To"].endswith("@customer.example")}
    for customer in ("ann@customer.example", "bob@customer.example"):
        ack = acks[customer]
        assert ack["From"].addresses[0].addr_spec == "feedback@example.com"
        copied = [a.addr_spec for name in ("To", "Cc") if ack[name]
                  for a in ack[name].addresses]
        assert "feedback@example.com" not in copied
        assert customer in copied
    assert acks["dee@customer.example"]["From"].addresses[0].addr_spec == "support@example.com"


def big_attachment_mail(data: bytes) -> bytes:
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["From"] = "Ann Customer <ann@customer.example>"
    mail["To"] = "support@example.com"
    mail["Subject"] = "Crash dump"
    mail["Message-ID"] = "<dump@customer.example>"
    mail.set_content("The dump is attached.\n")
    mail.add_attachment(data, maintype="application", subtype="octet-stream",
                        filename="dump.bin")
    return mail.as_bytes()


def test_a_25_mb_attachment_arrives_intact(listening: Listening) -> None:
    dump = random.Random(25).randbytes(25 * 1024 * 1024)
    raw = big_attachment_mail(dump)
    listening.send(raw)

    assert [r.outcome for r in listening.results] == ["stored"]
    assert listening.raw_of("<dump@customer.example>") == TRACE + raw
    with listening.app.db.transaction() as session:
        stored = session.scalars(select(Message).where(
            Message.message_id == "<dump@customer.example>")).one()
        [attachment] = stored.attachments
    kept = listening.app.attachment_store.get(attachment["sha256"])
    assert hashlib.sha256(kept).hexdigest() == hashlib.sha256(dump).hexdigest()
    assert listening.spool_files() == []


DOTTED = make_mail(message_id="<dots@customer.example>",
                   body=".profile is read first\n..\n.\n...\nend.\n")


def test_dot_stuffed_lines_are_unstuffed(listening: Listening) -> None:
    wire = listening.wire()
    try:
        for line in (b"EHLO client.example", b"MAIL FROM:<ann@customer.example>",
                     b"RCPT TO:<support@example.com>", b"DATA"):
            assert wire.command(line) in (250, 354)
        data = stuffed(DOTTED)
        assert b"\r\n...\r\n" in data and b"\r\n..\r\n" in data  # stuffed, as sent
        wire.send(data)
        assert wire.reply()[0] == 250
    finally:
        wire.close()
    assert listening.raw_of("<dots@customer.example>") == TRACE + DOTTED
    body = show(listening.app, listening.results[0].ticket_id)["messages"][0]["body"]
    assert body.splitlines() == [".profile is read first", "..", ".", "...", "end."]


@pytest.mark.parametrize("piece_bytes", [1, 3, 7])
def test_the_end_of_data_split_across_writes_is_found(listening: Listening,
                                                      piece_bytes: int) -> None:
    wire = listening.wire()
    try:
        for line in (b"EHLO client.example", b"MAIL FROM:<ann@customer.example>",
                     b"RCPT TO:<support@example.com>", b"DATA"):
            assert wire.command(line) in (250, 354)
        wire.send(stuffed(DOTTED), piece_bytes)
        assert wire.reply()[0] == 250
        assert wire.command(b"QUIT") == 221
    finally:
        wire.close()
    assert listening.raw_of("<dots@customer.example>") == TRACE + DOTTED


def test_pipelined_commands_around_data_are_read_as_what_they_are(
        listening: Listening) -> None:
    """A client that does not wait for the 354, and sends the next mail along with the
    end of the first: the message is the bytes after DATA, the commands are commands."""
    first = make_mail(message_id="<one@customer.example>", subject="One")
    # Larger than what is held in memory before the 354: the rest waits in the kernel.
    second = make_mail(message_id="<two@customer.example>", subject="Two",
                       body=("a line of the second mail, " * 2 + "\n") * 6000)
    assert len(second) > 4 * HOLD_BYTES
    envelope = b"MAIL FROM:<ann@customer.example>\r\nRCPT TO:<support@example.com>\r\n"
    wire = listening.wire()
    try:
        assert wire.command(b"EHLO client.example") == 250
        # DATA refused (no recipient yet): what follows it is commands again.
        wire.send(b"MAIL FROM:<ann@customer.example>\r\nDATA\r\nRSET\r\n")
        assert [wire.reply()[0] for _ in range(3)] == [250, 503, 250]
        wire.send(envelope + b"DATA\r\n" + stuffed(first) + envelope + b"DATA\r\n"
                  + stuffed(second) + b"QUIT\r\n")
        assert [wire.reply()[0] for _ in range(9)] == [250, 250, 354, 250,
                                                       250, 250, 354, 250, 221]
    finally:
        wire.close()
    assert listening.raw_of("<one@customer.example>") == TRACE + first
    assert listening.raw_of("<two@customer.example>") == TRACE + second


@pytest.fixture
def small_listener(config: Config, clock: FixedClock) -> Iterator[Listening]:
    with listener_of(config, clock, 64 * 1024) as listening:
        yield listening


def test_refused_data_leaves_nothing_and_the_connection_usable(
        small_listener: Listening) -> None:
    listening = small_listener
    too_large = make_mail(message_id="<large@customer.example>",
                          body=("x" * 70 + "\n") * 1000)
    too_long = (b"From: ann@customer.example\r\nMessage-ID: <long@customer.example>\r\n"
                b"\r\n" + b"y" * 1200 + b"\r\n")
    with smtplib.SMTP("127.0.0.1", listening.port, timeout=20) as client:
        client.ehlo()
        client.mail("ann@customer.example")
        client.rcpt("support@example.com")
        assert client.data(too_large)[0] == 552
        # The envelope is gone with the refused message: MAIL again.
        client.mail("ann@customer.example")
        client.rcpt("support@example.com")
        assert client.data(too_long)[0] == 500
        client.rset()
        client.mail("ann@customer.example")
        client.rcpt("support@example.com")
        assert client.data(make_mail())[0] == 250
    assert [r.outcome for r in listening.results] == ["stored"]
    assert listening.raw_kept() == 1
    assert listening.spool_files() == []


def test_a_client_gone_in_the_middle_of_data_leaves_nothing(listening: Listening) -> None:
    wire = listening.wire()
    for line in (b"EHLO client.example", b"MAIL FROM:<ann@customer.example>",
                 b"RCPT TO:<support@example.com>", b"DATA"):
        assert wire.command(line) in (250, 354)
    wire.send(stuffed(make_mail())[:-20])
    wait_for(listening.spool_files, "the message being received")
    wire.close()

    wait_for(lambda: not listening.spool_files(), "the spool file removed")
    assert listening.results == []
    assert listening.raw_kept() == 0
    # The listener goes on.
    listening.send(make_mail())
    assert [r.outcome for r in listening.results] == ["stored"]


def _ready_for_data(wire: Wire) -> None:
    for line in (b"EHLO client.example", b"MAIL FROM:<ann@customer.example>",
                 b"RCPT TO:<support@example.com>"):
        assert wire.command(line) == 250


def _closed_by_listener(wire: Wire, within: float) -> bool:
    """Whether the listener closes the connection within `within` seconds."""
    wire.connection.settimeout(within)
    try:
        return wire.connection.recv(1024) == b""
    except TimeoutError:
        return False


def test_a_large_message_coming_slowly_but_steadily_is_taken(
    config: Config, clock: FixedClock
) -> None:
    """A client on a slow line is silent for no more than a moment at a time, however
    long its message takes; aiosmtpd alone would end its DATA after one timeout."""
    raw = make_mail(body="A long report, line after line.\n" * 4000)
    with listener_of(config, clock, MAX_MESSAGE_BYTES, idle_timeout_seconds=1.0,
                     command_deadline_seconds=30.0) as listening:
        wire = listening.wire()
        _ready_for_data(wire)
        assert wire.command(b"DATA") == 354
        data = stuffed(raw)
        pieces = 8
        for n in range(pieces):  # 8 pieces, 0.4 s apart: 3 s in all
            wire.send(data[n * len(data) // pieces:(n + 1) * len(data) // pieces])
            time.sleep(0.4)
        assert wire.reply()[0] == 250
        wire.close()
    assert [r.outcome for r in listening.results] == ["stored"]


def test_a_client_silent_in_the_middle_of_its_message_is_disconnected(
    config: Config, clock: FixedClock
) -> None:
    with listener_of(config, clock, MAX_MESSAGE_BYTES, idle_timeout_seconds=1.0) as listening:
        wire = listening.wire()
        _ready_for_data(wire)
        assert wire.command(b"DATA") == 354
        wire.send(stuffed(make_mail())[:-20])

        assert _closed_by_listener(wire, within=10)
        wait_for(lambda: not listening.spool_files(), "the spool file removed")
        wire.close()
        assert listening.results == [] and listening.raw_kept() == 0
        listening.send(make_mail())  # the listener goes on
    assert [r.outcome for r in listening.results] == ["stored"]


def test_a_client_that_trickles_its_message_is_cut_at_the_deadline(
    config: Config, clock: FixedClock
) -> None:
    """Never silent for long, a byte at a time: the connection is held no longer than
    command_deadline_seconds."""
    with listener_of(config, clock, MAX_MESSAGE_BYTES, idle_timeout_seconds=1.0,
                     command_deadline_seconds=2.0) as listening:
        wire = listening.wire()
        _ready_for_data(wire)
        started = time.monotonic()
        assert wire.command(b"DATA") == 354
        closed = False
        for piece in stuffed(make_mail(body="x" * 400 + "\n"))[:-20]:
            try:
                wire.connection.sendall(bytes([piece]))
            except OSError:
                closed = True
                break
            if _closed_by_listener(wire, within=0.3):
                closed = True
                break
        assert closed and time.monotonic() - started < 10
        wire.close()
        wait_for(lambda: not listening.spool_files(), "the spool file removed")
    assert listening.results == []


def test_a_client_waiting_for_its_turn_is_not_taken_for_silent(
    config: Config, clock: FixedClock
) -> None:
    """Large messages are received one at a time: the second client, waiting for its
    354 while the first sends for 3 s, says nothing meanwhile and must not be cut."""
    with listener_of(config, clock, MAX_MESSAGE_BYTES, idle_timeout_seconds=1.0,
                     max_concurrent_large_messages=1) as listening:
        first, second = listening.wire(), listening.wire()
        _ready_for_data(first)
        _ready_for_data(second)
        assert first.command(b"DATA") == 354  # no SIZE declared: a large message
        second.send(b"DATA\r\n")  # waits for its turn
        data = stuffed(make_mail(message_id="<first@customer.example>"))
        for n in range(6):  # 0.5 s apart: 3 s in all
            first.send(data[n * len(data) // 6:(n + 1) * len(data) // 6])
            time.sleep(0.5)
        assert first.reply()[0] == 250
        assert second.reply()[0] == 354
        second.send(stuffed(make_mail(message_id="<second@customer.example>")))
        assert second.reply()[0] == 250
        first.close()
        second.close()
    assert [r.message_id for r in listening.results] == [
        "<first@customer.example>", "<second@customer.example>"]


def test_8bit_and_smtputf8_mail_is_kept_byte_for_byte(listening: Listening) -> None:
    utf8 = ("From: Zoë <zoë@customer.example>\r\nTo: support@example.com\r\n"
            "Subject: Größe ✓\r\nMessage-ID: <utf8@customer.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\nÜber 日本語 — ça va.\r\n").encode()
    latin1 = ("From: ann@customer.example\r\nTo: support@example.com\r\n"
              "Subject: caf\xe9\r\nMessage-ID: <latin1@customer.example>\r\n"
              "Content-Type: text/plain; charset=iso-8859-1\r\n"
              "Content-Transfer-Encoding: 8bit\r\n\r\nd\xe9j\xe0 vu\r\n").encode("latin-1")
    with smtplib.SMTP("127.0.0.1", listening.port, timeout=20) as client:
        client.sendmail("zoë@customer.example", ["support@example.com"], utf8,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        client.sendmail("ann@customer.example", ["support@example.com"], latin1,
                        mail_options=["BODY=8BITMIME"])
    trace = "Return-Path: <zoë@customer.example>\r\nDelivered-To: support@example.com\r\n"
    assert listening.raw_of("<utf8@customer.example>") == trace.encode() + utf8
    assert listening.raw_of("<latin1@customer.example>") == TRACE + latin1
