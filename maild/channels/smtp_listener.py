"""The inbound SMTP listener: 250 only once the message is committed, 451 when it could not be."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from maild.app import App
from maild.errors import TemporaryError
from maild.intake.pipeline import IngestResult, ingest

log = logging.getLogger(__name__)


class IntakeHandler:
    def __init__(self, app: App, on_stored: Callable[[IngestResult], None]) -> None:
        self.app = app
        self.on_stored = on_stored

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(None, ingest, self.app, raw, "smtp")
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
    def __init__(self, app: App, on_stored: Callable[[IngestResult], None]) -> None:
        settings = app.config.inbound_smtp
        self.controller = Controller(
            IntakeHandler(app, on_stored),
            hostname=settings.host,
            port=settings.port,
            data_size_limit=settings.max_message_bytes,
            ready_timeout=10,
        )
        self.address = f"{settings.host}:{settings.port}"

    def start(self) -> None:
        self.controller.start()
        log.info("inbound SMTP listening on %s", self.address)

    def stop(self) -> None:
        # aiosmtpd lets the message in hand finish before the loop stops.
        self.controller.stop()
