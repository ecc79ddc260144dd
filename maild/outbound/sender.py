"""Delivering the outbox over SMTP, with retries, and recording the outcome on the ticket."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update

from maild.clock import Clock
from maild.config import OutboundConfig
from maild.db.database import Database
from maild.db.models import OutboxMail, Ticket
from maild.db.rawstore import RawStore
from maild.errors import PermanentError
from maild.outbound.outbox import mail_bytes
from maild.outbound.retry import decide
from maild.outbound.smtp import connect, reset, send
from maild.runtime.metrics import Metrics
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import record

log = logging.getLogger(__name__)

# A claimed mail is not offered to anyone else for this long; if the process dies
# mid-send, the mail is delivered again after it, with the same Message-ID.
CLAIM_LEASE = timedelta(minutes=5)


def _connection_lost(error: BaseException) -> bool:
    """421 is the relay saying it closes the channel (RFC 5321 §3.8)."""
    if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code == 421:
        return True
    return isinstance(error, (smtplib.SMTPServerDisconnected, OSError))


_MARK_SENT = (
    update(OutboxMail)
    .where(OutboxMail.id == bindparam("outbox_id"))
    .values(status="sent", sent_at=bindparam("at"), last_error=bindparam("error"))
    .returning(OutboxMail.ticket_id, OutboxMail.message_id, OutboxMail.purpose,
               OutboxMail.recipients)
)


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True)
class _Claimed:
    id: int
    mail_from: str
    recipients: list[str]
    raw: bytes | None
    raw_sha256: str | None
    attempts: int


@dataclass(frozen=True)
class Sender:
    db: Database
    clock: Clock
    raw_store: RawStore  # where a mail too large for its outbox row is
    config: OutboundConfig
    metrics: Metrics  # deliveries by result

    def _claim(self, limit: int) -> list[_Claimed]:
        now = self.clock.now()
        with self.db.transaction() as session:
            rows = session.scalars(
                select(OutboxMail)
                .where(OutboxMail.status == "queued", OutboxMail.next_attempt_at <= now)
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = now + CLAIM_LEASE
            return [
                _Claimed(r.id, r.mail_from, list(r.recipients), r.raw, r.raw_sha256,
                         r.attempts)
                for r in rows
            ]

    def deliver_due(self, limit: int = 100) -> DeliveryReport:
        report = DeliveryReport()
        waiting = self._claim(limit)
        client: smtplib.SMTP | None = None
        try:
            while waiting:
                mail = waiting.pop(0)
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
                        for unsent in (mail, *waiting):
                            self._failed(unsent, exc, report)
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
        return report

    def _sent(
        self, claimed: _Claimed, refused: Mapping[str, object], report: DeliveryReport
    ) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            ticket_id, message_id, purpose, recipients = session.connection().execute(
                _MARK_SENT,
                {"outbox_id": claimed.id, "at": now,
                 "error": f"refused for some recipients: {refused}" if refused else None},
            ).one()
            if ticket_id is not None:
                ticket = session.get(Ticket, ticket_id)
                assert ticket is not None
                record(ticket, now, SYSTEM_ACTOR, "delivered", new=message_id,
                       detail=f"{purpose} to {', '.join(recipients)}")
        report.sent += 1
        self.metrics.delivered("sent")
        log.info("sent outbox #%s (%s)", claimed.id, ", ".join(claimed.recipients))

    def _failed(self, claimed: _Claimed, error: BaseException, report: DeliveryReport) -> None:
        now = self.clock.now()
        decision = decide(error, claimed.attempts, self.config.max_attempts)
        with self.db.transaction() as session:
            row = session.get(OutboxMail, claimed.id)
            assert row is not None
            row.last_error = decision.reason
            if decision.retry:
                row.next_attempt_at = now + decision.delay
                report.deferred += 1
                self.metrics.delivered("deferred")
                log.warning("outbox #%s deferred %s: %s", row.id, decision.delay, decision.reason)
                return
            row.status = "failed"
            report.failed += 1
            self.metrics.delivered("failed")
            log.error("outbox #%s failed: %s", row.id, decision.reason)
            if row.ticket_id is not None:
                ticket = session.get(Ticket, row.ticket_id)
                assert ticket is not None
                record(ticket, now, SYSTEM_ACTOR, "delivery_failed", new=row.message_id,
                       detail=decision.reason)
