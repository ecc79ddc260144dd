"""`maild sink`: a local SMTP server that keeps every message it is given as an .eml file."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class SinkHandler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._counter = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # As a delivery agent would: name the envelope, then the message as received.
        trace = f"Return-Path: <{envelope.mail_from}>\r\n" + "".join(
            f"Delivered-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos
        )
        name = f"{time.time_ns()}.{os.getpid()}.{next(self._counter)}.eml"
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as kept:  # no second copy of a large message
            kept.write(trace.encode())
            kept.write(raw)
        os.replace(temporary, self.directory / name)
        return "250 2.0.0 OK"


def start_sink(host: str, port: int, directory: Path, *, smtputf8: bool = True
               ) -> Controller:
    """`smtputf8`: offer SMTPUTF8 (RFC 6531), as most relays do: mail to an address
    whose local part is not ASCII is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(SinkHandler(directory), hostname=host, port=port,
                            enable_SMTPUTF8=smtputf8)
    controller.start()
    return controller
