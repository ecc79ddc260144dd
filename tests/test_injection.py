"""Customer-controlled values (names, subjects) can neither add a header to the mail
maild writes nor put markup into its HTML part."""

from __future__ import annotations

import email
import email.policy

from maild.intake.pipeline import ingest
from maild.runtime.app import App
from tests.conftest import Sink
from tests.helpers import notice_to
from tests.mailbuilder import make_mail


def test_an_encoded_line_break_in_the_subject_adds_no_header(app: App, sink: Sink) -> None:
    # RFC 2047 lets a sender smuggle CR LF into a subject that decodes to two lines.
    raw = make_mail(subject="placeholder").replace(
        b"Subject: placeholder",
        b"Subject: =?utf-8?q?Help=0D=0ABcc=3A_victim=40evil=2Eexample?=",
    )
    ingest(app.intake, raw, "test")
    app.sender.deliver_due()

    ack_raw = next(p.read_bytes() for p in sink.files()
                   if b"Delivered-To: ann@customer.example" in p.read_bytes())
    header_block = ack_raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))
    ack = email.message_from_bytes(ack_raw, policy=email.policy.default)
    assert ack["Subject"] == "Re: [#1] Help Bcc: victim@evil.example"


def test_markup_in_a_subject_is_escaped_in_the_html_part(app: App, sink: Sink) -> None:
    ingest(app.intake, make_mail(subject='<img src=x onerror="alert(1)"> broken'), "test")
    app.sender.deliver_due()

    ack_raw = next(p.read_bytes() for p in sink.files()
                   if b"Delivered-To: ann@customer.example" in p.read_bytes())
    ack = email.message_from_bytes(ack_raw, policy=email.policy.default)
    html = ack.get_body(preferencelist=("html",)).get_content()
    assert "<img" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; broken" in html


def test_the_relay_is_multipart_alternative_and_escapes_what_the_se_wrote(
    app: App, sink: Sink
) -> None:
    ingest(app.intake, make_mail(body="Does <b>this</b> work?\n"), "test")
    ingest(app.intake,
        make_mail(sender="Dan Engineer <dan@example.com>", subject="Re: [#1]",
                  message_id="<dan@example.com>", in_reply_to=notice_to(app, 1),
                  body="Use <script>x</script> & restart.\n\nThen call us.\n"), "test")
    app.sender.deliver_due()

    relay_raw = next(p.read_bytes() for p in sink.files()
                     if b"Delivered-To: ann@customer.example" in p.read_bytes()
                     and b"Dan Engineer" in p.read_bytes())
    relay = email.message_from_bytes(relay_raw, policy=email.policy.default)
    assert relay.get_content_type() == "multipart/alternative"
    text = relay.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Use <script>x</script> & restart.\n\nThen call us.\n")
    html = relay.get_body(preferencelist=("html",)).get_content()
    assert "<p>Use &lt;script&gt;x&lt;/script&gt; &amp; restart.</p>" in html
    assert "<p>Then call us.</p>" in html
    assert "Does &lt;b&gt;this&lt;/b&gt; work?" in html  # the quoted customer text, escaped
