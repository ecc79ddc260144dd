"""Delivering the outbox over SMTP, with retries, and recording the outcome on the ticket."""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

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
    mark_all_sent,
    mark_failed,
    mark_sent,
    retire,
)
from maild.outbound.connections import RelayConnections
from maild.outbound.heartbeat import Heartbeat
from maild.outbound.outbox import mail_bytes
from maild.outbound.retry import decide
from maild.outbound.smtp import reset, send
from maild.runtime.metrics import Metrics
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import EventById, record_all_by_id

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
class Tried:
    """A mail a sender tried, as the relay answered: accepted (`error` None, `refused`
    the recipients it turned down, if not all), or not (`error`)."""

    mail: Claimed
    error: BaseException | None = None
    refused: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Sender:
    """Delivers due outbox mail a few at a time, under its own owner id (claims.py): what
    it claimed no other sender sends while it beats, and what it records on a mail it
    records only while the mail is still its own.

    What a claim's mails came to is recorded together, in the transaction that claims
    the next few: a commit per claim rather than per mail, which is most of what sending
    costs. A crash between the relay's acceptance and that record sends those mails
    again (at most a claim's worth, CLAIM_BATCH), under their own Message-IDs."""

    db: Database
    clock: Clock
    raw_store: RawStore  # where a mail too large for its outbox row is
    config: OutboundConfig
    metrics: Metrics  # deliveries by result
    identity: SenderIdentity = field(default_factory=SenderIdentity)

    def deliver_due(self, limit: int | None = 100, stop: threading.Event | None = None
                    ) -> DeliveryReport:
        """Up to `limit` due mails (None: until none is due), claimed CLAIM_BATCH at a
        time, each claim's mails at once over up to `connections` connections to the
        relay. Once `stop` is set, the mails being sent are finished, what was sent is
        recorded and the rest released."""
        stopping = stop or threading.Event()
        report = DeliveryReport()
        owner = self.identity.owner
        heartbeat: Heartbeat | None = None
        in_hand: list[Claimed] = []
        tried: list[Tried] = []  # not recorded yet
        taken = 0
        relay = RelayConnections(self.config, self.config.connections)
        sending = ThreadPoolExecutor(self.config.connections, "outbox-smtp")
        try:
            while True:
                if stopping.is_set():
                    # Not through the claim below, which would drop what is still in
                    # hand: `finally` records what was tried and frees the rest untried.
                    break
                claiming = time.monotonic()
                wanted = 0 if report.taken_over else \
                    CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - taken)
                in_hand = self._record_and_claim(tried, wanted, report,
                                                 beating=heartbeat is not None)
                tried = []
                if not in_hand:
                    break
                taken += len(in_hand)
                if heartbeat is None:
                    heartbeat = Heartbeat(self.db, owner, claiming,
                                          self.config.sender_silence).start()
                tried, in_hand = self._send(in_hand, relay, sending, heartbeat, stopping)
                if not heartbeat.holding():
                    log.warning("outbox sender %s stops: its claims may no longer be its "
                                "own", owner)
                    return report
                if relay.unreachable is not None:  # the claim waits, deferred
                    return report
        finally:
            sending.shutdown()
            relay.close()
            if heartbeat is not None:
                heartbeat.stop()
                self._retire(heartbeat, tried, [mail.id for mail in in_hand], report)
        return report

    def _send(self, in_hand: list[Claimed], relay: RelayConnections,
              sending: ThreadPoolExecutor, heartbeat: Heartbeat, stopping: threading.Event
              ) -> tuple[list[Tried], list[Claimed]]:
        """A claim's mails handed to the relay side by side: what each came to, and the
        mails left untried (the sender was told to stop, or may have lost its claims)."""

        def may_send() -> bool:
            return not stopping.is_set() and heartbeat.holding()

        outcomes = list(sending.map(lambda mail: self._try(mail, relay, may_send), in_hand))
        tried = [outcome for outcome in outcomes if outcome is not None]
        untried = [mail for mail, outcome in zip(in_hand, outcomes, strict=True)
                   if outcome is None]
        return tried, untried

    def _try(self, mail: Claimed, relay: RelayConnections, may_send: Callable[[], bool]
             ) -> Tried | None:
        """One mail over a connection of its own; None when it may not be sent now."""
        if not may_send():
            return None
        try:
            raw = mail_bytes(mail.raw, mail.raw_sha256, self.raw_store)
        except OSError as exc:  # no retry brings back a file that is gone
            return Tried(mail, PermanentError(
                f"the mail is missing from storage ({exc.strerror})"))
        try:
            client = relay.take()
        except Exception as exc:  # the relay is unreachable: the claim waits
            return Tried(mail, exc)
        usable = True
        try:
            refused = send(client, mail.mail_from, mail.recipients, raw)
        except Exception as exc:  # this mail's failure, never the next one's
            usable = not _connection_lost(exc) and reset(client)
            return Tried(mail, exc)
        finally:
            relay.give_back(client, usable)
        return Tried(mail, refused=refused)

    def _record_and_claim(self, tried: list[Tried], wanted: int, report: DeliveryReport,
                          beating: bool) -> list[Claimed]:
        """What the last claim's mails came to, and the next `wanted` mails claimed, in
        one transaction. `beating`: the sender's heartbeat is at work (claims.claim)."""
        with self.db.transaction() as session:
            outcomes = self._record(session, tried)
            in_hand = claim(session, self.identity, self.clock.now(), wanted,
                            silence_limit=self.config.sender_silence, beating=beating) \
                if wanted and "taken_over" not in outcomes else []
        self._count(tried, outcomes, report)
        return in_hand

    def _retire(self, heartbeat: Heartbeat, tried: list[Tried], unsent: list[int],
                report: DeliveryReport) -> None:
        """Record what is left to record, free what was claimed and not tried (what is
        still its own), and leave the senders at work. A sender that was found silent
        starts afresh under a new id."""
        try:
            with self.db.transaction() as session:
                outcomes = self._record(session, tried)
                retire(session, heartbeat.owner, unsent)
            self._count(tried, outcomes, report)
        except TemporaryError as exc:  # its claims are taken over once it is found silent
            log.warning("outbox sender %s could not record its last mails or release its "
                        "claims: %s", heartbeat.owner, exc)
        if heartbeat.lost or report.taken_over:
            self.identity.renew()

    def _record(self, session: Session, tried: list[Tried]) -> list[str]:
        """Each mail's outcome written in `session` while the mail is still this
        sender's; what each came to: "sent", "deferred in 0:02:00: …", "failed: …", or
        "taken_over" (another sender holds it now, and nothing was written). The mails
        the relay took for every recipient are marked in one statement, and the
        tickets' events written together."""
        now = self.clock.now()
        owner = self.identity.owner
        sent = mark_all_sent(session, owner, [attempt.mail.id for attempt in tried
                                              if attempt.error is None and not attempt.refused],
                             now)
        events: list[EventById] = []
        outcomes = []
        for attempt in tried:
            mail = attempt.mail
            if attempt.error is None:
                refused = attempt.refused
                recorded = mark_sent(session, owner, mail.id, now,
                                     f"refused for some recipients: {refused}") \
                    if refused else sent.get(mail.id)
                if recorded is not None and recorded.ticket_id is not None:
                    events.append(EventById(
                        recorded.ticket_id, "delivered", recorded.message_id,
                        f"{recorded.purpose} to {', '.join(recorded.recipients)}"))
                outcomes.append("sent" if recorded is not None else "taken_over")
                continue
            decision = decide(attempt.error, mail.attempts, self.config.max_attempts)
            if decision.retry:
                deferred = defer(session, owner, mail.id, now + decision.delay, decision.reason)
                outcomes.append(f"deferred {decision.delay}: {decision.reason}" if deferred
                                else "taken_over")
                continue
            recorded = mark_failed(session, owner, mail.id, decision.reason)
            if recorded is not None and recorded.ticket_id is not None:
                events.append(EventById(recorded.ticket_id, "delivery_failed",
                                        recorded.message_id, decision.reason))
            outcomes.append(f"failed: {decision.reason}" if recorded is not None
                            else "taken_over")
        record_all_by_id(session, now, SYSTEM_ACTOR, events)
        return outcomes

    def _count(self, tried: list[Tried], outcomes: list[str], report: DeliveryReport) -> None:
        """Once recorded (committed): the report, the metrics and the log."""
        for attempt, outcome in zip(tried, outcomes, strict=True):
            mail = attempt.mail
            if outcome == "taken_over":
                report.taken_over += 1
                log.warning("outbox #%s was taken over by another sender while %s had it in "
                            "hand; not marked %s", mail.id, self.identity.owner,
                            "sent" if attempt.error is None else "deferred or failed")
            elif outcome == "sent":
                report.sent += 1
                self.metrics.delivered("sent")
                log.info("sent outbox #%s (%s)", mail.id, ", ".join(mail.recipients))
            elif outcome.startswith("deferred"):
                report.deferred += 1
                self.metrics.delivered("deferred")
                log.warning("outbox #%s %s", mail.id, outcome)
            else:
                report.failed += 1
                self.metrics.delivered("failed")
                log.error("outbox #%s %s", mail.id, outcome)
