"""The headers maild writes, read back as clients read them (maild/mail/headers.py).

Message-IDs as real clients make them thread unencoded; every subject and display name
reads back through `email.policy.default` as exactly what was meant; no line passes 998
octets. Each of these failed with `email`'s own folding.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maild.mail.headers import encoded_words
from maild.mail.policy import MailPolicies
from maild.outbound.compose import OutgoingMail, Party, one_line
from maild.outbound.compose import render_mail as render_with

POLICIES = MailPolicies()


def render_mail(mail: OutgoingMail) -> bytes:
    return render_with(mail, POLICIES.writing)

# Message-IDs as each client writes them, the long ones first.
OUTLOOK_365 = ("<AM9PR07MB70594A1C3E8D2F6B9A0E4C7D5F1B3A8E2@AM9PR07MB7059.eurprd07."
               "prod.outlook.com>")
OUTLOOK_DESKTOP = ("<DB8PR04MB6459C4F1E2A0B3D9B8E7A6F5C4D3B2A1@DB8PR04MB6459.eurprd04."
                   "prod.outlook.com>")
GMAIL = "<CAJ8ezRmZ3pXn9bQr7xKq5Tq0o2hNvVcY9Fz8aW1pYg+Ta=Rb_wQ@mail.gmail.com>"
APPLE_MAIL = "<5F3A2B1C-7D4E-4F6A-9B8C-1D2E3F4A5B6C@icloud.com>"
THUNDERBIRD = "<a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d@customer.example>"
# What maild stores for a mail that came without one (intake/parse.py), and makes.
DERIVED = f"<{'9f86d081884c7d65' * 4}@no-message-id.maild>"
OURS = "<maild.17.0123456789abcdef0123456789abcdef@support.example.com>"
REAL_IDS = [OUTLOOK_365, OUTLOOK_DESKTOP, GMAIL, APPLE_MAIL, THUNDERBIRD, DERIVED, OURS]
MSG_ID_HEADERS = ("Message-ID", "In-Reply-To", "References")


def _mail(**changes: object) -> OutgoingMail:
    values: dict[str, object] = {
        "sender": Party("support@example.com", "Example Support"),
        "to": [Party("ann@customer.example", "Ann Müller")],
        "subject": "[#17] Printer on fire",
        "text": "Hello\n",
        "message_id": OURS,
        "date": datetime(2026, 11, 23, 18, 0, tzinfo=UTC),
    }
    values.update(changes)
    return OutgoingMail(**values)  # type: ignore[arg-type]


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_lines(raw: bytes) -> list[bytes]:
    """The lines of the top header block, continuation lines included."""
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def header_field(raw: bytes, name: str) -> bytes:
    """One header field as written, its continuation lines joined by CRLF."""
    found = re.search(rb"^" + name.encode() + rb":.*?(?=\r\n[^ \t])", raw,
                      re.MULTILINE | re.DOTALL | re.IGNORECASE)
    assert found, f"no {name} header"
    return found.group(0)


def assert_well_formed(raw: bytes) -> None:
    """What every mail maild writes must be, in its raw bytes."""
    for line in header_lines(raw):
        assert len(line) <= 998, line[:80]
    for name in MSG_ID_HEADERS:
        if re.search(rb"^" + name.encode() + rb":", raw, re.MULTILINE | re.IGNORECASE):
            field = header_field(raw, name)
            assert b"=?" not in field, field
            # Folded only between IDs: every line after the name holds whole IDs.
            value = field.split(b":", 1)[1]
            for line in value.split(b"\r\n"):
                assert re.fullmatch(rb"( <[!-;=?-~]+>)*", line), field


@pytest.mark.parametrize("answered", REAL_IDS)
def test_message_ids_of_every_client_are_written_unencoded(answered: str) -> None:
    raw = render_mail(_mail(in_reply_to=answered, references=REAL_IDS))

    assert_well_formed(raw)
    parsed = _parse(raw)
    assert parsed["Message-ID"] == OURS
    assert parsed["In-Reply-To"] == answered
    assert parsed["References"].split() == REAL_IDS
    # Short lines where the IDs allow: one ID a line at most, here.
    assert all(len(line) <= 100 for line in header_lines(raw))


def test_an_id_longer_than_a_line_stands_alone_and_one_no_line_can_carry_is_left_out() -> None:
    long_id = f"<{'x' * 900}@customer.example>"
    too_long = f"<{'y' * 1200}@customer.example>"
    eight_bit = "<café@customer.example>"
    raw = render_mail(_mail(in_reply_to=long_id,
                            references=[GMAIL, too_long, eight_bit, long_id, OUTLOOK_365]))

    assert_well_formed(raw)
    parsed = _parse(raw)
    assert parsed["In-Reply-To"] == long_id
    assert parsed["References"].split() == [GMAIL, long_id, OUTLOOK_365]
    assert _parse(render_mail(_mail(in_reply_to=too_long)))["In-Reply-To"] is None


def test_a_long_thread_keeps_its_first_and_latest_references() -> None:
    thread = [f"<m{n}.{'z' * 60}@customer.example>" for n in range(40)]
    raw = render_mail(_mail(in_reply_to=thread[-1], references=thread))

    assert_well_formed(raw)
    assert _parse(raw)["References"].split() == [thread[0], *thread[-19:]]


SUBJECTS = [
    "Größenänderung schlägt fehl ✉ — bitte helfen",
    "Re: [#17] Größenänderung schlägt fehl ✉ — bitte helfen",
    "日本語 の 件名 です",
    "✓ ✓ ✓ done",
    "Zahlung fehlgeschlagen 💳 ❌ 🙏",
    "Ошибка при входе — срочно",
    "خطأ في تسجيل الدخول",
    "literal =?utf-8?q?not_an_encoded_word?= text",
    "a (comment) \"quoted\" and <angle> @ ; : \\ back",
    ("Überweisung " * 30).strip(),
    "https://example.com/" + "a" * 200 + " is down",
]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subjects_read_back_exactly(subject: str) -> None:
    raw = render_mail(_mail(subject=subject))
    assert_well_formed(raw)
    assert _parse(raw)["Subject"] == subject


NAMES = [
    "Ann Müller", "Müller, Jörg", "Nguyễn Thị Hương", "山田 太郎", "Zoë 🦊 from Support",
    "O'Neil \"the boss\"", "Smith, John (IT)", "=?utf-8?q?not_encoded?=", "back\\slash",
    "株式会社サンプル カスタマーサポート部 第二課 担当者", "Ünïcödé " * 12, "x" * 120,
]


@pytest.mark.parametrize("name", NAMES)
def test_display_names_read_back_exactly(name: str) -> None:
    raw = render_mail(_mail(
        sender=Party("support@example.com", name), to=[Party("ann@customer.example", name)],
        cc=[Party(f"cc{n}@customer.example", name) for n in range(3)],
        reply_to=Party("support@example.com", name)))

    assert_well_formed(raw)
    parsed = _parse(raw)
    for header in ("From", "To", "Cc", "Reply-To"):
        assert [a.display_name for a in parsed[header].addresses] == \
            [one_line(name)] * len(parsed[header].addresses)
    assert [a.addr_spec for a in parsed["Cc"].addresses] == \
        [f"cc{n}@customer.example" for n in range(3)]


def test_an_internationalised_domain_is_written_in_its_ascii_form() -> None:
    raw = render_mail(_mail(to=[Party("ann@bücher.example", "Ann")]))
    raw.decode("ascii")
    assert _parse(raw)["To"].addresses[0].addr_spec == "ann@xn--bcher-kva.example"


def test_a_non_ascii_local_part_is_written_in_utf8_headers() -> None:
    """No 7-bit header can carry it: the mail is written as RFC 6532 says."""
    raw = render_mail(_mail(to=[Party("jörg@bücher.example", "Jörg")],
                            subject="Größe ✉ — bitte"))
    assert_well_formed(raw)
    assert "To: =?utf-8?b?SsO2cmc=?= <jörg@xn--bcher-kva.example>".encode() in raw
    parsed = email.message_from_bytes(raw, policy=POLICIES.reading)  # UTF-8 read as such
    assert parsed["To"].addresses[0].addr_spec == "jörg@xn--bcher-kva.example"
    assert parsed["To"].addresses[0].display_name == "Jörg"
    assert parsed["Subject"] == "Größe ✉ — bitte"


def test_encoded_words_keep_to_their_length_and_split_between_characters() -> None:
    words = encoded_words("🦊" * 40 + "é" * 40)
    assert all(len(w) <= 75 for w in words)
    assert str(email.header.make_header(email.header.decode_header(" ".join(words)))) == \
        "🦊" * 40 + "é" * 40


# Text as people write it: scripts mixed, emoji, punctuation next to non-ASCII letters,
# and anything that reads like an encoded word.
_PIECES = st.sampled_from([
    "Größe", "schlägt", "✉", "—", "–", "…", "“quoted”", "日本語", "件名", "Ошибка", "خطأ",
    "🙏", "👍🏽", "🇩🇪", "e\u0301", "\u200b", "=?", "?=", "=?utf-8?q?x?=", "_", "(", ")",
    "\"", "\\", ",", ";", "<", ">", "@", ":", "Re:", "[#17]", "Printer", "on", "fire",
    "a" * 80, "ß" * 30,
])
_WORDS = st.one_of(_PIECES, st.text(st.characters(blacklist_categories=("Cs",)),
                                    min_size=1, max_size=12))
_TEXTS = st.lists(_WORDS, min_size=1, max_size=40).flatmap(
    lambda words: st.lists(st.sampled_from([" ", "", "  ", "\t"]), min_size=len(words),
                           max_size=len(words)).map(
        lambda gaps: "".join(w + g for w, g in zip(words, gaps, strict=True))))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(subject=_TEXTS)
def test_any_subject_reads_back_exactly(subject: str) -> None:
    raw = render_mail(_mail(subject=subject))
    assert_well_formed(raw)
    assert _parse(raw)["Subject"] == one_line(subject)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(name=_TEXTS.map(lambda text: text[:120]))
def test_any_display_name_reads_back_exactly(name: str) -> None:
    raw = render_mail(_mail(sender=Party("support@example.com", name),
                            to=[Party("ann@customer.example", name),
                                Party("bob@customer.example", name)]))
    assert_well_formed(raw)
    parsed = _parse(raw)
    assert parsed["From"].addresses[0].display_name == one_line(name)
    assert [a.display_name for a in parsed["To"].addresses] == [one_line(name)] * 2
    assert [a.addr_spec for a in parsed["To"].addresses] == \
        ["ann@customer.example", "bob@customer.example"]
