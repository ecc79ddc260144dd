"""The inbound SMTP listener: 250 only once the message is committed, 451 when it could not be.

It refuses early, in the dialogue, what it would not keep: a recipient that is none of
our addresses (550 at RCPT), a message larger than `max_message_bytes` (552, at MAIL
FROM when the client declares its SIZE, else at the end of DATA, the excess discarded
as it comes), and new mail while too many clients are connected (451 at MAIL FROM). A
message is never accepted to be discarded later.

A message's DATA is written to a spool file beside the raw store as it arrives
(maild/channels/smtp_data.py), never held in memory; once received, the file becomes
the raw mail by a rename and is read from there: a large one as the IMAP reader reads
large mail (maild/intake/large.py), its large attachments streamed, a small one parsed
whole. A large message, or one of
undeclared size, waits for its turn at DATA, `max_concurrent_large_messages` at a time,
which bounds how many are read and stored at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from maild.channels.smtp_data import SpoolingSMTP
from maild.config import InboundSmtpConfig
from maild.db.raw_mail import IN_ROW_BYTES
from maild.db.rawstore import SpoolFile
from maild.errors import PermanentError, TemporaryError
from maild.intake.pipeline import IngestResult, Intake, intake_batch
from maild.intake.spool import SPOOL_BYTES

log = logging.getLogger(__name__)

# What the listener says in its greeting, after the host name: how `maild check` tells
# a running maild on the port from another program.
BANNER = "maild ESMTP"


def who_listens(host: str, port: int, timeout: float = 2.0) -> str:
    """Who holds host:port, as far as its greeting tells: "in use by a running maild",
    "in use by another SMTP server (…)", "in use by another program", or "" when
    nobody answers there."""
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return ""
    with connection:
        try:
            greeting = connection.makefile("rb").readline(512)
        except OSError:  # it says nothing
            greeting = b""
    text = greeting.decode("ascii", "replace").strip()
    if text.startswith("220 ") and text.endswith(f" {BANNER}"):
        return "in use by a running maild"
    if text.startswith("220"):
        return f"in use by another SMTP server ({text[:80]!r})"
    return "in use by another program"


def listen_problem(host: str, port: int) -> str | None:
    """Why the listener could not listen on host:port now, in one line; None if it can."""
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        holder = who_listens(host, port)
        return f"cannot listen on {host}:{port}: {reason}" + (f" ({holder})" if holder else "")


def return_path(mail_from: str | None) -> bytes:
    """The envelope sender as the delivering server records it (RFC 5321, section 4.4),
    above the mail's own headers, where the intake reads it first: `MAIL FROM:<>` is a
    bounce or another automatic mail by definition, never answered (docs/security.md)."""
    # aiosmtpd hands over `MAIL FROM:<>` as "<>", an address without its brackets.
    sender = "".join((mail_from or "").split()).removeprefix("<").removesuffix(">")
    return f"Return-Path: <{sender}>\r\n".encode("utf-8", "surrogateescape")


def delivered_to(recipients: Iterable[str]) -> bytes:
    """The envelope recipients as a delivering server records them (Postfix's
    Delivered-To), above the mail's own headers: which of our addresses it came to, even
    when the mail names it only in the envelope (Bcc)."""
    return "".join(f"Delivered-To: {rcpt}\r\n" for rcpt in recipients).encode(
        "utf-8", "surrogateescape")


def take(intake: Intake, spool: SpoolFile) -> IngestResult:
    """Hand one received message to the intake. A small one is read from its spool file
    and kept in a row of the database (db/raw_mail.py); a larger one's spool file is kept
    as its raw mail and read from there, a large one in parts (`ingest_stored`). Raises
    TemporaryError only when nothing could be kept."""
    if spool.size <= IN_ROW_BYTES:
        try:
            raw = spool.read()
        finally:
            spool.discard()
        with intake_batch(intake, "smtp") as batch:
            batch.ingest(raw)
        return batch.results[0]
    try:
        raw_sha256 = spool.keep()
    finally:
        spool.discard()  # unless kept
    with intake_batch(intake, "smtp") as batch:
        if spool.size > SPOOL_BYTES:
            batch.ingest_stored(raw_sha256)
        else:
            # Parsed whole, which for mail of this size costs less than the pass over its
            # parts (a tenth of its intake); storing it again is free, it is already there.
            try:
                raw = intake.raw_store.get(raw_sha256)
            except OSError as exc:
                raise TemporaryError(
                    f"cannot read the mail just stored: {exc.strerror}") from exc
            batch.ingest(raw)
    return batch.results[0]


def declared_size(envelope: Envelope) -> int | None:
    """The size the client gave with MAIL FROM (RFC 1870), if it gave one."""
    for option in envelope.mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


class Admission:
    """How many clients are connected, and the turns of the large messages."""

    def __init__(self, max_connections: int, max_concurrent_large_messages: int) -> None:
        self.max_connections = max_connections
        self.max_concurrent_large_messages = max_concurrent_large_messages
        self.connections = 0  # changed on the listener's event loop only
        self._turns: asyncio.Semaphore | None = None

    def large_turns(self) -> asyncio.Semaphore:
        if self._turns is None:  # made on the listener's loop, where it is used
            self._turns = asyncio.Semaphore(self.max_concurrent_large_messages)
        return self._turns


class IntakeHandler:
    def __init__(self, intake: Intake, recipients: Iterable[str], admission: Admission,
                 on_stored: Callable[[IngestResult], None]) -> None:
        self.intake = intake
        self.recipients = frozenset(r.lower() for r in recipients)
        self.admission = admission
        self.on_stored = on_stored
        self._in_flight = 0
        self._idle = threading.Condition()

    @property
    def in_flight(self) -> int:
        """Messages received whole and not yet answered: being stored."""
        with self._idle:
            return self._in_flight

    def wait_until_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _count(self, change: int) -> None:
        with self._idle:
            self._in_flight += change
            self._idle.notify_all()

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # aiosmtpd has already refused a declared SIZE above max_message_bytes (552).
        if isinstance(server, ListenerSession) and not server.admitted():
            log.warning("inbound SMTP: %d clients connected, over the %d allowed: "
                        "deferring mail from %s", self.admission.connections,
                        self.admission.max_connections, address)
            return "451 4.3.2 Too many connections, please try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.lower() not in self.recipients:
            log.info("inbound SMTP: refused mail for %s, not one of our addresses", address)
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_spooled(self, server: SMTP, session: Session, envelope: Envelope,
                             spool: SpoolFile) -> str:
        # Counted until the answer is decided, so a shutdown waits for the answer too.
        self._count(+1)
        try:
            return await self._store(spool)
        finally:
            self._count(-1)

    async def _store(self, spool: SpoolFile) -> str:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, take, self.intake, spool)
        except TemporaryError as exc:
            log.warning("inbound SMTP: deferring a message: %s", exc)
            return "451 4.3.0 Temporary failure, please try again later"
        except Exception:
            log.exception("inbound SMTP: unexpected failure")
            return "451 4.3.0 Temporary failure, please try again later"
        # A quarantined message is kept; answering 250 stops the sender from retrying it.
        self.on_stored(result)
        return "250 2.0.0 OK"


class ListenerSession(SpoolingSMTP):
    """One connection, counted, with DATA spooled to disk and taken in turns."""

    def __init__(self, handler: IntakeHandler, admission: Admission, **settings: Any) -> None:
        super().__init__(handler, handler.intake.raw_store, **settings)
        self.admission = admission
        self._counted = False
        self._admitted = False

    def connection_made(self, transport: Any) -> None:
        if not self._counted:
            self._counted = True
            self.admission.connections += 1
            self._admitted = self.admission.connections <= self.admission.max_connections
        super().connection_made(transport)

    def admitted(self) -> bool:
        """Whether this client may send mail: one that came while the listener was full
        may once enough clients before it have gone."""
        if not self._admitted:
            self._admitted = self.admission.connections <= self.admission.max_connections
        return self._admitted

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.admission.connections -= 1
        super().connection_lost(error)

    def trace_headers(self, envelope: Envelope) -> bytes:
        return return_path(envelope.mail_from) + delivered_to(envelope.rcpt_tos)

    @syntax("DATA")  # as aiosmtpd's own: HELP lists the command
    async def smtp_DATA(self, arg: str) -> None:
        """A message declared small is received at once. A large one, or one whose
        size the client does not declare, waits for its turn here, before the 354."""
        size = declared_size(self.envelope) if self.envelope is not None else None
        if size is not None and size <= SPOOL_BYTES:
            await super().smtp_DATA(arg)
            return
        async with contextlib.AsyncExitStack() as turn:
            with self.client_waits():
                await turn.enter_async_context(self.admission.large_turns())
            await super().smtp_DATA(arg)


class ListenerController(Controller):
    def __init__(self, handler: IntakeHandler, admission: Admission,
                 settings: InboundSmtpConfig) -> None:
        self.admission = admission
        self.session_settings: dict[str, Any] = {
            "hostname": socket.getfqdn(),  # in the greeting; asked once, not per client
            "ident": BANNER,
            "data_size_limit": settings.max_message_bytes,
            "enable_SMTPUTF8": True,
            # aiosmtpd's timeout runs from one command to the next, a message's DATA
            # whole; the client's silence is timed apart (SpoolingSMTP).
            "timeout": settings.command_deadline_seconds,
            "idle_timeout": settings.idle_timeout_seconds,
        }
        super().__init__(handler, hostname=settings.host, port=settings.port,
                         ready_timeout=10)

    def factory(self) -> SMTP:
        assert isinstance(self.handler, IntakeHandler)
        return ListenerSession(self.handler, self.admission, **self.session_settings)


class ListenerUnavailable(PermanentError):
    """The listener's address cannot be listened on (in use, not ours)."""


class SmtpListener:
    # How long a shutdown waits for messages already being stored.
    DRAIN_SECONDS = 30.0

    def __init__(self, intake: Intake, settings: InboundSmtpConfig,
                 on_stored: Callable[[IngestResult], None]) -> None:
        config = intake.config
        admission = Admission(settings.max_connections,
                              settings.max_concurrent_large_messages)
        self.handler = IntakeHandler(
            intake, {*config.own_addresses, *settings.addresses}, admission, on_stored)
        self.controller = ListenerController(self.handler, admission, settings)
        self.address = f"{settings.host}:{settings.port}"
        self._stopped = False

    def start(self) -> None:
        try:
            self.controller.start()
        except OSError:
            problem = listen_problem(self.controller.hostname, self.controller.port)
            raise ListenerUnavailable(f"inbound SMTP {problem or 'cannot listen'}") from None
        log.info("inbound SMTP listening on %s", self.address)

    def stop(self) -> None:
        """Refuse new connections, let the messages being stored finish, then stop."""
        if self._stopped:
            return
        self._stopped = True
        server = self.controller.server
        if server is not None:
            self.controller.loop.call_soon_threadsafe(server.close)
        if not self.handler.wait_until_idle(self.DRAIN_SECONDS):
            log.warning("inbound SMTP: stopping with a message still being stored; "
                        "its sender was not answered and will send it again")
        # Cancels the sessions still open; their messages were stored or never accepted.
        self.controller.stop()
