"""Property: whatever bytes arrive, the intake ends with a ticket message or a quarantine
entry with a reason, both keeping the bytes, or a recognised duplicate. It never raises.

Two sources of input: the hostile corpus mutated byte by byte, and mail generated from
arbitrary header text, charset labels, transfer encodings and payload bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from maild.db.models import Message, OutboxMail, QuarantinedMail
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from tests.helpers import kept_raw

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.eml"))
SMALL_CORPUS = [p.read_bytes() for p in CORPUS if p.stat().st_size < 20_000]

# Derandomized: the same examples every run, so no example database is kept on disk.
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def assert_kept_and_accounted_for(app: App, raw: bytes) -> None:
    result = ingest(app.intake, raw, "property")
    sha256 = hashlib.sha256(raw).hexdigest()
    if result.outcome != "duplicate":  # a duplicate changes nothing, and is not kept
        assert kept_raw(app, sha256) == raw
    with app.db.transaction() as session:
        if result.outcome == "stored":
            assert session.scalar(select(Message.raw_sha256).where(
                Message.message_id == result.message_id)) == sha256
        elif result.outcome == "duplicate":
            known = session.scalar(select(Message.id).where(
                Message.message_id == result.message_id)) or session.scalar(
                select(OutboxMail.id).where(OutboxMail.message_id == result.message_id))
            assert known is not None
        else:  # quarantined (held for an operator) or ignored (automatic, for no ticket)
            status = "held" if result.outcome == "quarantined" else "ignored"
            entry = session.scalar(select(QuarantinedMail).where(
                QuarantinedMail.raw_sha256 == sha256, QuarantinedMail.status == status))
            assert entry is not None and entry.reason.strip()


@st.composite
def mutated_corpus_file(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SMALL_CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        if action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif action == "truncate":
            del data[at:]
        else:
            line_end = data.find(b"\n", at)
            chunk = data[at:line_end + 1] if line_end >= 0 else data[at:]
            data[at:at] = chunk * draw(st.integers(1, 5))
    return bytes(data)


header_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80)
charsets = st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "koi8-r", "shift_jis",
                            "utf-16", "x-unknown", "", "utf-8\"; evil=\"x"])
encodings = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode",
                             "nonsense"])


@st.composite
def generated_mail(draw: st.DrawFn) -> bytes:
    # Mostly people who may write in (customers, an SE), sometimes no one valid.
    sender = draw(st.sampled_from(
        ["ann@customer.example", "Ann <ann@customer.example>", "bob@other.example",
         "=?utf-8?q?J=C3=BCrgen?= <j@customer.example>", "dan@example.com",
         "dan@example.com", "", "<>", "\"x\" <@>"]))
    tag = draw(st.sampled_from(["", "", "Re: [#1] ", "RE: [#2] ", "[#999] "]))
    answering = draw(st.sampled_from(
        [f"<{n}@property.example>" for n in range(5)] + ["<first@customer.example>", ""]))
    lines = [
        f"From: {sender}" if sender else "",
        "To: support@example.com",
        f"Subject: {tag}{draw(header_text)}",
        f"Message-ID: <{draw(st.integers(0, 60))}@property.example>",
        f"In-Reply-To: {answering}" if answering else "",
        f"References: {draw(header_text)} {answering}",
        "MIME-Version: 1.0",
        f"Content-Type: {draw(st.sampled_from(['text/plain', 'text/html', 'multipart/mixed']))}; "
        f"charset=\"{draw(charsets)}\"",
        f"Content-Transfer-Encoding: {draw(encodings)}",
    ]
    if draw(st.booleans()):
        lines.append(f"Auto-Submitted: {draw(st.sampled_from(['no', 'auto-replied', 'x']))}")
    head = "\r\n".join(line for line in lines if line).encode("utf-8", "surrogateescape")
    return head + b"\r\n\r\n" + draw(st.binary(max_size=600))


@PROPERTY
@given(raw=mutated_corpus_file())
def test_mutated_corpus_files_are_kept_and_accounted_for(app: App, raw: bytes) -> None:
    assert_kept_and_accounted_for(app, raw)


@PROPERTY
@given(raw=generated_mail())
def test_generated_mail_is_kept_and_accounted_for(app: App, raw: bytes) -> None:
    assert_kept_and_accounted_for(app, raw)
