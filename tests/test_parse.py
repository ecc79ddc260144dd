"""Parsing real-world shapes: multipart, HTML-only, wrong charsets, RFC 2047 headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from maild.intake.parse import ParseError, parse, whole_text
from maild.mail.policy import MailPolicies
from tests.mailbuilder import make_mail

READING = MailPolicies().reading
CORPUS = Path(__file__).parent / "corpus"


def test_plain_mail() -> None:
    mail = parse(make_mail(), READING)
    assert mail.sender.address == "ann@customer.example"
    assert mail.sender.name == "Ann Customer"
    assert mail.message_id == "<first@customer.example>"
    assert mail.text == "It is on fire."
    assert [m.address for m in mail.to] == ["support@example.com"]


def test_multipart_alternative_prefers_the_plain_part() -> None:
    mail = parse(make_mail(body="plain words\n", html="<p>html words</p>"), READING)
    assert mail.text == "plain words"


def test_html_only_mail_is_turned_into_text() -> None:
    html = "<html><body><p>Hello <b>team</b>,</p><ul><li>step one</li></ul>" \
           "<script>alert(1)</script></body></html>"
    mail = parse(make_mail(body=None, html=html), READING)  # type: ignore[arg-type]
    assert "Hello team," in mail.text
    assert "step one" in mail.text
    assert "<" not in mail.text
    assert "alert" not in mail.text


def test_rfc2047_encoded_names_and_subjects() -> None:
    raw = (
        "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Customer.Example>\r\n"
        "To: support@example.com\r\n"
        "Subject: =?iso-8859-1?q?Gr=FC=DFe?= =?utf-8?b?4oCTIGFsbGVz?= kaputt\r\n"
        "Message-ID: <enc@customer.example>\r\n\r\nHallo\r\n"
    ).encode("ascii")
    mail = parse(raw, READING)
    assert mail.sender.name == "Jürgen Müller"
    assert mail.sender.address == "juergen@customer.example"
    assert mail.subject == "Grüße– alles kaputt"


def test_latin1_body_is_decoded() -> None:
    raw = (
        b"From: a@customer.example\r\nTo: support@example.com\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nJ\xfcrgen \xe0 Z\xfcrich\r\n"
    )
    assert parse(raw, READING).text == "Jürgen à Zürich"


def test_windows_1252_body_labelled_utf8_keeps_its_characters() -> None:
    raw = (
        b"From: a@customer.example\r\nTo: support@example.com\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nJ\xfcrgen says \x93hi\x94\r\n"
    )
    assert parse(raw, READING).text == "Jürgen says \u201chi\u201d"


def test_unknown_charset_degrades_instead_of_failing() -> None:
    raw = (
        b"From: a@customer.example\r\nTo: support@example.com\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nplain ascii \xff\r\n"
    )
    assert parse(raw, READING).text.startswith("plain ascii")


def test_raw_8bit_header_bytes_do_not_raise() -> None:
    raw = b"From: a@customer.example\r\nSubject: caf\xe9 \xff\r\n\r\nbody\r\n"
    assert parse(raw, READING).subject.startswith("caf")


@pytest.mark.parametrize(("encoding", "subject", "name"), [
    ("latin-1", "Café crème brûlée", "Zoë Müller"),
    ("windows-1252", "Café \u201ccrème\u201d \u2013 5 \u20ac", "Zoë Müller"),
    ("utf-8", "Größenänderung ✉ — 日本語", "山田 太郎"),
])
def test_raw_8bit_headers_are_read_as_the_sender_wrote_them(
    encoding: str, subject: str, name: str
) -> None:
    """Old clients write headers in their own charset without RFC 2047: UTF-8 when the
    bytes are UTF-8, else windows-1252 (the superset of Latin-1 they mean)."""
    raw = (f"From: {name} <zoe@customer.example>\r\n"
           f"To: Support <support@example.com>, {name} <cc@customer.example>\r\n"
           f"Subject: {subject}\r\nMessage-ID: <8bit@customer.example>\r\n\r\n"
           "body\r\n").encode(encoding)
    mail = parse(raw, READING)
    assert mail.subject == subject
    assert mail.sender.name == name
    assert [m.name for m in mail.to] == ["Support", name]


def test_attachments_are_listed_not_read_as_text() -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "a@customer.example"
    message["Subject"] = "logs"
    message.set_content("See the attached log.\n")
    message.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream",
                           filename="crash.bin")
    mail = parse(message.as_bytes(), READING)
    assert mail.text == "See the attached log."
    assert [(a.filename, a.size) for a in mail.attachments] == [("crash.bin", 8)]


def test_missing_message_id_gets_a_stable_content_hash() -> None:
    raw = make_mail(message_id=None)
    first, second = parse(raw, READING), parse(raw, READING)
    assert first.message_id == second.message_id
    assert first.message_id.endswith("@no-message-id.maild>")


def test_threading_headers_nearest_first() -> None:
    mail = parse(make_mail(in_reply_to="<b@x.example>",
                           references=["<root@x.example>", "<a@x.example>", "<b@x.example>"]),
                 READING)
    assert mail.thread_ids == ["<b@x.example>", "<a@x.example>", "<root@x.example>"]


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "empty"),
        (b"Subject: no sender\r\n\r\nbody", "no From"),
        (b"From: not an address\r\n\r\nbody", "invalid sender"),
        (b"From: someone@localhost\r\n\r\nbody", "invalid sender"),
    ],
)
def test_unacceptable_mail_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(raw, READING)


def test_control_characters_never_get_past_the_intake() -> None:
    """BEL rings an operator's terminal, ESC starts sequences that repaint it, C1's CSI
    does the same on some; tabs and line breaks stay where they belong, in the body."""
    raw = (
        b"From: =?utf-8?q?Ann=07=1B[2J_Customer?= <ann@customer.example>\r\n"
        b"To: \"Sup\x07port\x1b[5m\" <support@example.com>\r\n"
        b"Subject: =?utf-8?q?Printer=07_on=1B]0;owned=07_fire=7F=C2=85now?=\r\n"
        b"Message-ID: <ctl@customer.example>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Step\t1:\x1b[31m red\x07\r\nStep 2\x7f done\r\n"
    )
    mail = parse(raw, READING)
    assert mail.subject == "Printer on]0;owned fire now"
    assert mail.sender.name == "Ann[2J Customer"
    assert mail.to[0].name == "Support[5m"
    assert mail.text == "Step\t1:[31m red\nStep 2 done"
    assert mail.new_text == "Step\t1:[31m red\nStep 2 done"


def _taken_in(path: Path) -> bool:
    try:
        parse(path.read_bytes(), READING)
    except ParseError:
        return False  # never taken in, never shown
    return True


@pytest.mark.parametrize("path", [p for p in sorted(CORPUS.glob("*.eml")) if _taken_in(p)],
                         ids=lambda p: p.stem)
def test_the_whole_text_a_page_folds_is_the_one_taken_in(path: Path) -> None:
    """A ticket page reads a mail's whole text again without the rest of the intake's
    parse: it must be the text the intake read, for every shape of mail in the corpus."""
    raw = path.read_bytes()
    assert whole_text(raw, READING) == parse(raw, READING).text
