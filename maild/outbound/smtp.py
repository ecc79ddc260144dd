"""The connection to the outbound SMTP relay ([outbound]), as the sender and `maild check`
both open it: the same security, certificate checks, timeout and login; and one mail's
transaction on it."""

from __future__ import annotations

import smtplib
import ssl

from maild.config import OutboundConfig
from maild.errors import PermanentError
from maild.mail.addresses import InvalidAddress, on_the_wire


def connect(settings: OutboundConfig) -> smtplib.SMTP:
    """A logged-in client (when a username is set). A STARTTLS or login that fails closes
    the connection and raises: nothing is ever sent unencrypted or unauthenticated."""
    if settings.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout_seconds,
            context=ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
    try:
        if settings.security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if settings.username:
            client.login(settings.username, settings.password or "")
    except BaseException:
        client.close()
        raise
    return client


def send(client: smtplib.SMTP, mail_from: str, recipients: list[str], raw: bytes
         ) -> dict[str, tuple[int, bytes]]:
    """One mail in one transaction; the recipients the relay refused (when not all).

    Addresses are kept in their Unicode form; on the wire their domains are in ASCII
    form, and SMTPUTF8 is asked for when a local part is not ASCII. A relay without it
    cannot take such a mail: PermanentError, before the transaction begins. Any
    exception may leave a transaction open: the caller resets it (`reset`)."""
    try:
        sender = on_the_wire(mail_from)
        to = [on_the_wire(address) for address in recipients]
    except InvalidAddress as exc:
        raise PermanentError(str(exc)) from None
    client.ehlo_or_helo_if_needed()
    options = []
    unicode_local = [a.address for a in (sender, *to) if a.needs_smtputf8]
    if unicode_local:
        if not client.has_extn("smtputf8"):
            raise PermanentError(
                f"the relay does not offer SMTPUTF8, which {', '.join(unicode_local)} needs "
                "(a local part that is not ASCII)")
        options = ["SMTPUTF8", *(["BODY=8BITMIME"] if client.has_extn("8bitmime") else [])]
    return client.sendmail(sender.address, [a.address for a in to], raw, mail_options=options)


def reset(client: smtplib.SMTP) -> bool:
    """End whatever transaction a failure left open (RSET), so that the next mail starts
    afresh; False when the connection is no longer usable."""
    try:
        code, _ = client.rset()
    except (smtplib.SMTPException, OSError):
        return False
    return code == 250
