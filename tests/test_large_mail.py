"""Large mail is read from disk with its large attachments streamed to the store: the
ticket is the same as for the ordinary parser, and memory holds no whole attachment."""

from __future__ import annotations

import email
import email.policy
import hashlib
import shutil
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maild.channels.imap.reader import STREAM_BYTES
from maild.clock import FixedClock
from maild.config import parse_config
from maild.db.models import Message
from maild.db.rawstore import RawStore
from maild.intake.large import STORED_PART, skeleton
from maild.intake.parse import parse
from maild.intake.pipeline import ingest, intake_batch
from maild.mail.policy import MailPolicies
from maild.runtime.app import App, build_app
from tests.conftest import Sink, config_text, mailbox_toml
from tests.helpers import kept_raw
from tests.mailbuilder import make_mail
from tests.test_imap import password_env, reader_for

PDF = b"%PDF-1.7\n" + bytes(range(256)) * (STREAM_BYTES // 256 + 4096)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def large_mail(subject: str = "Logs attached", message_id: str = "<large@customer.example>"
               ) -> bytes:
    """Text and HTML alternatives, a large PDF and a small PNG, as a mail client sends."""
    message = email.message_from_bytes(
        make_mail(subject=subject, message_id=message_id, body="The logs are attached.\n",
                  html="<p>The logs are <b>attached</b>.</p>"),
        policy=email.policy.SMTP,
    )
    assert isinstance(message, EmailMessage)
    message.make_mixed()
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="logs.pdf")
    message.add_attachment(PNG, maintype="image", subtype="png", filename="screen.png")
    return message.as_bytes()


@pytest.fixture
def reading_app(database_url: str, tmp_path: Path, sink: Sink, clock: FixedClock,
                imap_account: Any) -> Iterator[App]:
    text = config_text(database_url, tmp_path / "storage", sink.port,
                       mailbox_toml(imap_account))
    app = build_app(parse_config(text, password_env(imap_account)), clock)
    yield app
    app.close()


def attachments_of(app: App, message_id: str) -> list[dict[str, Any]]:
    with app.db.transaction() as session:
        message = session.scalars(select(Message).where(Message.message_id == message_id)).one()
        return list(message.attachments)


def test_a_large_mail_from_imap_has_its_attachments_streamed_and_kept_exactly(
    reading_app: App, imap_account: Any
) -> None:
    app = reading_app
    raw = large_mail()
    assert len(raw) > STREAM_BYTES
    imap_account.append(raw)
    imap_account.append(make_mail(subject="Small", message_id="<small@customer.example>"))

    report = reader_for(app).drain_once()

    assert (report.stored, report.quarantined) == (2, 0)
    kept = attachments_of(app, "<large@customer.example>")
    assert [(a["filename"], a["content_type"], a["size"]) for a in kept] == [
        ("logs.pdf", "application/pdf", len(PDF)), ("screen.png", "image/png", len(PNG)),
    ]
    assert app.attachment_store.get(kept[0]["sha256"]) == PDF
    assert app.attachment_store.get(kept[1]["sha256"]) == PNG
    with app.db.transaction() as session:
        stored = session.scalars(select(Message).where(
            Message.message_id == "<large@customer.example>")).one()
        assert stored.body == "The logs are attached."
        assert kept_raw(app, stored.raw_sha256) == raw
    assert imap_account.count("INBOX") == 0


def test_the_skeleton_reads_as_the_whole_mail_does(tmp_path: Path) -> None:
    raw = large_mail()
    raw_store = RawStore(tmp_path / "raw")
    attachment_store = RawStore(tmp_path / "attachments", suffix=".bin")
    sha256 = raw_store.put(raw)

    large = skeleton(raw_store.path_for(sha256), attachment_store)

    assert large is not None
    assert len(large.raw) < 16 * 1024  # the PDF is not in it
    assert len(large.stored) == 1  # the PNG is small: left in place
    reading = MailPolicies().reading
    lean, whole = parse(b"", reading, large=large, raw_sha256=sha256), parse(raw, reading)
    assert (lean.message_id, lean.subject, lean.text, lean.new_text) == (
        whole.message_id, whole.subject, whole.text, whole.new_text)
    assert [(a.filename, a.content_type, a.size) for a in lean.attachments] == [
        (a.filename, a.content_type, a.size) for a in whole.attachments]
    assert lean.attachments[0].stored_sha256 == hashlib.sha256(PDF).hexdigest()
    assert lean.attachments[1].data == PNG


def test_a_large_mail_the_pass_cannot_follow_is_read_whole(app: App) -> None:
    """A multipart that never closes: the ordinary parser's reading, nothing lost."""
    raw = large_mail().rstrip()
    raw = raw[:raw.rindex(b"\n--")]  # cut off the closing delimiter
    sha256 = app.raw_store.put(raw)
    assert skeleton(app.raw_store.path_for(sha256), app.attachment_store) is None

    with intake_batch(app.intake, "test") as batch:
        result = batch.ingest_stored(sha256)

    assert result.outcome == "stored"
    kept = attachments_of(app, "<large@customer.example>")
    assert app.attachment_store.get(kept[0]["sha256"]) == PDF


def test_a_sender_naming_a_stored_part_gains_nothing(app: App) -> None:
    """The header that names a streamed part is only believed from the pass that wrote
    it; in a customer's mail it is text, and the attachment is what they sent."""
    someone_elses = app.attachment_store.put(b"another customer's contract")
    message = email.message_from_bytes(make_mail(), policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    message.add_attachment(b"what I really sent", maintype="application",
                           subtype="octet-stream", filename="mine.bin")
    attachment = next(message.iter_attachments())
    attachment[STORED_PART] = someone_elses

    assert ingest(app.intake, message.as_bytes(), "test").outcome == "stored"

    kept = attachments_of(app, "<first@customer.example>")
    assert app.attachment_store.get(kept[0]["sha256"]) == b"what I really sent"



def test_the_raw_store_writes_on_when_its_directories_are_removed(tmp_path: Path) -> None:
    """It remembers which directories it made, so that a message costs no mkdir; an
    operator who moves storage aside while it runs must not make it fail for good."""
    store = RawStore(tmp_path / "raw")
    first = store.put(b"first")
    shutil.rmtree(tmp_path / "raw")

    second = store.put(b"second")
    again = store.put(b"first")

    assert (store.get(second), store.get(again)) == (b"second", b"first")
    assert again == first
