"""The sender's connections to the outbound relay, several at once ([outbound]
connections): while the relay takes in one mail, the next is already on its way over
another connection, as an MTA's delivery agents do."""

from __future__ import annotations

import logging
import smtplib
import threading

from maild.config import OutboundConfig
from maild.outbound.retry import describe_smtp_error
from maild.outbound.smtp import connect

log = logging.getLogger(__name__)


class RelayConnections:
    """Up to `most` connections, each carrying one mail at a time: one is opened when a
    mail finds none idle, and kept until `close`. A connection the relay refuses while
    others are open is taken as the relay's limit: no more are opened. When none can be
    opened at all, the relay is unreachable and every later `take` fails the same way
    at once, rather than waiting on the relay's timeout mail after mail."""

    def __init__(self, settings: OutboundConfig, most: int) -> None:
        self._settings = settings
        self._most = most
        self._open = 0
        self._idle: list[smtplib.SMTP] = []
        self._changed = threading.Condition()
        self.unreachable: Exception | None = None

    def take(self) -> smtplib.SMTP:
        """A connection of its own for one mail; what `connect` raised when the relay
        takes none."""
        with self._changed:
            while True:
                if self.unreachable is not None:
                    raise self.unreachable
                if self._idle:
                    return self._idle.pop()
                if self._open < self._most:
                    self._open += 1
                    break
                self._changed.wait()
        try:
            return connect(self._settings)
        except Exception as exc:
            with self._changed:
                self._open -= 1
                self._changed.notify_all()
                if self._open == 0:
                    self.unreachable = exc
                    raise
                self._most = self._open
            log.info("the relay refused connection %d: %s; sending over %d",
                     self._open + 1, describe_smtp_error(exc)[1], self._open)
            return self.take()

    def give_back(self, client: smtplib.SMTP, usable: bool) -> None:
        """`usable`: the connection can carry the next mail; otherwise it is closed, and
        the next mail that finds none idle opens another."""
        if not usable:
            client.close()
        with self._changed:
            if usable:
                self._idle.append(client)
            else:
                self._open -= 1
            self._changed.notify()

    def close(self) -> None:
        """QUIT on every idle connection (all of them, once no mail is being sent)."""
        with self._changed:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for client in idle:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
