"""What the mail benchmarks share: a realistic backlog, a big mail, filling a folder, a
maild config."""

from __future__ import annotations

import email
import email.policy
import random
from email.message import EmailMessage

from tests.dovecot import Account
from tests.mailbuilder import make_mail

CUSTOMERS = 300
BIG_ATTACHMENT_BYTES = 25 * 1024 * 1024


def _customer(n: int) -> str:
    return f"Customer {n % CUSTOMERS} <c{n % CUSTOMERS}@customer{n % 40}.example>"


def _bounce(n: int) -> bytes:
    """A Postfix-style delivery report about a mail that is not ours."""
    return f"""\
From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)
To: support@example.com
Subject: Undelivered Mail Returned to Sender
Date: Mon, 23 Nov 2026 18:00:00 +0000
Message-ID: <bounce{n}@mx.customer.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b{n}"

--b{n}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.customer.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--b{n}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example

Final-Recipient: rfc822; gone{n}@customer.example
Action: failed
Status: 5.1.1

--b{n}--
""".replace("\n", "\r\n").encode()


def backlog(count: int, *, big_attachments: int = 0, big_size: int = 25 * 1024 * 1024
            ) -> list[bytes]:
    """A realistic mix: new questions (half), replies in their threads, HTML-only mail,
    out-of-office answers in a thread and out of the blue, a few bounces, a 60 KB PDF on
    every 25th; with `big_attachments`, that many of them carry `big_size` instead."""
    messages = []
    big_every = count // big_attachments if big_attachments else 0
    for n in range(count):
        customer = _customer(n)
        kind = n % 20
        if kind < 10:
            raw = make_mail(customer, subject=f"Question {n}", message_id=f"<q{n}@bench>",
                            body="Hello,\n\nSomething is wrong.\n" * 20)
        elif kind < 14:
            raw = make_mail(_customer(n - 4), subject=f"Re: Question {n - 4}",
                            message_id=f"<r{n}@bench>", in_reply_to=f"<q{n - 4}@bench>",
                            references=[f"<q{n - 4}@bench>"],
                            body="More details.\n\nOn Mon, Support wrote:\n> Hello\n" * 5)
        elif kind < 18:
            raw = make_mail(customer, subject=f"HTML {n}", message_id=f"<h{n}@bench>",
                            html="<p>Hello <b>team</b></p>" * 50)
        elif kind == 18:
            # Half answer a question of theirs (stored), half answer nothing (quarantined).
            answered = n - 18 if n % 40 == 18 else None
            raw = make_mail(_customer(answered) if answered is not None else customer,
                            subject=f"Out of office {n}", message_id=f"<o{n}@bench>",
                            in_reply_to=f"<q{answered}@bench>" if answered is not None
                            else None,
                            headers={"Auto-Submitted": "auto-replied"})
        else:
            raw = _bounce(n)
        if big_every and n % big_every == big_every // 2:
            raw = with_attachment(raw, n, b"%PDF-1.7\n" + bytes(range(256)) * (big_size // 256))
        elif n % 25 == 0:
            raw = with_attachment(raw, n, bytes(range(256)) * 240)
        messages.append(raw)
    return messages


def customer_mail(n: int, subject: str, message_id: str, text: str) -> EmailMessage:
    """Customer n's mail to support, of one text part."""
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["From"] = f"Customer {n} <c{n}@customer.example>"
    mail["To"] = "support@example.com"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail["Date"] = "Mon, 23 Nov 2026 18:00:00 +0000"
    mail.set_content(text)
    return mail


def big_mail(n: int) -> bytes:
    """A short text and a 25 MB attachment of random bytes: 34.2 MB on the wire."""
    mail = customer_mail(n, f"Crash dump {n}", f"<big{n}@customer.example>",
                         "The dump is attached.\n")
    data = random.Random(n).randbytes(BIG_ATTACHMENT_BYTES)
    mail.add_attachment(data, maintype="application", subtype="octet-stream",
                        filename=f"dump{n}.bin")
    return mail.as_bytes()


def backlog_with_big_mail(count: int, big: int) -> list[bytes]:
    """`backlog(count)` with `big` of its messages, spread evenly, replaced by
    `big_mail`s."""
    messages = backlog(count)
    every = count // big if big else 0
    for k in range(big):
        messages[k * every + every // 2] = big_mail(k)
    return messages


def with_attachment(raw: bytes, n: int, data: bytes) -> bytes:
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    message.make_mixed()
    message.add_attachment(data, maintype="application", subtype="pdf",
                           filename=f"invoice-{n}.pdf")
    return message.as_bytes()


def fill(account: Account, folder: str, messages: list[bytes]) -> None:
    client = account.client()
    if not client.folder_exists(folder):
        client.create_folder(folder)
    batch: list[bytes] = []
    for raw in messages:
        batch.append(raw)
        if len(batch) == 200 or sum(map(len, batch)) > 8 * 1024 * 1024:
            client.multiappend(folder, batch)
            batch = []
    if batch:
        client.multiappend(folder, batch)
    client.logout()


def config_text(url: str, storage: str, sink_port: int, accounts: list[Account]) -> str:
    """A maild config reading `accounts`, one [[mailboxes]] each, into `url`."""
    text = f"""
[support]
address = "support@example.com"
[storage]
url = "{url}"
dir = "{storage}"
[outbound]
port = {sink_port}
poll_seconds = 0.2
auto_replies_per_hour = 1000
"""
    for index, account in enumerate(accounts):
        text += f"""
[[mailboxes]]
name = "box{index}"
host = "127.0.0.1"
port = {account.server.port}
security = "none"
username = "{account.username}"
password_env = "BENCH_IMAP_PASSWORD_{index}"
address = "support{index}@example.com"
"""
    return text


def config_environment(accounts: list[Account]) -> dict[str, str]:
    return {f"BENCH_IMAP_PASSWORD_{i}": a.password for i, a in enumerate(accounts)}
