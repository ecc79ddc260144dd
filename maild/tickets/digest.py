"""The weekly digest: the report of the past week, mailed to the leads on a schedule.

It is due each week at `[digest] weekday` and `time` in the business time zone, and
covers the seven days before that moment. The mail's Message-ID is made from the ISO
week, and the outbox holds a Message-ID once: however many schedulers run, and across
restarts, one digest is queued per week. A scheduler that loses the race finds the row
there (or its insert refused) and does nothing. After downtime the latest week's digest
goes out late, once; the weeks before it are not sent.

A digest that fails (its template, say) is not tried again every minute: it is held back
in the database as a ticket's failed step is (5, 10, 20, 40 minutes, then hourly;
failed_jobs.py), so a restart, or a daemon in a crash loop, does not try it at every
start; `maild tickets list --failing` shows it, and the failure still reaches the sweep's
log line and failure count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from maild.clock import Clock
from maild.config import DigestConfig
from maild.db.database import Database
from maild.db.models import OutboxMail
from maild.errors import TemporaryError
from maild.mail.message_id import weekly_message_id
from maild.outbound.mails import Mails
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.failed_jobs import DIGEST, held_back, hold_back, recovered

log = logging.getLogger(__name__)

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def latest_due(config: DigestConfig, zone: ZoneInfo, now: datetime) -> datetime:
    """The last scheduled moment at or before `now`."""
    local = now.astimezone(zone)
    back = (local.weekday() - _WEEKDAYS.index(config.weekday)) % 7
    due = datetime.combine(local.date() - timedelta(days=back), config.time, tzinfo=zone)
    if due > local:
        due = datetime.combine(due.date() - timedelta(days=7), config.time, tzinfo=zone)
    return due


def week_of(due: datetime) -> str:
    year, week, _ = due.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class WeeklyDigest:
    db: Database
    clock: Clock
    calendar: BusinessCalendar
    mails: Mails
    config: DigestConfig
    domain: str  # the support address's, for the digest's Message-ID

    def send(self) -> int:
        """Queue this week's digest if it is due and no one has; 1 if this call queued it."""
        if not self.config.to:
            return 0
        now = self.clock.now()
        try:
            return self._send(now)
        except TemporaryError:
            raise
        except Exception as exc:
            self._hold_back(exc, now)
            raise

    def _hold_back(self, exc: Exception, now: datetime) -> None:
        try:
            with self.db.transaction() as session:
                failed = hold_back(session, DIGEST, exc, now)
                attempts, retry_at = failed.attempts, failed.retry_at
        except IntegrityError:  # another scheduler recorded the same failure first
            return
        log.warning("the digest failed (attempt %d); next try %s", attempts,
                    retry_at.isoformat())

    def _send(self, now: datetime) -> int:
        due = latest_due(self.config, self.calendar.zone, now)
        week = week_of(due)
        message_id = weekly_message_id("digest", week, self.domain)
        try:
            with self.db.transaction() as session:
                if held_back(session, DIGEST, now) is not None:
                    return 0
                if session.scalar(
                    select(OutboxMail.id).where(OutboxMail.message_id == message_id)
                ):
                    recovered(session, DIGEST)  # another scheduler sent it meanwhile
                    return 0
                # Imported once a week, not at every start.
                from maild.tickets.report import build_report

                report = build_report(session, self.calendar, due - timedelta(days=7), due, now)
                self.mails.digest(session, list(self.config.to), report, week, message_id)
                recovered(session, DIGEST)
        except IntegrityError:
            log.info("the digest of %s was queued by another scheduler", week)
            return 0
        log.info("digest of %s queued for %s", week, ", ".join(self.config.to))
        return 1
