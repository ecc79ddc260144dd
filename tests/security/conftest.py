"""The desk as an attacker meets it: the real SMTP listener and `maild ingest` in, the real
sender out to the real sink; results read the way an operator reads them, from the sink's
files and `maild tickets show --json`."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from maild.channels.smtp_listener import SmtpListener
from maild.clock import FixedClock
from maild.config import Config
from maild.runtime.app import App, build_app
from tests.conftest import Sink, free_port
from tests.helpers import NOW, maild, notice_to


@dataclass
class Desk:
    config_file: Path
    sink: Sink
    clock: FixedClock
    port: int
    app: App
    now: str = NOW

    def at(self, moment: datetime) -> None:
        """From now on, for the listener and the command line alike."""
        self.clock.set(moment)
        self.now = moment.isoformat()

    def smtp(self, raw: bytes, mail_from: str = "ann@customer.example",
             to: tuple[str, ...] = ("support@example.com",)) -> None:
        """Through the listener, as any server on the internet may send it."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail(mail_from, list(to), raw)

    def ingest(self, raw: bytes) -> int:
        """Through `maild ingest -`, as an MTA pipe hands it over; its exit code."""
        return self.run("ingest", "-", stdin=raw).exit_code

    def run(self, *args: str, stdin: bytes | None = None) -> Any:
        return maild(self.config_file, *args, stdin=stdin, now=self.now)

    def notice(self, ticket_id: int) -> str:
        """The Message-ID of maild's latest mail to the engineer about the ticket: what a
        real engineer's reply answers, and so proves them staff."""
        return notice_to(self.app, ticket_id)

    def deliver(self) -> None:
        assert self.run("run", "--once", "--only", "outbound").exit_code == 0

    def sweep(self) -> None:
        assert self.run("run", "--once", "--only", "scheduler").exit_code == 0

    def show(self, ticket_id: int) -> dict[str, Any]:
        result = self.run("tickets", "show", str(ticket_id), "--json")
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output))

    def tickets(self) -> list[dict[str, Any]]:
        return list(json.loads(self.run("tickets", "list", "--json").output))

    def deliveries(self) -> list[tuple[str, EmailMessage]]:
        """Every (recipient, mail) the sink was given: a mail to three is three."""
        return [(recipient, mail) for mail in self.sink.messages()
                for recipient in mail.get_all("Delivered-To", [])]

    def mail_to(self, address: str) -> list[EmailMessage]:
        return [mail for recipient, mail in self.deliveries() if recipient == address]


@pytest.fixture
def desk(config: Config, config_file: Path, sink: Sink, clock: FixedClock) -> Iterator[Desk]:
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={"enabled": True, "port": port})
    app = build_app(config.model_copy(update={"inbound_smtp": inbound}), clock)
    listener = SmtpListener(app.intake, app.config.inbound_smtp, lambda result: None)
    listener.start()
    try:
        yield Desk(config_file, sink, clock, port, app)
    finally:
        listener.stop()
        app.close()
