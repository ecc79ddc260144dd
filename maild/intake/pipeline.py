"""One intake path for every channel: parse, then the STAGES below.

The raw bytes are kept whatever becomes of the message: a small message's in a row
written with its batch (db/raw_mail.py), a large one's in a file on disk before its
batch commits. Everything else happens in the database transaction of that batch,
outbox mail included, the rows of its messages written together (`IntakeBatch`). A
message that cannot be processed is quarantined with its reason, within the same batch,
and never stops the caller or the messages after it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import bindparam, event, select, union_all
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from maild.clock import Clock
from maild.config import Config
from maild.db.database import Database
from maild.db.faults import is_outage
from maild.db.fulltext import index_new_messages
from maild.db.models import Message, OutboxMail, QuarantinedMail
from maild.db.raw_mail import fits_in_row, keep_rows
from maild.db.rawstore import RawStore
from maild.errors import PermanentError, TemporaryError
from maild.intake.apply import apply
from maild.intake.classify import Verdict as MailVerdict
from maild.intake.classify import classify
from maild.intake.decide import Decision, TicketFacts, decide
from maild.intake.large import skeleton
from maild.intake.overlap import Key, reads, written
from maild.intake.parse import ParsedMail, parse
from maild.intake.parser_process import ParserProcess, Verdict
from maild.intake.thread import Threading, find_ticket, ticket_facts
from maild.mail.reply_tokens import ReplyTokens
from maild.outbound.mails import Mails
from maild.runtime.metrics import Metrics
from maild.tickets.service import forget_ticket_numbers, remember_customers
from maild.tickets.sla import SlaClocks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    # ignored: automatic mail that belongs to no ticket, filed with its reason
    outcome: Literal["stored", "duplicate", "quarantined", "ignored"]
    reason: str
    ticket_id: int | None = None
    message_id: str | None = None
    outbox_queued: int = 0


@dataclass(frozen=True)
class Intake:
    """What the intake works with, built once by the composition root."""

    config: Config
    clock: Clock
    db: Database
    raw_store: RawStore  # large messages' bytes, on disk before anything else happens
    attachment_store: RawStore  # attachments, each by its content's hash
    parser: ParserProcess  # parses a batch's mail ahead, in a second process if enabled
    sla: SlaClocks
    mails: Mails
    reply_tokens: ReplyTokens  # what proves an engineer's mail (intake/authenticity.py)
    metrics: Metrics  # what was taken in, counted once committed


_KNOWN = union_all(
    select(Message.id).where(Message.message_id == bindparam("message_id")),
    select(OutboxMail.id).where(OutboxMail.message_id == bindparam("message_id")),
).limit(1)


def _is_known(session: Session, message_id: str) -> bool:
    """docs/design.md rule 1: a Message-ID maild already stored, received or sent.

    Asked on the connection, without the ORM's flush first: every message before this
    one is written (each writes its rows as it ends), and a lookup asked for every message
    costs a seventh of the same query through the ORM (22 against 150 µs)."""
    return session.connection().execute(_KNOWN, {"message_id": message_id}).first() is not None


def _duplicate(mail: ParsedMail) -> IngestResult:
    log.info("%s is already stored: a duplicate, nothing changes", mail.message_id)
    return IngestResult("duplicate", "already stored", message_id=mail.message_id)


def _set_aside(intake: Intake, session: Session, raw_sha256: str, channel: str, reason: str,
               status: Literal["held", "ignored"] = "held") -> IngestResult:
    """The same message set aside again is one entry, with the latest reason (after a
    replay, the one that still holds). `held`: in quarantine, for an operator; `ignored`:
    filed beside it, listed and counted, needing nobody."""
    outcome: Literal["quarantined", "ignored"] = "quarantined" if status == "held" else "ignored"
    kept = session.scalar(
        select(QuarantinedMail).where(
            QuarantinedMail.raw_sha256 == raw_sha256, QuarantinedMail.status == status
        )
    )
    if kept is not None:
        kept.reason = reason
        return IngestResult(outcome, reason)
    session.add(
        QuarantinedMail(
            raw_sha256=raw_sha256,
            channel=channel,
            reason=reason,
            received_at=intake.clock.now(),
            status=status,
        )
    )
    if status == "held":
        log.warning("quarantined %s from %s: %s", raw_sha256[:12], channel, reason)
    else:
        log.info("ignored %s from %s: %s", raw_sha256[:12], channel, reason)
    return IngestResult(outcome, reason)


def quarantine(intake: Intake, raw_sha256: str, channel: str, reason: str) -> IngestResult:
    """Set a message aside with its reason, in a transaction of its own."""
    started = time.monotonic()
    with intake.db.transaction() as session:
        result = _set_aside(intake, session, raw_sha256, channel, reason)
    intake.metrics.taken_in(channel, [(result.outcome, started)])
    return result


def _unavailable(exc: DBAPIError) -> TemporaryError:
    return TemporaryError(f"database unavailable: {exc.orig}")


def _refusal(exc: DBAPIError) -> str:
    """The reason a message is set aside for: the database's first line of it."""
    first_line = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
    return f"refused by the database: {first_line or type(exc.orig).__name__}"


# --- the stages ------------------------------------------------------------------------


@dataclass
class Context:
    """One message on its way through the stages: each fills in its part."""

    mail: ParsedMail
    raw_sha256: str
    channel: str
    mailbox: str | None
    verdict: MailVerdict = field(init=False)
    threading: Threading = field(init=False)
    facts: TicketFacts = field(init=False)
    decision: Decision = field(init=False)
    result: IngestResult | None = None  # set by the stage that ends the message


def classify_stage(intake: Intake, session: Session, ctx: Context) -> None:
    ctx.verdict = classify(ctx.mail, intake.config, intake.reply_tokens)
    if ctx.verdict.loop:
        raise PermanentError(f"mail loop: {ctx.verdict.loop}")


def dedupe_stage(intake: Intake, session: Session, ctx: Context) -> None:
    if _is_known(session, ctx.mail.message_id):
        ctx.result = _duplicate(ctx.mail)


def thread_stage(intake: Intake, session: Session, ctx: Context) -> None:
    ctx.threading = find_ticket(session, ctx.mail, ctx.verdict.staff_on, intake.clock.now())
    ctx.facts = ticket_facts(session, ctx.mail, ctx.threading.ticket,
                             claims_staff=ctx.verdict.staff_proof is not None)


def staff_stage(intake: Intake, session: Session, ctx: Context) -> None:
    """Is the sender staff on the ticket found? A reply token proves it on its own ticket
    only (maild/intake/authenticity.py)."""
    ctx.verdict = ctx.verdict.on_ticket(ctx.facts.ticket_id)


def decide_stage(intake: Intake, session: Session, ctx: Context) -> None:
    ctx.decision = decide(ctx.mail, ctx.verdict, ctx.facts, own=intake.config.own_addresses,
                          is_staff=intake.config.staff.is_staff)


def ignore_stage(intake: Intake, session: Session, ctx: Context) -> None:
    """Automatic mail that belongs to no ticket is filed as ignored, with its reason: kept,
    listed and counted, never a ticket, never answered. The quarantine is for what needs
    an operator."""
    if ctx.decision.kind == "noise":
        ctx.result = _set_aside(intake, session, ctx.raw_sha256, ctx.channel,
                                ctx.decision.reason, status="ignored")


def apply_stage(intake: Intake, session: Session, ctx: Context) -> None:
    mail, threading = ctx.mail, ctx.threading
    applied = apply(intake, session, mail, ctx.verdict, threading.ticket, ctx.decision,
                    ctx.raw_sha256, ctx.channel, ctx.mailbox)
    log.info("stored %s on ticket #%s (%s; %s)",
             mail.message_id, applied.ticket_id, threading.reason, applied.summary)
    ctx.result = IngestResult("stored", applied.summary, applied.ticket_id, mail.message_id,
                              applied.outbox_queued)


Stage = Callable[[Intake, Session, Context], None]
# The stages that only read, then those that write: the last of these ends every message.
READING_STAGES: tuple[Stage, ...] = (classify_stage, dedupe_stage, thread_stage, staff_stage,
                                     decide_stage)
WRITING_STAGES: tuple[Stage, ...] = (ignore_stage, apply_stage)
STAGES = READING_STAGES + WRITING_STAGES


def run_stages(intake: Intake, session: Session, ctx: Context,
               stages: Sequence[Stage] = STAGES) -> IngestResult | None:
    """Each stage in turn, until one ends the message (None: none of these did)."""
    for stage in stages:
        stage(intake, session, ctx)
        if ctx.result is not None:
            return ctx.result
    return None


@dataclass
class _Taken:
    """One message of a batch: what it came as, and what became of it."""

    raw_sha256: str
    started: float  # when taking it began
    raw: bytes | None  # the bytes to keep in a row, for a small message
    result: IngestResult = field(init=False)


# A message taken whose rows are not written yet, with its parsing (or the reason it
# could not be parsed), which it is taken again with should it come to that.
_Unwritten = tuple[_Taken, ParsedMail | str]


class IntakeBatch:
    """Messages of one channel taken in one transaction (see `intake_batch`).

    Each message's steps run as it comes; the rows they add or change are written
    together, by one flush of the unit of work for many messages, rather than one each:
    that flush is most of what the ORM costs the intake. A message whose steps may look
    up what the unwritten messages before it did (maild/intake/overlap.py: the same
    ticket, Message-ID, address...) has those written first. Should a message's steps
    fail, or a flush be refused, the unwritten messages are rolled back to the savepoint
    before them and taken again one at a time, each in a savepoint of its own and written
    as it ends (`_one_by_one`): the failure is that message's alone, as it would be had
    they been taken one by one from the start. What became of each message is therefore
    final only once the batch ends: `results`."""

    def __init__(self, intake: Intake, session: Session, channel: str, mailbox: str | None
                 ) -> None:
        self.intake = intake
        self.session = session
        self.channel = channel
        self.mailbox = mailbox
        # Each message handed to `parse_ahead`, by its bytes: its SHA-256 and its parsing.
        self._ahead: dict[bytes, tuple[str, Future[Verdict]]] = {}
        self._taken: list[_Taken] = []
        # The messages whose rows are not written yet, the savepoint before them, and
        # what later messages could look up of them (overlap.py).
        self._unwritten: list[_Unwritten] = []
        self._savepoint: SessionTransaction | None = None
        self._written_keys: set[Key] = set()
        self._added: list[object] = []  # the rows the message being taken adds
        # A temporary fault while messages were taken again one at a time: those after
        # it were rolled back and not taken again, so nothing of the batch may commit.
        self._broken: TemporaryError | None = None
        remember_customers(session)
        event.listen(session, "transient_to_pending",
                     lambda _session, row: self._added.append(row))

    @property
    def results(self) -> list[IngestResult]:
        """What became of each message taken, in order: final once the batch ends."""
        return [taken.result for taken in self._taken]

    @property
    def taken(self) -> list[tuple[str, float]]:
        """(outcome, when taking it began) of each message, for the metrics."""
        return [(taken.result.outcome, taken.started) for taken in self._taken]

    @property
    def in_rows(self) -> dict[str, bytes]:
        """The small messages' bytes, by SHA-256, to write in rows as the batch ends; a
        duplicate's are not kept."""
        return {taken.raw_sha256: taken.raw for taken in self._taken
                if taken.raw is not None and taken.result.outcome != "duplicate"}

    def parse_ahead(self, raws: Sequence[bytes]) -> None:
        """These messages come next in this batch: have the parser process start on
        them, so that each is parsed by the time `ingest` takes it. A lone message is
        parsed here, as it comes: handing it over would only add to its wait."""
        if len(raws) < 2:
            return
        for raw in raws:
            if raw not in self._ahead:
                raw_sha256 = hashlib.sha256(raw).hexdigest()
                future = self.intake.parser.submit(raw, raw_sha256)
                if future is None:
                    return
                self._ahead[raw] = (raw_sha256, future)

    def forget_ahead(self) -> None:
        """Stop parsing what the batch will not take (a stop, a fault part-way)."""
        for _, future in self._ahead.values():
            future.cancel()
        self._ahead.clear()

    def ingest(self, raw: bytes) -> IngestResult:
        """Take one raw message. Raises TemporaryError only when it could not be kept or
        the database is away; this message is then left as if never seen, and the
        messages before it in the batch may still be committed. The result is what the
        message came to as it was taken; `results` has the final one."""
        started = time.monotonic()
        in_row = fits_in_row(raw)
        filed = None if in_row else self.intake.raw_store.put(raw)  # on disk first
        ahead = self._ahead.pop(raw, None)  # hashed already, when parsed ahead
        raw_sha256 = filed or (ahead[0] if ahead is not None
                               else hashlib.sha256(raw).hexdigest())
        kept = raw if in_row else None
        if ahead is not None:
            parsing = ahead[1]
            return self._take(raw_sha256, started, kept,
                              lambda: self.intake.parser.result(parsing, raw, raw_sha256))
        return self._take(raw_sha256, started, kept, lambda: parse(
            raw, self.intake.parser.policy, raw_sha256=raw_sha256))

    def ingest_stored(self, raw_sha256: str) -> IngestResult:
        """Take a message already in the raw store, written there piece by piece because
        it is large: its large attachments are streamed to the attachment store rather
        than decoded in memory (maild/intake/large.py)."""
        started = time.monotonic()
        path = self.intake.raw_store.path_for(raw_sha256)
        try:
            large = skeleton(path, self.intake.attachment_store)
            raw = b"" if large is not None else path.read_bytes()  # the pass gave up
        except OSError as exc:
            raise TemporaryError(f"cannot read {path}: {exc.strerror}") from exc
        return self._take(raw_sha256, started, None,
                          lambda: parse(raw, self.intake.parser.policy, large=large,
                                        raw_sha256=raw_sha256))

    def _take(self, raw_sha256: str, started: float, raw: bytes | None,
              parsing: Callable[[], ParsedMail]) -> IngestResult:
        parsed: ParsedMail | str
        try:
            parsed = parsing()
        except PermanentError as exc:
            parsed = str(exc)
        except Exception as exc:  # the stdlib parser on truly hostile input
            log.exception("parsing %s failed", raw_sha256[:12])
            parsed = f"unparseable message: {exc!r}"
        taken = _Taken(raw_sha256, started, raw)
        self._unwritten_steps((taken, parsed))
        self._taken.append(taken)
        return taken.result

    # --- many messages, one write -------------------------------------------------------

    def _unwritten_steps(self, message: _Unwritten) -> None:
        """Run the message's steps, leaving what they add or change unwritten."""
        taken, parsed = message
        keys = reads(self.session, parsed if isinstance(parsed, ParsedMail) else None,
                     taken.raw_sha256, self.intake.config.own_addresses)
        if self._savepoint is None:
            self._savepoint = self.session.begin_nested()
        self._added.clear()
        try:
            with self.session.no_autoflush:
                self._see_unwritten(keys)
                taken.result, found = self._steps(taken, parsed)
        except TemporaryError:
            self._one_by_one(self._unwritten)  # those before it are kept all the same
            raise
        except Exception as exc:  # taken again alone, where it fails alone (_one_by_one)
            if isinstance(exc, DBAPIError) and is_outage(exc):
                raise _unavailable(exc) from exc  # nothing is kept until it is back
            self._one_by_one([*self._unwritten, message])
            return
        self._unwritten.append(message)
        self._written_keys |= keys | found | written(self._added)

    def _see_unwritten(self, keys: set[Key]) -> None:
        """Flush the unwritten rows when the message about to read `keys` could read
        them. They stay in the batch's savepoint, taken again should a message fail."""
        if keys & self._written_keys:
            self.session.flush()
            self._written_keys.clear()

    def _steps(self, taken: _Taken, parsed: ParsedMail | str
               ) -> tuple[IngestResult, set[Key]]:
        """The message's stages; with what later messages could read of the ticket they
        found, which they may have changed."""
        if isinstance(parsed, str):
            return self._quarantine(taken.raw_sha256, parsed), set()
        ctx = Context(parsed, taken.raw_sha256, self.channel, self.mailbox)
        try:
            # Nothing is written before these stages end: a failure here is the
            # message's own, with nothing to roll back.
            result = run_stages(self.intake, self.session, ctx, READING_STAGES)
        except PermanentError as exc:
            return self._quarantine(taken.raw_sha256, str(exc)), set()
        if result is not None:  # a duplicate
            return result, set()
        # The ticket it belongs to names more than the mail did: its requester and its
        # customer, whose other tickets the steps may count.
        found = written([ctx.threading.ticket] if ctx.threading.ticket else [])
        self._see_unwritten(found)
        result = run_stages(self.intake, self.session, ctx, WRITING_STAGES)
        assert result is not None, "the last stage ends every message"
        return result, found

    def write(self) -> None:
        """Write the rows of the messages taken so far. Refused, they are taken again
        one at a time, so that what the database refuses is one message's alone."""
        if self._broken is not None:
            raise TemporaryError(f"the batch is left to be taken again: {self._broken}")
        if self._savepoint is None:
            return
        try:
            self.session.flush()
            self._savepoint.commit()
        except DBAPIError as exc:
            if is_outage(exc):
                raise _unavailable(exc) from exc
            log.info("writing %d messages together was refused (%s); taking them one at "
                     "a time", len(self._unwritten), _refusal(exc))
            self._one_by_one(self._unwritten)
            return
        self._unwritten, self._savepoint, self._written_keys = [], None, set()

    def _one_by_one(self, again: list[_Unwritten]) -> None:
        """Roll the unwritten messages back and take `again` one at a time, each written
        as it ends. The ticket numbers handed out since the savepoint were never written
        nor sent: they are handed out again."""
        assert self._savepoint is not None
        self._savepoint.rollback()
        self._unwritten, self._savepoint, self._written_keys = [], None, set()
        forget_ticket_numbers(self.session)
        for taken, parsed in again:
            try:
                taken.result = self._alone(taken, parsed)
            except TemporaryError as exc:
                self._broken = exc
                raise

    def _alone(self, taken: _Taken, mail: ParsedMail | str) -> IngestResult:
        if isinstance(mail, str):
            return self._quarantine(taken.raw_sha256, mail)
        for attempt in (1, 2):
            try:
                with self.session.begin_nested(), self.session.no_autoflush:
                    result = run_stages(self.intake, self.session, Context(
                        mail, taken.raw_sha256, self.channel, self.mailbox))
                    assert result is not None, "the last stage ends every message"
                    self.session.flush()
                    return result
            except IntegrityError as exc:
                # Another process stored the same Message-ID between our check and our
                # insert, or the same customer row or participant: its row is committed
                # by the time ours is refused, and a second try sees it. A constraint
                # that fails twice is ours to mend, and that mail's alone.
                if _is_known(self.session, mail.message_id):
                    return _duplicate(mail)
                if attempt == 1:
                    continue
                log.error("storing %s: %s", mail.message_id, _refusal(exc))
                return self._quarantine(taken.raw_sha256, _refusal(exc))
            except DBAPIError as exc:
                if is_outage(exc):
                    raise _unavailable(exc) from exc
                log.exception("storing %s: %s", mail.message_id, _refusal(exc))
                return self._quarantine(taken.raw_sha256, _refusal(exc))
            except TemporaryError:
                raise
            except PermanentError as exc:
                return self._quarantine(taken.raw_sha256, str(exc))
            except Exception as exc:
                log.exception("processing %s failed", mail.message_id)
                return self._quarantine(taken.raw_sha256,
                                        f"internal error while processing: {exc!r}")
        raise AssertionError("the second attempt returns or raises")

    def _quarantine(self, raw_sha256: str, reason: str) -> IngestResult:
        return _set_aside(self.intake, self.session, raw_sha256, self.channel, reason)

@contextmanager
def intake_batch(intake: Intake, channel: str, mailbox: str | None = None
                 ) -> Iterator[IntakeBatch]:
    """One transaction for many messages, each in a savepoint of its own: one bad
    message is quarantined alone, and the batch costs one commit. Nothing of the batch
    counts until the block ends without an exception. The small messages' rows are
    written as it ends; the files it stores are made durable together then, before the
    commit that refers to them."""
    with intake.db.transaction() as session, intake.raw_store.batch(), \
            intake.attachment_store.batch():
        batch = IntakeBatch(intake, session, channel, mailbox)
        try:
            yield batch
        finally:
            batch.forget_ahead()
        batch.write()
        keep_rows(session, batch.in_rows)
        # Searchable as soon as stored: the batch's messages are indexed in its
        # transaction, in one statement for all of them.
        index_new_messages(session)
    intake.metrics.taken_in(channel, batch.taken)  # counted once committed


def ingest(intake: Intake, raw: bytes, channel: str, mailbox: str | None = None) -> IngestResult:
    """Take one raw message. Raises TemporaryError only when nothing could be kept.

    `mailbox` names the [[mailboxes]] entry it was read from, if any.
    """
    with intake_batch(intake, channel, mailbox) as batch:
        batch.ingest(raw)
    return batch.results[0]
