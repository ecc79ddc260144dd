"""Threat: one customer on an internationalised domain (`x@xn--bcher-kva.example`, kept as
`x@bücher.example`) makes the sender fail mid-transaction, and every mail after it on the
same connection fails too ("503 nested MAIL command"), marked failed for good. One address
never poisons another mail: domains go out in ASCII form, SMTPUTF8 is used where a local
part needs it, and any failure ends its transaction before the next mail."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from maild.channels.sink import start_sink
from maild.clock import FixedClock
from maild.config import Config
from maild.intake.pipeline import ingest
from maild.runtime.app import App, build_app
from tests.conftest import Sink, config_text, free_port
from tests.helpers import maild
from tests.mailbuilder import make_mail

IDN = "x@xn--bcher-kva.example"
UNICODE_LOCAL = "jörg@bücher.example"
ANN = "ann@customer.example"


def customers_write(config_file: Path) -> None:
    """Three customers write in, through `maild ingest`; each is acknowledged."""
    for n, sender in enumerate([IDN, UNICODE_LOCAL, ANN]):
        assert maild(config_file, "ingest", "-", stdin=make_mail(
            sender=sender, message_id=f"<c{n}@customer.example>")).exit_code == 0


def acknowledgments(sink: Sink) -> list[Any]:
    return [m for m in sink.messages() if m["Delivered-To"] != "dan@example.com"]


def test_every_customer_is_answered_in_order_through_a_relay_with_smtputf8(
    config_file: Path, sink: Sink
) -> None:
    customers_write(config_file)
    maild(config_file, "run", "--once", "--only", "outbound")

    acks = acknowledgments(sink)
    assert [m["Delivered-To"] for m in acks] == [IDN, "jörg@xn--bcher-kva.example", ANN]
    assert [m["To"] for m in acks] == [IDN, "jörg@xn--bcher-kva.example", ANN]
    for n in (1, 2, 3):
        assert maild(config_file, "tickets", "show", str(n), "--json").output.count(
            '"status": "sent"') == 1


@pytest.fixture
def ascii_only_relay(tmp_path: Path, database_url: str) -> Iterator[tuple[Path, Sink]]:
    """A relay without SMTPUTF8, and the configuration that sends through it."""
    port = free_port()
    controller = start_sink("127.0.0.1", port, tmp_path / "ascii-sink", smtputf8=False)
    path = tmp_path / "ascii.toml"
    path.write_text(config_text(database_url, tmp_path / "storage", port))
    try:
        yield path, Sink(tmp_path / "ascii-sink", port)
    finally:
        controller.stop()


def test_without_smtputf8_only_the_mail_that_needs_it_fails_and_says_why(
    ascii_only_relay: tuple[Path, Sink]
) -> None:
    config_file, sink = ascii_only_relay
    customers_write(config_file)
    maild(config_file, "run", "--once", "--only", "outbound")

    assert [m["Delivered-To"] for m in acknowledgments(sink)] == [IDN, ANN]
    shown = maild(config_file, "tickets", "show", "2", "--json").output
    assert '"status": "failed"' in shown
    assert ("the relay does not offer SMTPUTF8, which jörg@xn--bcher-kva.example needs "
            "(a local part that is not ASCII)") in shown
    for n in (1, 3):
        assert '"status": "sent"' in maild(config_file, "tickets", "show", str(n),
                                           "--json").output


@pytest.fixture
def app(config: Config, clock: FixedClock) -> Iterator[App]:
    """Acknowledgments only: the staff notifications would interleave with them."""
    quiet = config.model_copy(update={"staff": config.staff.model_copy(update={"notify": False})})
    application = build_app(quiet, clock)
    try:
        yield application
    finally:
        application.close()


def test_a_fault_of_our_own_mid_transaction_defers_that_mail_alone(
    app: App, sink: Sink, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, sender in enumerate([IDN, ANN]):
        ingest(app.intake, make_mail(sender=sender, message_id=f"<c{n}@customer.example>"), "test")
    # No real input makes maild's own code fail inside a transaction any more (the IDN
    # address above was one such input): a fault injected into RCPT, after MAIL FROM was
    # accepted, stands for the next such bug.
    real_rcpt = smtplib.SMTP.rcpt
    failed = []

    def rcpt(client: smtplib.SMTP, recipient: str, options: Any = ()) -> tuple[int, bytes]:
        if recipient == IDN and not failed:
            failed.append(recipient)
            raise UnicodeEncodeError("ascii", recipient, 0, 1, "a bug of ours")
        return real_rcpt(client, recipient, options)

    monkeypatch.setattr(smtplib.SMTP, "rcpt", rcpt)

    report = app.sender.deliver_due()
    assert (report.sent, report.deferred, report.failed) == (1, 1, 0)
    assert [m["Delivered-To"] for m in sink.messages()] == [ANN]  # the next one went
    clock.advance(timedelta(minutes=1))
    assert app.sender.deliver_due().sent == 1
    assert [m["Delivered-To"] for m in sink.messages()] == [ANN, IDN]
