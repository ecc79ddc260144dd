"""Mail as the world writes it, with the truth about where each belongs.

`Corpus` writes customers' mail in the styles of Gmail (web and app), Outlook (desktop
with and without References, through a gateway that drops them, answering the customer's
own sent mail, and Outlook on the web), Apple Mail, Thunderbird and iOS Mail; the
out-of-office replies of Exchange, Gmail, Lotus Notes and vacation programs; bounces as
Postfix, Exim, Exchange, Gmail, qmail, Sendmail, GroupWise and InterScan write them;
automatic mail that answers nothing of ours; duplicates; and the malformations real
senders produce (an unquoted comma in a display name, no angle brackets, an Active
Directory domain, raw Latin-1 headers, Message-IDs of Microsoft 365 length, none at all).

It is played in rounds, as mail happens: the customers write (`first_round`), maild
answers, the corpus reads maild's answers (`learn`), and the customers' clients and
servers answer those (`reply_round`). Every mail carries its truth: the conversation
(ticket) it belongs to, or IGNORED. `score` compares that truth with what maild did,
from `maild tickets export` and `maild quarantine list --all --json`.

Used by tests/test_corpus.py (through Dovecot and `maild run --once`) and by
bench/threading.py (a larger corpus through `maild ingest`).
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import quopri
import random
import subprocess
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal

IGNORED = "ignored"
SUPPORT = "support@example.com"
START = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)

Kind = Literal["first", "reply", "auto_reply", "bounce", "noise"]

# Text in many scripts: a body keeps every one of its characters, or the test says which.
_WORDS = ("Größenänderung schlägt fehl ✉ — bitte helfen", "Café crème, déjà vu",
          "Łódź: żółć gęślą jaźń", "東京のサーバーが応答しません", "Ошибка входа в систему",
          "¿Por qué no funciona? ñandú", "Ελληνικά γράμματα", "naïve façade — 😀 ok")
# Written by old clients as raw 8-bit Latin-1 in the header, without RFC 2047.
_LATIN1_SUBJECTS = ("Café crème: la synchronisation échoue", "Größe ändern geht nicht",
                    "Señal perdida en la oficina de Núñez {n}", "Kötbullar på menyn {n}")
_LATIN1_WORDS = ("Café crème", "Größe ändern", "déjà reçu", "Señor Núñez", "smørrebrød")
_SUBJECTS = ("Cannot log in", "Invoice {n} is wrong", "Export to CSV fails", "SSO broken",
             "Password reset mail never arrives", "API returns 500 on /orders",
             "Größenänderung schlägt fehl ✉ — bitte helfen", "Quota exceeded on project {n}",
             "Webhook retries forever", "Café crème: la synchronisation échoue",
             "Dashboard slow since Monday", "Cannot add a user", "Two-factor codes rejected",
             "Report {n} shows last month's figures", "Upload stops at 99%")
_NAMES = ("Ann Lee", "Noor Nguyen", "José Álvarez", "Zoë Müller", "Li Wei", "Sam O'Neil",
          "Ingrid Dahl", "Kenji Sato", "Olga Petrova", "Priya Nair", "Tom Brown", "Eva Novák")
_DOMAINS = ("customer.example", "acme.example", "contoso.example", "globex.example",
            "corp.local", "initech.example")
_OUTLOOK_PREFIXES = ("RE", "RE", "RE", "AW", "SV", "VS", "Antw", "RIF", "R", "TR", "Odp", "RES")
_OOO_SUBJECTS = ("Automatic reply", "Out of Office", "Abwesenheitsnotiz",
                 "Réponse automatique", "Automatische Antwort", "Respuesta automática",
                 "Autosvar", "Out of Office AutoReply")
CLIENTS = ("gmail", "gmail_app", "outlook", "outlook_no_references", "outlook_gateway",
           "outlook_web", "apple_mail", "thunderbird", "ios_mail")
AUTO_REPLIES = ("exchange_ooo", "gmail_vacation", "notes_ooo", "vacation_program",
                "exchange_ooo_german")
BOUNCES = ("postfix", "exim", "exchange", "gmail", "qmail", "sendmail", "groupwise",
           "interscan", "gateway")


@dataclass(frozen=True)
class Mail:
    raw: bytes
    truth: str  # the conversation it belongs to, or IGNORED
    kind: Kind
    style: str
    text: str = ""  # what its author wrote now, to be found in the stored body
    subject: str = ""  # a first mail's subject, as its author meant it

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def message_id(self) -> str:
        """The Message-ID maild stores it under (a content hash when it has none)."""
        head = self.raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n"):
            if line.lower().startswith("message-id:"):
                return line.split(":", 1)[1].strip()
        return f"<{self.sha256}@no-message-id.maild>"


@dataclass
class Person:
    name: str
    address: str
    from_header: str  # as their client writes it, malformed or not


@dataclass
class Conversation:
    key: str
    person: Person
    subject: str
    first_id: str  # the Message-ID maild stores the first mail under
    first_text: str
    client: str
    latin1: bool = False
    first_had_id: bool = True  # else first_id is the content hash maild stores it under
    ack: Message | None = None  # maild's acknowledgment, once learned
    replies: int = 0


@dataclass
class Corpus:
    seed: int = 1
    conversations: list[Conversation] = field(default_factory=list)
    mails: list[Mail] = field(default_factory=list)  # every mail written, duplicates too

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.now = START
        self._counter = 0

    # --- the rounds ----------------------------------------------------------------------

    def first_round(self, conversations: int) -> list[Mail]:
        """New conversations, with noise that answers nothing of ours among them."""
        written: list[Mail] = []
        for _ in range(conversations):
            written.append(self._first_mail())
        for _ in range(max(1, conversations // 6)):
            written.append(self._noise())
        written += self._duplicates(written)
        self.random.shuffle(written)
        self.mails += written
        return written

    def learn(self, sent: Iterable[Message]) -> None:
        """maild's acknowledgments, as the customers received them."""
        by_first = {c.first_id: c for c in self.conversations if c.first_id}
        for message in sent:
            conversation = by_first.get(str(message.get("In-Reply-To", "")).strip())
            if conversation is not None and conversation.ack is None and str(
                    message.get("Delivered-To", "")).lower() == conversation.person.address:
                conversation.ack = message

    def reply_round(self) -> list[Mail]:
        """The customers' replies in their clients' styles, their out-of-office replies
        and their servers' bounces to what maild sent, strangers writing on the same
        subject, more noise and duplicates."""
        self.now += timedelta(hours=3)
        written: list[Mail] = []
        for conversation in self.conversations:
            roll = self.random.random()
            if roll < 0.62:
                written.append(self._reply(conversation))
            elif roll < 0.77:
                written.append(self._auto_reply(conversation))
            elif roll < 0.9 and conversation.ack is not None:
                written.append(self._bounce(conversation))
            if self.random.random() < 0.25:
                written.append(self._reply(conversation, style="outlook_own_mail"))
        for _ in range(max(1, len(self.conversations) // 15)):
            written.append(self._stranger())
        for _ in range(max(1, len(self.conversations) // 6)):
            written.append(self._noise())
        written += self._duplicates(written)
        self.random.shuffle(written)
        self.mails += written
        return written

    # --- people and conversations --------------------------------------------------------

    def _person(self) -> Person:
        self._counter += 1
        n = self._counter
        name = self.random.choice(_NAMES)
        first, _, last = name.partition(" ")
        domain = self.random.choice(_DOMAINS)
        address = f"{first.lower().replace('ö', 'o').replace('é', 'e').replace('ë', 'e')}" \
                  f".{n}@{domain}".replace("'", "")
        form = self.random.random()
        if form < 0.26 and not name.isascii():
            form = 1.0  # the malformed forms below come from ASCII names in the wild
        if form < 0.08:  # Outlook's "Last, First" without quotes or angle brackets
            header = f"{last}, {first} {address}"
            name = f"{last}, {first}"
        elif form < 0.14:
            header = f"{last}, {first} <{address}>"
            name = f"{last}, {first}"
        elif form < 0.2:
            header = address
            name = ""
        elif form < 0.26:
            header = f"{address} ({name})"
        else:
            header = f"{_encoded_word(name)} <{address}>"
        return Person(name, address, header)

    def _first_mail(self) -> Mail:
        self._counter += 1
        key = f"c{len(self.conversations) + 1}"
        person = self._person()
        client = self.random.choice(CLIENTS)
        latin1 = client in ("outlook", "thunderbird") and self.random.random() < 0.3
        subject = self.random.choice(_LATIN1_SUBJECTS if latin1 else _SUBJECTS).format(
            n=self._counter)
        text = self._text(latin1)
        with_id = self.random.random() > 0.03
        headers = [("From", person.from_header), ("To", SUPPORT),
                   ("Subject", subject), ("Date", self._date())]
        if with_id:
            headers.append(("Message-ID", _message_id(client, self.random)))
        headers += _client_headers(client)
        mail = Mail(_mail(headers, text, client, latin1=latin1), key, "first",
                    client if with_id else f"{client}_without_message_id", text, subject)
        self.conversations.append(Conversation(key, person, subject, mail.message_id, text,
                                               client, latin1, with_id))
        return mail

    def _text(self, latin1: bool = False) -> str:
        self._counter += 1
        words = self.random.choice(_LATIN1_WORDS if latin1 else _WORDS)
        return f"{words} (note {self._counter}).\nIt still happens every time we try."

    def _date(self) -> str:
        self.now += timedelta(seconds=self.random.randint(20, 400))
        return format_datetime(self.now)

    # --- replies -------------------------------------------------------------------------

    def _reply(self, conversation: Conversation, style: str | None = None) -> Mail:
        conversation.replies += 1
        ack = conversation.ack
        style = style or conversation.client
        if ack is None and style not in ("outlook_own_mail",):
            # Nothing of ours arrived: the customer answers their own first mail.
            style = "outlook_own_mail" if conversation.client.startswith("outlook") \
                else "own_thread"
        text = self._text(conversation.latin1)
        subject, in_reply_to, references = self._reply_headers(conversation, style)
        headers = [("From", conversation.person.from_header), ("To", SUPPORT),
                   ("Subject", subject), ("Date", self._date()),
                   ("Message-ID", _message_id(_id_style(style), self.random))]
        if in_reply_to:
            headers.append(("In-Reply-To", in_reply_to))
        if references:
            headers.append(("References", " ".join(references)))
        headers += _client_headers(style, topic=conversation.subject)
        quoted = _quote(style, conversation, ack)
        raw = _mail(headers, text, style, quoted=quoted, latin1=conversation.latin1)
        return Mail(raw, conversation.key, "reply", style, text)

    def _reply_headers(self, conversation: Conversation, style: str
                       ) -> tuple[str, str, list[str]]:
        ack = conversation.ack
        first = [conversation.first_id] if conversation.first_had_id else []
        if style == "outlook_own_mail":
            prefix = self.random.choice(_OUTLOOK_PREFIXES)
            again = f"{prefix}: " * (1 + (conversation.replies > 1))
            return f"{again}{conversation.subject}", "", []
        if style == "own_thread":
            return f"Re: {conversation.subject}", first[0] if first else "", first
        assert ack is not None
        ack_id = str(ack["Message-ID"]).strip()
        ack_subject = str(ack["Subject"])
        if style == "outlook_gateway":
            return f"RE: {_without_re(ack_subject)}", "", []
        if style in ("outlook", "outlook_no_references", "outlook_web"):
            refs = [] if style == "outlook_no_references" else [*first, ack_id]
            if style == "outlook_web":
                refs = [ack_id]
            return f"RE: {_without_re(ack_subject)}", ack_id, refs
        return f"Re: {_without_re(ack_subject)}", ack_id, [*first, ack_id]

    def _stranger(self) -> Mail:
        """Someone else writing with the subject of a conversation: a ticket of their own."""
        victim = self.random.choice(self.conversations)
        person = self._person()
        key = f"c{len(self.conversations) + 1}"
        text = self._text()
        message_id = _message_id("outlook", self.random)
        self.conversations.append(Conversation(key, person, f"RE: {victim.subject}",
                                               message_id, text, "outlook"))
        headers = [("From", person.from_header), ("To", SUPPORT),
                   ("Subject", f"RE: {victim.subject}"), ("Date", self._date()),
                   ("Message-ID", message_id)]
        raw = _mail(headers, text, "outlook")
        return Mail(raw, key, "first", "stranger_same_subject", text, f"RE: {victim.subject}")

    # --- automatic mail ------------------------------------------------------------------

    def _auto_reply(self, conversation: Conversation) -> Mail:
        style = self.random.choice(AUTO_REPLIES)
        ack = conversation.ack
        person = conversation.person
        about = str(ack["Subject"]) if ack is not None else conversation.subject
        answered = str(ack["Message-ID"]).strip() if ack is not None else conversation.first_id
        if ack is None and style in ("notes_ooo",):
            style = "exchange_ooo"  # a subject-only reply needs our tag to find the ticket
        headers = [("From", person.from_header), ("To", SUPPORT), ("Date", self._date()),
                   ("Message-ID", _message_id("outlook", self.random))]
        text = "I am out of the office until Monday with limited access to mail."
        if style == "exchange_ooo":
            headers += [("Subject", f"Automatic reply: {about}"),
                        ("X-Auto-Response-Suppress", "All"), ("In-Reply-To", answered),
                        ("Thread-Topic", conversation.subject)]
        elif style == "exchange_ooo_german":
            headers += [("Subject", f"Automatische Antwort: {about}"),
                        ("X-Auto-Response-Suppress", "All"), ("Auto-Submitted", "auto-generated"),
                        ("In-Reply-To", answered), ("References", answered)]
            text = "Ich bin bis Montag nicht im Büro."
        elif style == "gmail_vacation":
            headers += [("Subject", f"Re: {_without_re(about)}"),
                        ("Auto-Submitted", "auto-replied"), ("Precedence", "bulk"),
                        ("In-Reply-To", answered), ("References", answered)]
        elif style == "notes_ooo":
            headers += [("Subject", f"Out of Office AutoReply: {about}")]
        else:
            headers += [("Subject", f"Re: {_without_re(about)}"), ("X-Autoreply", "yes"),
                        ("In-Reply-To", answered)]
        return Mail(_mail(headers, text, "plain"), conversation.key, "auto_reply", style)

    def _bounce(self, conversation: Conversation) -> Mail:
        assert conversation.ack is not None
        style = self.random.choice(BOUNCES)
        raw = bounce(style, conversation.ack, conversation.person.address, self._date(),
                     _message_id("mta", self.random))
        return Mail(raw, conversation.key, "bounce", style)

    def _noise(self) -> Mail:
        """Automatic mail about nothing of ours: backscatter, out-of-office replies to
        someone else's mail, notifications from unread mailboxes, newsletters."""
        roll = self.random.random()
        date = self._date()
        if roll < 0.4:
            style = self.random.choice(BOUNCES)
            forged = Message()
            forged["From"] = SUPPORT
            forged["To"] = f"victim{self._counter}@elsewhere.example"
            forged["Subject"] = "Cheap watches"
            forged["Message-ID"] = _message_id("mta", self.random)
            forged["Date"] = date
            raw = bounce(style, forged, str(forged["To"]), date, _message_id("mta", self.random))
            return Mail(raw, IGNORED, "noise", f"backscatter_{style}")
        person = self._person()
        headers = [("From", person.from_header), ("To", SUPPORT), ("Date", date),
                   ("Message-ID", _message_id("outlook", self.random))]
        if roll < 0.65:
            ooo = self.random.choice(_OOO_SUBJECTS)
            headers += [("Subject", f"{ooo}: Quarterly newsletter")]
            if self.random.random() < 0.5:
                headers.append(("X-Auto-Response-Suppress", "All"))
            return Mail(_mail(headers, "I am away until Monday.", "plain"), IGNORED, "noise",
                        "ooo_for_no_ticket")
        if roll < 0.85:
            headers[0] = ("From", f"Builds <noreply@ci{self._counter}.example>")
            headers += [("Subject", "Build #4821 passed")]
            return Mail(_mail(headers, "All checks passed.", "plain"), IGNORED, "noise",
                        "noreply")
        headers += [("Subject", "Our November newsletter"), ("Precedence", "bulk"),
                    ("List-Unsubscribe", "<mailto:unsubscribe@news.example>")]
        return Mail(_mail(headers, "News of the month.", "plain"), IGNORED, "noise",
                    "newsletter")

    def _duplicates(self, written: Sequence[Mail]) -> list[Mail]:
        """Some mail arrives twice: a retried delivery, a copy by To and by Cc."""
        chosen = [m for m in written if self.random.random() < 0.05]
        return [Mail(m.raw, m.truth, m.kind, f"duplicate_{m.style}", m.text, m.subject)
                for m in chosen]


# --- the clients' ways ---------------------------------------------------------------------

def _message_id(style: str, rnd: random.Random) -> str:
    token = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(20))
    if style.startswith("outlook") or style == "outlook_own_mail":
        box = f"AM9PR07MB{rnd.randint(1000, 9999)}"
        return f"<{box}{token}{token[:12]}@{box}.eurprd07.prod.outlook.com>"
    if style.startswith("gmail"):
        return f"<CA+{token}{token.lower()}=x@mail.gmail.com>"
    if style in ("apple_mail", "ios_mail"):
        return f"<{uuid.UUID(int=rnd.getrandbits(128))}@customer.example>".upper().replace(
            "CUSTOMER.EXAMPLE", "customer.example")
    if style == "thunderbird":
        return f"<{uuid.UUID(int=rnd.getrandbits(128))}@customer.example>"
    return f"<{token.lower()}.{rnd.randint(1, 99999)}@mx.example>"


def _id_style(style: str) -> str:
    return "outlook" if style == "own_thread" else style


def _client_headers(client: str, topic: str = "") -> list[tuple[str, str]]:
    if client.startswith("outlook"):
        headers = [("Thread-Index", "AQHZ" + hashlib.md5(topic.encode()).hexdigest()[:20]),
                   ("Content-Language", "en-US"),
                   ("X-MS-Exchange-Organization-AuthAs", "Internal")]
        return [("Thread-Topic", topic), *headers] if topic else headers
    if client in ("apple_mail", "ios_mail"):
        return [("X-Mailer", "iPhone Mail (21A329)" if client == "ios_mail"
                 else "Apple Mail (2.3774.200.91.1.1)")]
    if client == "thunderbird":
        return [("User-Agent", "Mozilla Thunderbird")]
    return []


def _without_re(subject: str) -> str:
    while subject[:3].lower() == "re:":
        subject = subject[3:].lstrip()
    return subject


def _quote(style: str, conversation: Conversation, ack: Message | None) -> str:
    """The history a client quotes under (or above) the new text."""
    if ack is None or style in ("outlook_own_mail", "own_thread"):
        who, when, said = (f"{conversation.person.name} <{conversation.person.address}>",
                           "Monday, November 23, 2026 10:00 AM", conversation.first_text)
        subject = conversation.subject
    else:
        who, when = "Example Support <support@example.com>", "Monday, November 23, 2026 10:05 AM"
        said = "Hello,\nThank you for writing to Example Support. We have your request."
        subject = str(ack["Subject"])
    quoted = "\n".join(f"> {line}" for line in said.splitlines())
    if style in ("outlook", "outlook_no_references", "outlook_gateway", "outlook_own_mail",
                 "own_thread"):
        return (f"\n\n-----Original Message-----\nFrom: {who}\nSent: {when}\n"
                f"To: {SUPPORT}\nSubject: {subject}\n\n{said}\n")
    if style == "outlook_web":
        return (f"\n\n________________________________\nFrom: {who}\nSent: {when}\n"
                f"To: {conversation.person.address}\nSubject: {subject}\n\n{said}\n")
    if style in ("gmail", "gmail_app"):
        return f"\n\nOn Mon, Nov 23, 2026 at 10:05 AM {who} wrote:\n\n{quoted}\n"
    if style in ("apple_mail", "ios_mail"):
        tail = "\n\nSent from my iPhone" if style == "ios_mail" else ""
        return f"{tail}\n\n> On 23 Nov 2026, at 18:05, {who} wrote:\n>\n{quoted}\n"
    return f"\n\n{quoted}\n"


def _encoded_word(text: str) -> str:
    if text.isascii():
        return f'"{text}"' if any(c in text for c in ",.'") else text
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _header_bytes(name: str, value: str, latin1: bool) -> bytes:
    if value.isascii():
        return f"{name}: {value}\r\n".encode()
    if latin1:  # as old clients send it: raw 8-bit, no RFC 2047
        try:
            return f"{name}: {value}\r\n".encode("latin-1")
        except UnicodeEncodeError:
            pass
    if name in ("From", "To", "Cc") and "<" in value:
        display, _, address = value.rpartition("<")
        return f"{name}: {_encoded_word(display.strip())} <{address}\r\n".encode()
    return f"{name}: {_encoded_word(value)}\r\n".encode()


def _mail(headers: list[tuple[str, str]], text: str, style: str, *, quoted: str = "",
          latin1: bool = False) -> bytes:
    """The raw bytes, as `style` lays them out: Thunderbird writes the new text below its
    quote, phones and webmail send HTML beside the text, old clients send Latin-1."""
    if style == "thunderbird" and quoted:
        body = f"On 23/11/2026 19:05, Example Support wrote:{quoted.rstrip()}\n\n{text}\n"
    else:
        body = f"{text}{quoted}\n"
    head = b"".join(_header_bytes(name, value, latin1) for name, value in headers)
    head += b"MIME-Version: 1.0\r\n"
    charset = "iso-8859-1" if latin1 else "utf-8"
    plain = body.replace("\n", "\r\n").encode(charset, "replace")
    if style in ("gmail", "gmail_app", "outlook_web", "ios_mail", "outlook"):
        boundary = f"000000000000{hashlib.sha1(plain).hexdigest()[:16]}"
        html = "<div dir=\"ltr\">" + "<br>".join(
            _html_escape(line) for line in body.splitlines()) + "</div>"
        parts = [
            f"--{boundary}\r\nContent-Type: text/plain; charset=\"{charset}\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
            + quopri.encodestring(plain) + b"\r\n",
            f"--{boundary}\r\nContent-Type: text/html; charset=\"{charset}\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + base64.encodebytes(html.encode(charset, "replace")).replace(b"\n", b"\r\n"),
            f"--{boundary}--\r\n".encode(),
        ]
        return (head + f"Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
                .encode() + b"".join(parts))
    if style in ("apple_mail", "thunderbird"):
        return (head + f"Content-Type: text/plain; charset={charset}; format=flowed\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n".encode() + plain)
    return (head + f"Content-Type: text/plain; charset=\"{charset}\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode()
            + quopri.encodestring(plain))


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- bounces, as each MTA writes them --------------------------------------------------------

def _returned_headers(original: Message) -> str:
    lines = [f"{name}: {original[name]}" for name in
             ("From", "To", "Subject", "Date", "Message-ID") if original[name] is not None]
    return "\r\n".join(lines) + "\r\n"


def _multipart(head: str, boundary: str, parts: list[tuple[str, str]],
               report: bool = True) -> bytes:
    kind = ("multipart/report; report-type=delivery-status" if report else "multipart/mixed")
    out = head + f"MIME-Version: 1.0\r\nContent-Type: {kind};\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    out += "This is a MIME-encapsulated message.\r\n\r\n"
    for content_head, content in parts:
        out += f"--{boundary}\r\n{content_head}\r\n\r\n{content}\r\n"
    return (out + f"--{boundary}--\r\n").encode()


def bounce(style: str, original: Message, recipient: str, date: str, message_id: str) -> bytes:
    """A bounce of `original` (a mail from support@, to `recipient`), as `style` writes it."""
    domain = recipient.rpartition("@")[2]
    returned = _returned_headers(original)
    subject = str(original["Subject"])
    dsn = (f"Reporting-MTA: dns; mx.{domain}\r\nArrival-Date: {date}\r\n\r\n"
           f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
           "Action: failed\r\nStatus: 5.1.1\r\n"
           f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: "
           "User unknown")
    base = (f"Return-Path: <>\r\nDate: {date}\r\nMessage-ID: {message_id}\r\n"
            f"To: {SUPPORT}\r\n")
    if style == "postfix":
        head = (base + f"From: MAILER-DAEMON@mx.{domain} (Mail Delivery System)\r\n"
                "Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n")
        return _multipart(head, f"{message_id[1:9]}.postfix", [
            ("Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii",
             f"This is the mail system at host mx.{domain}.\r\n\r\nI'm sorry to have to inform "
             "you that your message could not\r\nbe delivered to one or more recipients.\r\n\r\n"
             "                   The mail system\r\n\r\n"
             f"<{recipient}>: host mx.{domain} said: 550 5.1.1 User unknown"),
            ("Content-Description: Delivery report\r\nContent-Type: message/delivery-status", dsn),
            ("Content-Description: Undelivered Message Headers\r\n"
             "Content-Type: text/rfc822-headers", returned),
        ])
    if style == "exim":
        return (base + f"From: Mail Delivery System <Mailer-Daemon@mx.{domain}>\r\n"
                f"Subject: Mail delivery failed: returning message to sender\r\n"
                f"X-Failed-Recipients: {recipient}\r\nAuto-Submitted: auto-replied\r\n"
                "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                "This message was created automatically by mail delivery software.\r\n\r\n"
                "A message that you sent could not be delivered to one or more of its\r\n"
                "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
                f"  {recipient}\r\n    host mx.{domain} [192.0.2.7]\r\n"
                "    SMTP error from remote mail server after RCPT TO:<" + recipient + ">:\r\n"
                "    550 5.1.1 User unknown\r\n\r\n"
                "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
                + returned + "\r\nHello,\r\n").encode()
    if style == "exchange":
        head = (base + f"From: Microsoft Outlook <postmaster@{domain.split('.')[0]}"
                ".onmicrosoft.com>\r\n"
                f"Subject: Undeliverable: {subject}\r\nAuto-Submitted: auto-replied\r\n"
                "X-MS-Exchange-Message-Is-Ndr: \r\n")
        return _multipart(head, f"_000_{message_id[1:12]}_", [
            ("Content-Type: text/plain; charset=\"us-ascii\"",
             f"Your message to {recipient} couldn't be delivered.\r\n{recipient.split('@')[0]}"
             " wasn't found at " + domain + ".\r\n\r\nDelivery has failed to these recipients "
             f"or groups:\r\n\r\n{recipient}\r\nThe email address you entered couldn't be found."),
            ("Content-Type: message/delivery-status", dsn),
            ("Content-Type: message/rfc822", returned + "\r\nHello,"),
        ])
    if style == "gmail":
        head = (base + "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
                "Subject: Delivery Status Notification (Failure)\r\n"
                "Auto-Submitted: auto-replied\r\n")
        return _multipart(head, f"000000000000{message_id[1:13]}", [
            ("Content-Type: text/plain; charset=\"UTF-8\"",
             f"** Address not found **\r\n\r\nYour message wasn't delivered to {recipient} "
             "because the address couldn't be found, or is unable to receive mail."),
            ("Content-Type: message/delivery-status", dsn),
            ("Content-Type: text/rfc822-headers", returned),
        ])
    if style == "qmail":
        return (base + f"From: MAILER-DAEMON@mx.{domain}\r\nSubject: failure notice\r\n\r\n"
                f"Hi. This is the qmail-send program at mx.{domain}.\r\n"
                "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
                "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
                f"<{recipient}>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
                "--- Below this line is a copy of the message.\r\n\r\n"
                + returned + "\r\nHello,\r\n").encode()
    if style == "sendmail":
        head = (base + f"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.{domain}>\r\n"
                "Subject: Returned mail: see transcript for details\r\n"
                "Auto-Submitted: auto-generated (failure)\r\n")
        return _multipart(head, f"{message_id[1:12]}.sendmail", [
            ("Content-Type: text/plain", f"The original message was received at {date}\r\n"
             "from localhost [127.0.0.1]\r\n\r\n   ----- The following addresses had permanent "
             f"fatal errors -----\r\n<{recipient}>\r\n    (reason: 550 5.1.1 User unknown)"),
            ("Content-Type: message/delivery-status", dsn),
            ("Content-Type: message/rfc822", returned + "\r\nHello,"),
        ])
    if style == "groupwise":
        return _multipart(
            base + f"From: postmaster@gw.{domain}\r\nSubject: Message status - undeliverable\r\n"
            "X-Mailer: Novell GroupWise Internet Agent 18.4.1\r\n",
            f"GroupWise-{message_id[1:10]}", [
                ("Content-Type: text/plain; charset=us-ascii",
                 "The message that you sent was undeliverable to the following:\r\n"
                 f"\t{recipient} (user not found)\r\n\r\nPossibly truncated original "
                 "message follows:"),
                ("Content-Type: message/rfc822", returned + "\r\nHello,"),
            ], report=False)
    if style == "interscan":
        return (base + f"From: InterScan MSS <ims@gw.{domain}>\r\n"
                "Subject: Mail could not be delivered\r\n"
                "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                "****** Message from InterScan E-Mail VirusWall NT ******\r\n\r\n"
                "The mail could not be delivered to its recipient.\r\n"
                f"RCPT TO:<{recipient}>\r\n550 5.1.1 Mailbox unavailable\r\n\r\n"
                "***************** End of message ***************\r\n\r\n"
                + returned).encode()
    # A corporate gateway's own words, from an address that is no mailer-daemon.
    return (base + f"From: Mail Gateway <mailgateway@{domain}>\r\n"
            f"Subject: Your message could not be delivered\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            "Delivery to the following recipients failed.\r\n\r\n"
            f"       {recipient}\r\n\r\n"
            "----- Original message -----\r\n\r\n" + returned).encode()


# --- the score -----------------------------------------------------------------------------

@dataclass
class Score:
    mails: int = 0  # distinct mails, duplicates counted once
    correct: int = 0
    replies: int = 0  # the mails that belong to an existing conversation (not noise)
    replies_correct: int = 0
    tickets_opened_wrongly: list[str] = field(default_factory=list)  # styles
    lost: list[str] = field(default_factory=list)
    noise_quarantined: int = 0
    noise_ignored: int = 0
    characters_lost: list[str] = field(default_factory=list)  # bodies, and first subjects
    wrong: list[str] = field(default_factory=list)  # "style: why"

    @property
    def accuracy(self) -> float:
        return self.correct / self.mails if self.mails else 1.0

    @property
    def reply_accuracy(self) -> float:
        return self.replies_correct / self.replies if self.replies else 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "mails": self.mails, "accuracy": round(self.accuracy, 4),
            "replies": self.replies, "reply_accuracy": round(self.reply_accuracy, 4),
            "tickets_opened_by_replies_or_automatic_mail": len(self.tickets_opened_wrongly),
            "lost": len(self.lost), "noise_ignored": self.noise_ignored,
            "noise_quarantined": self.noise_quarantined,
            "bodies_or_subjects_that_lost_characters": len(self.characters_lost),
        }


def score(mails: Sequence[Mail], tickets: Sequence[dict[str, Any]],
          set_aside: Sequence[dict[str, Any]]) -> Score:
    """`tickets`: `maild tickets export`; `set_aside`: `maild quarantine list --all --json`."""
    where: dict[str, int] = {}
    bodies: dict[str, str] = {}
    first_of: dict[int, str] = {}
    subjects = {ticket["id"]: ticket["subject"] for ticket in tickets}
    for ticket in tickets:
        incoming = [m for m in ticket["messages"] if m["direction"] == "in"]
        if incoming:
            first_of[ticket["id"]] = incoming[0]["message_id"]
        for message in ticket["messages"]:
            where.setdefault(message["message_id"], ticket["id"])
            bodies[message["message_id"]] = message["body"]
    aside = {entry["raw_sha256"]: entry["status"] for entry in set_aside}
    unique: dict[bytes, Mail] = {}
    for mail in mails:
        unique.setdefault(mail.raw, mail)
    ticket_of = {m.truth: where.get(m.message_id) for m in unique.values() if m.kind == "first"}
    result = Score()
    firsts = {m.message_id for m in unique.values() if m.kind == "first"}
    for ticket_id, first_id in first_of.items():
        if first_id not in firsts:
            culprit = next((m.style for m in unique.values() if m.message_id == first_id), "?")
            result.tickets_opened_wrongly.append(f"#{ticket_id} by {culprit}")
    for mail in unique.values():
        result.mails += 1
        stored_on = where.get(mail.message_id)
        if stored_on is None and mail.sha256 not in aside:
            result.lost.append(mail.style)
        if mail.truth == IGNORED:
            status = aside.get(mail.sha256)
            result.noise_ignored += status == "ignored"
            result.noise_quarantined += status == "held"
            ok = stored_on is None
        else:
            expected = ticket_of.get(mail.truth)
            ok = stored_on is not None and stored_on == expected
            if mail.kind == "first":
                ok = ok and first_of.get(stored_on) == mail.message_id
            else:
                result.replies += 1
                result.replies_correct += ok
        result.correct += ok
        if not ok:
            result.wrong.append(f"{mail.style} ({mail.kind}, {mail.truth}): on "
                                f"{stored_on}, expected {ticket_of.get(mail.truth)}")
        if ok and mail.text and stored_on is not None:
            if mail.text.split("\n")[0] not in bodies.get(mail.message_id, ""):
                result.characters_lost.append(f"{mail.style} body")
        if ok and mail.kind == "first" and subjects.get(stored_on) != mail.subject:
            result.characters_lost.append(f"{mail.style} subject {subjects.get(stored_on)!r}")
    return result


# --- playing the corpus through maild ------------------------------------------------------

@dataclass
class Desk:
    """A maild reading a real IMAP mailbox and sending to a sink, run as `maild run --once`
    in a process of its own: `command` is how to start maild (another checkout's
    interpreter measures that checkout)."""

    command: list[str]
    env: dict[str, str]
    account: Any  # tests.dovecot.Account
    sink_dir: Path
    cwd: Path | None = None  # the checkout whose maild `command` runs

    def deliver(self, mails: Sequence[Mail]) -> None:
        client = self.account.client()
        try:
            for start in range(0, len(mails), 100):
                client.multiappend("INBOX", [m.raw for m in mails[start:start + 100]])
        finally:
            client.logout()

    def run_once(self, now: datetime) -> None:
        done = subprocess.run([*self.command, "run", "--once"],
                              env={**self.env, "MAILD_NOW": now.isoformat()},
                              capture_output=True, timeout=1800, cwd=self.cwd)
        if done.returncode != 0:
            raise RuntimeError(f"maild run --once failed: {done.stderr.decode()[-2000:]}")

    def sent(self) -> list[Message]:
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(self.sink_dir.glob("*.eml"))]

    def _json(self, *args: str) -> Any:
        done = subprocess.run([*self.command, *args], env=self.env, capture_output=True,
                              check=True, timeout=600, cwd=self.cwd)
        return done.stdout

    def tickets(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._json("tickets", "export").splitlines()]

    def set_aside(self) -> list[dict[str, Any]]:
        return list(json.loads(self._json("quarantine", "list", "--all", "--json")))


def play(corpus: Corpus, desk: Desk, conversations: int, reply_rounds: int = 2) -> Score:
    """The customers write, maild answers, the customers' clients and servers answer
    that, `reply_rounds` times; then the score."""
    desk.deliver(corpus.first_round(conversations))
    desk.run_once(corpus.now)
    for _ in range(reply_rounds):
        corpus.learn(desk.sent())
        desk.deliver(corpus.reply_round())
        desk.run_once(corpus.now)
    return score(corpus.mails, desk.tickets(), desk.set_aside())
