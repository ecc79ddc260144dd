"""Opening an authenticated IMAP session for one configured mailbox."""

from __future__ import annotations

import contextlib
import functools
import imaplib
import ssl
from dataclasses import dataclass
from datetime import datetime

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import LoginError

from maild.channels.imap.tokens import CommandTokens, FileTokens, TokenSource, TokenUnavailable
from maild.clock import Clock
from maild.config import MailboxConfig
from maild.errors import TemporaryError

# What a lost server, a dropped connection or a confused protocol exchange raises.
CONNECTION_FAULTS: tuple[type[BaseException], ...] = (OSError, imaplib.IMAP4.error, EOFError)


class MailboxUnreachable(TemporaryError):
    """The server could not be reached or the connection was lost."""


class MailboxLoginFailed(TemporaryError):
    """The server refused the credentials. The operator must act; maild keeps trying."""


def describe(exc: BaseException) -> str:
    """A fault in plain words: errno text for sockets, the server's words for IMAP."""
    if isinstance(exc, TemporaryError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "no answer from the server (timed out)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    if text.startswith(("b'", 'b"')):  # imaplib hands on the server's words as bytes
        text = text[2:-1]
    if text.endswith("EOF"):  # imaplib's words for a connection the server closed
        return "the server closed the connection"
    return text.removeprefix("socket error: ")


def token_source(mailbox: MailboxConfig, clock: Clock) -> TokenSource | None:
    if mailbox.oauth2_token_command:
        return CommandTokens(mailbox.oauth2_token_command, clock)
    if mailbox.oauth2_token_file:
        return FileTokens(mailbox.oauth2_token_file, clock)
    return None


@dataclass
class Session:
    client: IMAPClient
    # When the access token used to log in runs out; the reader logs in again before then.
    expires_at: datetime | None = None

    def close(self) -> None:
        try:
            self.client.logout()
        except CONNECTION_FAULTS:
            _discard(self.client)


def _discard(client: IMAPClient) -> None:
    """Drop a connection that is broken or no longer wanted, without a word to the server."""
    with contextlib.suppress(*CONNECTION_FAULTS):
        client.shutdown()


@functools.cache
def tls_context(verify: bool) -> ssl.SSLContext:
    """The TLS settings of every mailbox with this `verify`, built once per process.

    Each context loads the system's CA certificates, about 0.8 MB outside Python's heap,
    and a connection keeps its context for its life: one per mailbox made a daemon of 200
    mailboxes 160 MB larger. A context is never changed once built, and OpenSSL lets any
    number of connections and threads share it."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _connect(mailbox: MailboxConfig) -> IMAPClient:
    where = f"mailbox {mailbox.name}: cannot connect to {mailbox.host}:{mailbox.port}"
    timeout = SocketTimeout(connect=mailbox.timeout_seconds, read=mailbox.timeout_seconds)
    context = tls_context(mailbox.tls_verify) if mailbox.security != "none" else None
    try:
        client = IMAPClient(
            mailbox.host, port=mailbox.port, ssl=mailbox.security == "ssl",
            ssl_context=context, timeout=timeout,
        )
    except CONNECTION_FAULTS as exc:
        raise MailboxUnreachable(f"{where}: {describe(exc)}") from exc
    if mailbox.security == "starttls":
        try:
            client.starttls(context)
        except CONNECTION_FAULTS as exc:
            _discard(client)
            raise MailboxUnreachable(f"{where}: STARTTLS failed: {describe(exc)}") from exc
    return client


def open_session(mailbox: MailboxConfig, tokens: TokenSource | None) -> Session:
    """Connect and log in, by password or OAuth2; the faults name the mailbox."""
    client = _connect(mailbox)
    expires_at = None
    try:
        if tokens is None:
            client.login(mailbox.username, mailbox.password or "")
        else:
            token = tokens.token()
            expires_at = token.expires_at
            if mailbox.oauth2_mechanism == "oauthbearer":
                client.oauthbearer_login(mailbox.username, token.value)
            else:
                client.oauth2_login(mailbox.username, token.value)
    except TokenUnavailable as exc:
        _discard(client)
        raise TokenUnavailable(f"mailbox {mailbox.name}: {exc}") from exc
    except LoginError as exc:
        if tokens is not None:
            tokens.invalidate()
        _discard(client)
        how = "OAuth2 token" if tokens is not None else "password"
        raise MailboxLoginFailed(
            f"mailbox {mailbox.name}: {mailbox.host} refused the {how} of {mailbox.username}: "
            f"{describe(exc)}"
        ) from exc
    except BaseException as exc:
        _discard(client)
        if isinstance(exc, CONNECTION_FAULTS):
            raise MailboxUnreachable(
                f"mailbox {mailbox.name}: connection to {mailbox.host}:{mailbox.port} lost "
                f"while logging in: {describe(exc)}"
            ) from exc
        raise
    return Session(client, expires_at)
