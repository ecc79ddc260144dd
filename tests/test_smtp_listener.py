"""The inbound listener answers 250 only for what it has kept, and 451 when it could not."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from maild.app import App, build_app
from maild.channels.smtp_listener import SmtpListener
from maild.clock import FixedClock
from maild.config import Config
from maild.intake.pipeline import IngestResult
from tests.conftest import free_port
from tests.helpers import show
from tests.mailbuilder import make_mail


@pytest.fixture
def listening(config: Config, clock: FixedClock) -> Iterator[tuple[App, int, list[IngestResult]]]:
    port = free_port()
    inbound = config.inbound_smtp.model_copy(update={"enabled": True, "port": port})
    app = build_app(config.model_copy(update={"inbound_smtp": inbound}), clock)
    results: list[IngestResult] = []
    listener = SmtpListener(app, results.append)
    listener.start()
    try:
        yield app, port, results
    finally:
        listener.stop()
        app.db.dispose()


def _send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("ann@customer.example", ["support@example.com"], raw)


def test_accepted_mail_is_already_a_ticket(listening: tuple[App, int, list[IngestResult]]) -> None:
    app, port, results = listening
    _send(port, make_mail())
    assert [r.outcome for r in results] == ["stored"]
    assert show(app, results[0].ticket_id)["status"] == "new"


def test_quarantined_mail_is_accepted_and_kept(
    listening: tuple[App, int, list[IngestResult]]
) -> None:
    _, port, results = listening
    _send(port, make_mail(sender="not-an-address"))
    assert [r.outcome for r in results] == ["quarantined"]


def test_mail_that_cannot_be_kept_gets_451(
    listening: tuple[App, int, list[IngestResult]]
) -> None:
    app, port, results = listening
    # The raw store's place is taken by a file: storing fails as a full disk would.
    app.raw_store.directory.write_text("not a directory")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(port, make_mail())
    assert refused.value.smtp_code == 451
    assert results == []
