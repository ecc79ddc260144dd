"""Delivering the outbox over SMTP, with retries, and recording the outcome on the ticket."""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from maild.clock import Clock
from maild.config import OutboundConfig
from maild.db.database import Database
from maild.db.rawstore import RawStore
from maild.errors import PermanentError, TemporaryError
from maild.outbound.claims import (
    CLAIM_BATCH,
    Claimed,
    SenderIdentity,
    claim,
    defer,
    mark_failed,
    mark_sent,
    retire,
)
from maild.outbound.heartbeat import Heartbeat
from maild.outbound.outbox import mail_bytes
from maild.outbound.retry import decide
from maild.outbound.smtp import connect, reset, send
from maild.runtime.metrics import Metrics
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import record_by_id

log = logging.getLogger(__name__)


def _connection_lost(error: BaseException) -> bool:
    """421 is the relay saying it closes the channel (RFC 5321 §3.8)."""
    if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code == 421:
        return True
    return isinstance(error, (smtplib.SMTPServerDisconnected, OSError))


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    taken_over: int = 0  # mails another sender took while this one had them in hand

    @property
    def attempted(self) -> int:
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True)
class Sender:
    """Delivers due outbox mail a few at a time, under its own owner id (claims.py): what
    it claimed no other sender sends while it beats, and what it records on a mail it
    records only while the mail is still its own."""

    db: Database
    clock: Clock
    raw_store: RawStore  # where a mail too large for its outbox row is
    config: OutboundConfig
    metrics: Metrics  # deliveries by result
    identity: SenderIdentity = field(default_factory=SenderIdentity)

    def _claim(self, limit: int) -> list[Claimed]:
        with self.db.transaction() as session:
            return claim(session, self.identity, self.clock.now(), limit)

    def deliver_due(self, limit: int = 100, stop: threading.Event | None = None
                    ) -> DeliveryReport:
        """Up to `limit` due mails, claimed CLAIM_BATCH at a time, over one connection.
        Once `stop` is set, the mail being sent is finished and the rest released."""
        report = DeliveryReport()
        owner = self.identity.owner
        heartbeat: Heartbeat | None = None
        in_hand: list[Claimed] = []
        client: smtplib.SMTP | None = None
        try:
            while report.attempted < limit and not (stop is not None and stop.is_set()):
                claiming = time.monotonic()
                in_hand = self._claim(min(CLAIM_BATCH, limit - report.attempted))
                if not in_hand:
                    break
                if heartbeat is None:
                    heartbeat = Heartbeat(self.db, owner, claiming).start()
                while in_hand and not (stop is not None and stop.is_set()):
                    if not heartbeat.holding() or report.taken_over:
                        log.warning("outbox sender %s stops: its claims may no longer be "
                                    "its own", owner)
                        return report
                    mail = in_hand.pop(0)
                    try:
                        raw = mail_bytes(mail.raw, mail.raw_sha256, self.raw_store)
                    except OSError as exc:  # no retry brings back a file that is gone
                        self._failed(mail, PermanentError(
                            f"the mail is missing from storage ({exc.strerror})"), report)
                        continue
                    if client is None:
                        try:
                            client = connect(self.config)
                        except Exception as exc:  # the relay is unreachable: the batch waits
                            for unsent in (mail, *in_hand):
                                self._failed(unsent, exc, report)
                            in_hand = []
                            return report
                    try:
                        refused = send(client, mail.mail_from, mail.recipients, raw)
                    except Exception as exc:  # this mail's failure, never the next one's
                        self._failed(mail, exc, report)
                        if _connection_lost(exc) or not reset(client):
                            client.close()
                            client = None  # reconnect for the next mail
                    else:
                        self._sent(mail, refused, report)
        finally:
            if client is not None:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
            if heartbeat is not None:
                heartbeat.stop()
                self._retire(heartbeat, [mail.id for mail in in_hand],
                             lost=heartbeat.lost or report.taken_over > 0)
        return report

    def _retire(self, heartbeat: Heartbeat, unsent: list[int], *, lost: bool) -> None:
        """Free what was claimed and not tried (what is still its own), and leave the
        senders at work. A sender that was found silent starts afresh under a new id."""
        try:
            with self.db.transaction() as session:
                retire(session, heartbeat.owner, unsent)
        except TemporaryError as exc:  # its claims are taken over once it is found silent
            log.warning("outbox sender %s could not release its claims: %s",
                        heartbeat.owner, exc)
        if lost:
            self.identity.renew()

    def _sent(
        self, claimed: Claimed, refused: Mapping[str, object], report: DeliveryReport
    ) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            recorded = mark_sent(
                session, self.identity.owner, claimed.id, now,
                f"refused for some recipients: {refused}" if refused else None)
            if recorded is None:
                self._taken_over(claimed, "sent", report)
                return
            if recorded.ticket_id is not None:
                record_by_id(session, recorded.ticket_id, now, SYSTEM_ACTOR, "delivered",
                             new=recorded.message_id,
                             detail=f"{recorded.purpose} to {', '.join(recorded.recipients)}")
        report.sent += 1
        self.metrics.delivered("sent")
        log.info("sent outbox #%s (%s)", claimed.id, ", ".join(claimed.recipients))

    def _failed(self, claimed: Claimed, error: BaseException, report: DeliveryReport) -> None:
        now = self.clock.now()
        owner = self.identity.owner
        decision = decide(error, claimed.attempts, self.config.max_attempts)
        with self.db.transaction() as session:
            if decision.retry:
                if not defer(session, owner, claimed.id, now + decision.delay,
                             decision.reason):
                    self._taken_over(claimed, "deferred", report)
                    return
                report.deferred += 1
                self.metrics.delivered("deferred")
                log.warning("outbox #%s deferred %s: %s", claimed.id, decision.delay,
                            decision.reason)
                return
            recorded = mark_failed(session, owner, claimed.id, decision.reason)
            if recorded is None:
                self._taken_over(claimed, "failed", report)
                return
            report.failed += 1
            self.metrics.delivered("failed")
            log.error("outbox #%s failed: %s", claimed.id, decision.reason)
            if recorded.ticket_id is not None:
                record_by_id(session, recorded.ticket_id, now, SYSTEM_ACTOR, "delivery_failed",
                             new=recorded.message_id, detail=decision.reason)

    def _taken_over(self, claimed: Claimed, outcome: str, report: DeliveryReport) -> None:
        """The mail is another sender's now: this one was found silent, and what else it
        has in hand is not its own either (deliver_due stops)."""
        report.taken_over += 1
        log.warning("outbox #%s was taken over by another sender while %s had it in hand; "
                    "not marked %s", claimed.id, self.identity.owner, outcome)
