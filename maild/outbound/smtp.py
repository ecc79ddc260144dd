"""The connection to the outbound SMTP relay ([outbound]), as the sender and `maild check`
both open it: the same security, certificate checks, timeout and login."""

from __future__ import annotations

import smtplib
import ssl

from maild.config import OutboundConfig


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
