"""maild's email policies do what they would do without their caches, only once per
repeated value; the folding of the headers maild writes is tested in test_headers.py."""

from __future__ import annotations

import dataclasses
import email.policy
import random
from datetime import UTC, datetime
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maild.mail.headers import WRITTEN_HEADER_CLASSES
from maild.mail.policy import MailPolicies, address_header
from maild.outbound.compose import OutgoingAttachment, OutgoingMail, Party, render_mail

NAMES = [
    "", "Ann", "Zoë Müller", 'Ann "the boss" O\'Neil', "Smith, John", "back\\slash",
    "a (comment) and <angle> and @ and ; and :", "日本語の名前", "x" * 120,
    "Ünïcödé " * 12,
]


def _mail(n: int, name: str) -> OutgoingMail:
    return OutgoingMail(
        sender=Party("support@example.com", name),
        to=[Party(f"ann{n}@customer.example", name)],
        cc=[Party(f"cc{k}@customer.example", name if k % 2 else "") for k in range(6)],
        reply_to=Party("support@example.com", "Support"),
        subject=f"[#{n}] {name} " + "a long subject that must be folded " * 4,
        text=f"Hello {name},\n\nünïcödé body\n",
        html=f"<p>Hello {name}</p>",
        message_id=f"<maild.{n}.abc@example.com>",
        date=datetime(2026, 11, 23, 18, n % 60, tzinfo=UTC),
        in_reply_to="<first@customer.example>",
        references=[f"<ref{k}.{'y' * 30}@customer.example>" for k in range(25)],
        auto_submitted="auto-replied",
        attachments=[OutgoingAttachment(f"Rechnung {name}.pdf", "application/pdf",
                                        b"%PDF" * 100)],
    )


WRITING = MailPolicies().writing


def _uncached() -> EmailPolicy:
    """The writing policy without its caches: email's own, with maild's header classes."""
    registry = HeaderRegistry()
    for name, header_class in WRITTEN_HEADER_CLASSES.items():
        registry.map_to_type(name, header_class)
    return EmailPolicy(header_factory=registry, linesep="\r\n")


UNCACHED = _uncached()


def _rendered(mail: OutgoingMail, policy: EmailPolicy = WRITING) -> bytes:
    random.seed(7)  # the same multipart boundaries
    return render_mail(mail, policy)


@pytest.mark.parametrize("n", range(len(NAMES)))
def test_mail_is_written_byte_for_byte_as_without_the_caches(n: int) -> None:
    mail = _mail(n, NAMES[n])
    ours = [_rendered(mail), _rendered(mail)]  # the second from what the first cached
    assert ours == [_rendered(mail, UNCACHED)] * 2


_PLAIN_HEADERS = ["Subject", "Date", "Message-ID", "In-Reply-To", "References"]
_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_IDS = st.from_regex(r"<[a-z0-9.]{1,30}@[a-z0-9.]{1,20}>", fullmatch=True)
_VALUES = st.one_of(
    st.text(_ASCII, max_size=90),
    st.lists(_IDS, min_size=1, max_size=5).map(" ".join),
    st.datetimes(timezones=st.just(UTC)).map(format_datetime),
    st.text(st.sampled_from("=?Ququtf-8 abc"), max_size=40),
    st.from_regex(r"[a-z ]{0,10}=\?utf-8\?q\?[a-z_]{1,10}\?=[a-z ]{0,10}", fullmatch=True),
)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(_PLAIN_HEADERS), value=_VALUES)
def test_a_header_unique_to_a_mail_is_written_as_without_the_caches(
    name: str, value: str
) -> None:
    """Those kept as text when plain (maild/mail/policy.py), and any value at all."""
    ours, standard = EmailMessage(policy=WRITING), EmailMessage(policy=UNCACHED)
    ours[name] = value
    standard[name] = value
    assert ours.as_bytes() == standard.as_bytes()


def test_a_part_holding_a_boundary_line_keeps_it_as_text() -> None:
    """maild writes all its mail with the same two boundaries: no text can end a
    part early, because quoted-printable writes every "=" as "=3D"."""
    probe = render_mail(_mail(0, ""), WRITING)
    boundaries = {line[2:].rstrip(b"-").decode() for line in probe.split(b"\r\n")
                  if line.startswith(b"--==")}
    text = "".join(f"--{b}\n--{b}--\n" for b in sorted(boundaries)) + "the end\n"
    mail = dataclasses.replace(_mail(0, ""), text=text, html=f"<pre>{text}</pre>")

    parsed = email.message_from_bytes(render_mail(mail, WRITING), policy=email.policy.default)

    assert isinstance(parsed, EmailMessage)
    assert [part.get_content_type() for part in parsed.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
        "application/pdf"]
    body = parsed.get_body(("plain",))
    assert body is not None and body.get_content().replace("\r\n", "\n") == text
    assert len(boundaries) == 2


def test_a_mail_like_the_last_folds_only_what_it_does_not_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The headers of every part (Content-Type, Content-Transfer-Encoding) and the desk's
    own are folded once, not once a part of every mail: `email` writes each part under a
    copy of the policy, which must share what the policy has folded."""
    policy = MailPolicies().writing
    first = dataclasses.replace(_mail(1, "Ann"), references=[], attachments=[])
    render_mail(first, policy)
    folded: list[str] = []
    fold = BaseHeader.fold

    def counted(self: BaseHeader, *, policy: EmailPolicy) -> str:
        folded.append(self.name)
        return fold(self, policy=policy)

    monkeypatch.setattr(BaseHeader, "fold", counted)
    second = dataclasses.replace(first, text="Another question\n", html="<p>Another</p>",
                                 message_id="<maild.2.abc@example.com>")
    render_mail(second, policy)

    assert folded == []


def test_a_thread_too_long_for_a_line_is_folded_without_parsing_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """References, In-Reply-To, a Message-ID and a Subject kept as text are folded by
    their own rule when too long for a line, as email would after parsing them into
    their header class (test_a_header_unique_to_a_mail_is_written_as_without_the_caches)
    but without the parse."""
    message = EmailMessage(policy=WRITING)
    message["Subject"] = "Re: " + "a long subject in plain words " * 4
    message["Message-ID"] = f"<maild.12.{'a' * 32}.{'b' * 24}@support.example.com>"
    message["References"] = " ".join(f"<ref{k}.{'y' * 30}@customer.example>" for k in range(5))
    made = _headers_parsed(monkeypatch)
    message.as_bytes()

    assert made == []


def _headers_parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the headers `email` parses from here on (its header registry
    called), in order."""
    made: list[str] = []
    make = HeaderRegistry.__call__

    def counted(self: HeaderRegistry, name: str, value: str) -> BaseHeader:
        made.append(name)
        return make(self, name, value)

    monkeypatch.setattr(HeaderRegistry, "__call__", counted)
    return made


_LOCAL = st.from_regex(r"[a-z0-9+_'=-]{1,40}(\.[a-z0-9+_]{1,30}){0,2}", fullmatch=True)
_DOMAIN = st.from_regex(r"[a-z0-9-]{1,40}(\.[a-z]{2,20}){1,2}", fullmatch=True)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(["From", "To", "Cc", "Reply-To"]), local=_LOCAL, domain=_DOMAIN)
def test_an_address_without_a_name_is_written_as_without_the_caches(
    name: str, local: str, domain: str
) -> None:
    """Kept as text (short, or folded by the address headers' rule when too long)."""
    ours, standard = EmailMessage(policy=WRITING), EmailMessage(policy=UNCACHED)
    ours[name] = address_header(WRITING, name, (("", local, domain),))
    standard[name] = address_header(UNCACHED, name, (("", local, domain),))
    assert ours.as_bytes() == standard.as_bytes()


def test_a_mail_to_a_new_address_without_a_name_parses_no_address(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new customer's acknowledgment goes to their address alone."""
    made = _headers_parsed(monkeypatch)
    mail = dataclasses.replace(_mail(3, "Ann"), to=[Party("first.time@customer.example")],
                               cc=[], attachments=[])
    raw = render_mail(mail, MailPolicies().writing)

    assert b"\r\nTo: first.time@customer.example\r\n" in raw
    assert "To" not in made
