"""Attachments: stored by content hash within a size limit, never under a name from the
mail, and relayed with the SE's reply, names encoded for every client (RFC 2231)."""

from __future__ import annotations

import email
import email.policy
import hashlib
from collections.abc import Callable
from email.message import EmailMessage

from maild.intake.pipeline import ingest
from maild.runtime.app import App
from tests.conftest import Sink
from tests.helpers import notice_to, show
from tests.mailbuilder import make_mail

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40


def with_attachment(raw: bytes, data: bytes, filename: str) -> bytes:
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    message.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return message.as_bytes()


def test_an_attachment_is_stored_by_its_hash_never_by_its_name(app: App) -> None:
    raw = with_attachment(make_mail(), PDF, "../../etc/cron.d/evil.pdf")
    ticket_id = ingest(app.intake, raw, "test").ticket_id

    [attachment] = show(app, ticket_id)["messages"][0]["attachments"]
    digest = hashlib.sha256(PDF).hexdigest()
    assert attachment == {"filename": "evil.pdf", "content_type": "application/pdf",
                          "size": len(PDF), "sha256": digest}
    stored = list((app.config.storage.dir / "attachments").rglob("*.bin"))
    assert [p.name for p in stored] == [f"{digest}.bin"]
    assert stored[0].read_bytes() == PDF


def test_the_se_s_attachment_travels_with_the_relay_under_its_own_name(
    app: App, sink: Sink
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    reply = with_attachment(
        make_mail(sender="Dan Engineer <dan@example.com>", subject=f"Re: [#{ticket_id}]",
                  message_id="<dan-pdf@example.com>", in_reply_to=notice_to(app, ticket_id),
                  body="The report is attached.\n"),
        PDF, "Prüfbericht März.pdf",
    )
    ingest(app.intake, reply, "test")
    app.sender.deliver_due()

    [raw] = [p.read_bytes() for p in sink.files() if b"The report is attached" in p.read_bytes()]
    relay = email.message_from_bytes(raw, policy=email.policy.default)
    assert relay["Delivered-To"] == "ann@customer.example"
    [attached] = list(relay.iter_attachments())
    assert attached.get_filename() == "Prüfbericht März.pdf"
    assert attached.get_content() == PDF
    assert b"filename*=utf-8''Pr%C3%BCfbericht" in raw  # RFC 2231, read by every client


def test_an_attachment_over_the_limit_is_not_stored_or_relayed_but_kept_in_the_raw_mail(
    app: App, app_with: Callable[..., App], sink: Sink
) -> None:
    small = app_with(storage=app.config.storage.model_copy(update={"max_attachment_bytes": 1000}))
    ticket_id = ingest(small.intake, make_mail(), "test").ticket_id
    reply = with_attachment(
        make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                  message_id="<dan-big@example.com>", in_reply_to=notice_to(app, ticket_id),
                  body="Too big to pass on.\n"), PDF, "big.pdf")
    result = ingest(small.intake, reply, "test")

    [attachment] = show(app, ticket_id)["messages"][-1]["attachments"]
    assert attachment["sha256"] is None
    assert "larger than storage.max_attachment_bytes" in attachment["note"]
    assert not (app.config.storage.dir / "attachments").exists()
    assert result.outcome == "stored"
    app.sender.deliver_due()
    [raw] = [p.read_bytes() for p in sink.files() if b"Too big to pass on" in p.read_bytes()]
    relay = email.message_from_bytes(raw, policy=email.policy.default)
    assert list(relay.iter_attachments()) == []
