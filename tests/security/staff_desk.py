"""A desk under attack, as the attacker reaches it: mail through the real SMTP listener or
`maild ingest`, maild's mail delivered to the real sink and read there, tickets read as
`maild tickets show --json` prints them."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from maild.channels.smtp_listener import SmtpListener
from maild.clock import FixedClock
from maild.config import Config
from maild.runtime.app import App, build_app
from tests.conftest import Sink, free_port
from tests.helpers import maild

CUSTOMER = "ann@customer.example"
SE = "dan@example.com"


@dataclass
class Desk:
    app: App
    port: int
    sink: Sink
    config_file: Path

    def send(self, raw: bytes, envelope_from: str) -> None:
        """Through the SMTP listener, as any server on the internet may."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail(envelope_from, ["support@example.com"], raw)

    def ingest(self, raw: bytes) -> int:
        """Through `maild ingest`, as an MTA pipe hands it over; its exit code."""
        return maild(self.config_file, "ingest", "-", stdin=raw).exit_code

    def mails_to(self, address: str) -> list[EmailMessage]:
        """What maild delivered to `address` so far, in order."""
        self.app.sender.deliver_due()
        return [m for m in self.sink.messages() if m["Delivered-To"] == address]

    def show(self, ticket_id: int) -> dict[str, Any]:
        result = maild(self.config_file, "tickets", "show", str(ticket_id), "--json")
        assert result.exit_code == 0, result.output
        shown: dict[str, Any] = json.loads(result.output)
        return shown

    def show_text(self, ticket_id: int) -> str:
        return maild(self.config_file, "tickets", "show", str(ticket_id)).output


@contextmanager
def open_desk(config: Config, config_file: Path, clock: FixedClock, sink: Sink,
              **staff: Any) -> Iterator[Desk]:
    """A desk with its SMTP listener; `staff` overrides [staff] keys, written into the
    configuration the command line reads too."""
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={"enabled": True, "port": port})
    app = build_app(config.model_copy(update={
        "inbound_smtp": inbound, "staff": config.staff.model_copy(update=staff)}), clock)
    if staff:
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in staff.items())
        config_file.write_text(config_file.read_text().replace("[staff]\n", f"[staff]\n{lines}", 1))
    listener = SmtpListener(app.intake, app.config.inbound_smtp, lambda result: None)
    listener.start()
    try:
        yield Desk(app, port, sink, config_file)
    finally:
        listener.stop()
        app.close()
