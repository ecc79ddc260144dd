"""One ticket's failure stays that ticket's: the sweeps act on each ticket in a savepoint.

A sweep handles its batch in one transaction. The batch is tried in one savepoint, so
that the healthy path writes its rows with one flush. When a ticket fails (a template
that cannot be rendered for it, any exception), that savepoint is rolled back and the
ticket is held back; the tickets before it are done again in one savepoint and those
after it go on in one, the same way: a batch with one failing ticket takes three
savepoints, not one per ticket. A failure no ticket can be blamed for as it is raised (a
database error, or one as the savepoint's rows are written) leaves the rest of the batch
one savepoint per ticket, each ticket rolled back alone. A ticket held back gets a
`step_failed` event, the failure is logged, and the step is held back in `failed_steps`
(5, 10, 20, 40 minutes, then hourly), so that it is neither retried every minute nor in
the way of the tickets behind it. The other tickets of the batch go on. When the step
later succeeds, its row goes and the ticket gets a `step_recovered` event.

A lost connection or a locked database is not one ticket's fault: it ends the sweep, as
before, and the next run tries again.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, delete, exists, select
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from maild.db.models import FailedStep, Ticket
from maild.errors import MaildError
from maild.tickets.model import SYSTEM_ACTOR
from maild.tickets.service import record

log = logging.getLogger(__name__)

# The scheduled steps, as `failed_steps.step` and `tickets list --failing` name them.
FOLLOWUP = "followup"  # a nudge, or the auto-solve after the last one
SURVEY = "survey"
CLOSE = "close"  # a solved ticket closed after [followup] close_after_solved
SLA_ALERT = "sla_alert"  # an SLA warning, breach or escalation

_FIRST_DELAYS = (timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20),
                 timedelta(minutes=40))
_LATER_DELAY = timedelta(hours=1)
_REASON_LENGTH = 300

T = TypeVar("T")


def retry_delay(attempts: int) -> timedelta:
    """How long a step that has failed `attempts` times in a row is held back."""
    return _FIRST_DELAYS[attempts - 1] if attempts <= len(_FIRST_DELAYS) else _LATER_DELAY


def not_held_back(step: str, now: datetime) -> ColumnElement[bool]:
    """The tickets whose `step` may be tried at `now`: the condition a sweep claims with,
    so that a held-back ticket never stands in front of the ones behind it."""
    return ~exists().where(FailedStep.ticket_id == Ticket.id, FailedStep.step == step,
                           FailedStep.retry_at > now)


def forget_settled(session: Session, step: str, due: ColumnElement[bool]) -> None:
    """Forget the held-back `step` of tickets for which it is no longer due (`due`, over
    Ticket, says when it is): a customer who answered is not nudged, a ticket reopened
    is not closed. Reads only the held-back rows, usually none."""
    session.execute(delete(FailedStep).where(
        FailedStep.step == step,
        ~exists().where(Ticket.id == FailedStep.ticket_id, due),
    ).execution_options(synchronize_session=False))


def reason(exc: BaseException) -> str:
    """The error in one line, with the template file and line when a template raised it."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, MaildError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    # Jinja puts the template's own file and line into the traceback.
    in_template = [frame for frame in traceback.extract_tb(exc.__traceback__)
                   if frame.filename.endswith(".j2")]
    if in_template:
        text = f"{Path(in_template[-1].filename).name} line {in_template[-1].lineno}: {text}"
    return text if len(text) <= _REASON_LENGTH else text[:_REASON_LENGTH - 1] + "…"


def _is_outage(exc: Exception) -> bool:
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


@dataclass
class Batch(Generic[T]):
    """What one step did over a batch: each result, and the tickets it failed for."""

    done: list[T] = field(default_factory=list)
    failed: set[int] = field(default_factory=set)


def each_ticket(session: Session, step: str, tickets: Sequence[Ticket], now: datetime,
                act: Callable[[Ticket], T]) -> Batch[T]:
    """`act` on each ticket; a ticket it fails for is rolled back alone, told, and held
    back (see the module's docstring)."""
    if not tickets:
        return Batch()
    # One query for the batch: the healthy path reads nothing more per ticket.
    failing = {row.ticket_id: row for row in session.scalars(
        select(FailedStep).where(FailedStep.step == step,
                                 FailedStep.ticket_id.in_([t.id for t in tickets])))}
    batch = _in_runs(session, step, tickets, now, act, failing)
    for ticket in tickets:
        earlier = failing.get(ticket.id)
        if earlier is not None and ticket.id not in batch.failed:
            _recovered(session, ticket, earlier, now)
    return batch


def _in_runs(session: Session, step: str, tickets: Sequence[Ticket], now: datetime,
             act: Callable[[Ticket], T], failing: dict[int, FailedStep]) -> Batch[T]:
    """`act` on the tickets in one savepoint: their rows are written by one flush, as many
    times faster than a flush per ticket as the batch is large. When `act` raises for
    one of them, the run is rolled back, that ticket held back with what it raised, the
    tickets before it done again in one savepoint, and those after it on the same way."""
    batch: Batch[T] = Batch()
    rest = list(tickets)
    while rest:
        results: list[T] = []
        try:
            with session.begin_nested():
                for ticket in rest:
                    results.append(act(ticket))
            batch.done += results
            return batch
        except Exception as exc:
            if _is_outage(exc):
                raise
            if len(results) == len(rest) or isinstance(exc, SQLAlchemyError):
                # Raised as the rows were written (by this savepoint's flush, or one
                # that `act` set off): any ticket's rows may be the cause.
                more = _one_by_one(session, step, rest, now, act, failing)
                batch.done += more.done
                batch.failed |= more.failed
                return batch
            failed = rest[len(results)]
            _hold_back(session, failed, step, failing.get(failed.id), exc, now)
            batch.failed.add(failed.id)
        before, rest = rest[:len(results)], rest[len(results) + 1:]
        if before:  # done once already: again, in one savepoint if they let it
            more = _together_else_one_by_one(session, step, before, now, act, failing)
            batch.done += more.done
            batch.failed |= more.failed
    return batch


def _together_else_one_by_one(
    session: Session, step: str, tickets: Sequence[Ticket], now: datetime,
    act: Callable[[Ticket], T], failing: dict[int, FailedStep],
) -> Batch[T]:
    try:
        with session.begin_nested():
            return Batch([act(ticket) for ticket in tickets])
    except Exception as exc:
        if _is_outage(exc):
            raise
        return _one_by_one(session, step, tickets, now, act, failing)


def _one_by_one(session: Session, step: str, tickets: Sequence[Ticket], now: datetime,
                act: Callable[[Ticket], T], failing: dict[int, FailedStep]) -> Batch[T]:
    batch: Batch[T] = Batch()
    for ticket in tickets:
        try:
            with session.begin_nested():
                batch.done.append(act(ticket))
        except Exception as exc:
            if _is_outage(exc):
                raise
            _hold_back(session, ticket, step, failing.get(ticket.id), exc, now)
            batch.failed.add(ticket.id)
    return batch


def _recovered(session: Session, ticket: Ticket, earlier: FailedStep, now: datetime) -> None:
    record(ticket, now, SYSTEM_ACTOR, "step_recovered",
           detail=f"{earlier.step} done after {earlier.attempts} failed "
                  f"attempt{'s' if earlier.attempts != 1 else ''}")
    log.info("ticket #%d: %s done after %d failed attempts", ticket.id, earlier.step,
             earlier.attempts)
    session.delete(earlier)


def _hold_back(session: Session, ticket: Ticket, step: str, failed: FailedStep | None,
               exc: Exception, now: datetime) -> None:
    why = reason(exc)
    if failed is None:
        failed = FailedStep(ticket_id=ticket.id, step=step, attempts=0, first_failed_at=now)
        session.add(failed)
    failed.attempts += 1
    failed.last_error = why
    failed.last_failed_at = now
    failed.retry_at = now + retry_delay(failed.attempts)
    record(ticket, now, SYSTEM_ACTOR, "step_failed", new=step,
           detail=f"{why} (attempt {failed.attempts}; next try "
                  f"{failed.retry_at:%Y-%m-%d %H:%M} UTC)")
    # The traceback once, for whoever fixes it; one line each time after that.
    log.warning("ticket #%d: %s failed (attempt %d, next try %s): %s", ticket.id, step,
                failed.attempts, failed.retry_at.isoformat(), why,
                exc_info=exc if failed.attempts == 1 else None)


def failing_steps(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    """Every step held back, with its ticket, the longest-failing first: what
    `maild tickets list --failing` shows."""
    query = (select(FailedStep, Ticket).join(Ticket, Ticket.id == FailedStep.ticket_id)
             .order_by(FailedStep.first_failed_at, FailedStep.ticket_id, FailedStep.step))
    if status is not None:
        query = query.where(Ticket.status == status)
    return [{
        "id": ticket.id, "subject": ticket.subject, "status": ticket.status,
        "requester": ticket.requester, "step": failed.step, "attempts": failed.attempts,
        "last_error": failed.last_error,
        "failing_since": failed.first_failed_at.isoformat(),
        "last_failed_at": failed.last_failed_at.isoformat(),
        "retry_at": failed.retry_at.isoformat(),
    } for failed, ticket in session.execute(query)]
