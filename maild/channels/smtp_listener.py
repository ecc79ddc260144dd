"""The inbound SMTP listener: 250 only once the message is committed, 451 when it could not be."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from maild.config import InboundSmtpConfig
from maild.errors import TemporaryError
from maild.intake.pipeline import IngestResult, Intake, ingest

log = logging.getLogger(__name__)


def return_path(mail_from: str | None) -> bytes:
    """The envelope sender as the delivering server records it (RFC 5321, section 4.4),
    above the mail's own headers, where the intake reads it first: `MAIL FROM:<>` is a
    bounce or another automatic mail by definition, never answered (docs/security.md)."""
    # aiosmtpd hands over `MAIL FROM:<>` as "<>", an address without its brackets.
    sender = "".join((mail_from or "").split()).removeprefix("<").removesuffix(">")
    return f"Return-Path: <{sender}>\r\n".encode("utf-8", "surrogateescape")


class IntakeHandler:
    def __init__(self, intake: Intake, on_stored: Callable[[IngestResult], None]) -> None:
        self.intake = intake
        self.on_stored = on_stored
        self._in_flight = 0
        self._idle = threading.Condition()

    def wait_until_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def _count(self, change: int) -> None:
        with self._idle:
            self._in_flight += change
            self._idle.notify_all()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Counted until the answer is decided, so a shutdown waits for the answer too.
        self._count(+1)
        try:
            raw = return_path(envelope.mail_from) + (envelope.original_content or b"")
            return await self._store(raw)
        finally:
            self._count(-1)

    async def _store(self, raw: bytes) -> str:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, ingest, self.intake, raw, "smtp")
        except TemporaryError as exc:
            log.warning("inbound SMTP: deferring a message: %s", exc)
            return "451 4.3.0 Temporary failure, please try again later"
        except Exception:
            log.exception("inbound SMTP: unexpected failure")
            return "451 4.3.0 Temporary failure, please try again later"
        # A quarantined message is kept; answering 250 stops the sender from retrying it.
        self.on_stored(result)
        return "250 2.0.0 OK"


class SmtpListener:
    # How long a shutdown waits for messages already being stored.
    DRAIN_SECONDS = 30.0

    def __init__(self, intake: Intake, settings: InboundSmtpConfig,
                 on_stored: Callable[[IngestResult], None]) -> None:
        self.handler = IntakeHandler(intake, on_stored)
        self.controller = Controller(
            self.handler,
            hostname=settings.host,
            port=settings.port,
            data_size_limit=settings.max_message_bytes,
            ready_timeout=10,
        )
        self.address = f"{settings.host}:{settings.port}"
        self._stopped = False

    def start(self) -> None:
        self.controller.start()
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
