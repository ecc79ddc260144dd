"""Customer-controlled values (names, subjects) can neither add a header to the mail
maild writes nor put markup into its HTML part."""

from __future__ import annotations

import email
import email.policy

from maild.app import App
from maild.intake.pipeline import ingest
from maild.outbound.sender import Sender
from tests.conftest import Sink
from tests.mailbuilder import make_mail


def test_an_encoded_line_break_in_the_subject_adds_no_header(app: App, sink: Sink) -> None:
    # RFC 2047 lets a sender smuggle CR LF into a subject that decodes to two lines.
    raw = make_mail(subject="placeholder").replace(
        b"Subject: placeholder",
        b"Subject: =?utf-8?q?Help=0D=0ABcc=3A_victim=40evil=2Eexample?=",
    )
    ingest(app, raw, "test")
    Sender(app).deliver_due()

    ack_raw = next(p.read_bytes() for p in sink.files()
                   if b"Delivered-To: ann@customer.example" in p.read_bytes())
    header_block = ack_raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))
    ack = email.message_from_bytes(ack_raw, policy=email.policy.default)
    assert ack["Subject"] == "Re: [#1] Help Bcc: victim@evil.example"


def test_markup_in_a_subject_is_escaped_in_the_html_part(app: App, sink: Sink) -> None:
    ingest(app, make_mail(subject='<img src=x onerror="alert(1)"> broken'), "test")
    Sender(app).deliver_due()

    ack_raw = next(p.read_bytes() for p in sink.files()
                   if b"Delivered-To: ann@customer.example" in p.read_bytes())
    ack = email.message_from_bytes(ack_raw, policy=email.policy.default)
    html = ack.get_body(preferencelist=("html",)).get_content()
    assert "<img" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; broken" in html
