"""Whether a ticket met each of its SLA targets, missed it, or is still inside it.

Pure: read from the ticket's due times (planned by sla.py) and the moment asked about.

A target is *settled* when it is met (the first public reply, or the resolution, came by
its due time) or when its due time passes unmet: from that moment it is missed, whether
or not the ticket is answered or solved later. A missed target of a ticket that still
waits for that reply or resolution is an *open breach*.

- First response (the customer's promise, and the team's own internal target): met by
  the first public reply from staff. A ticket resolved before the due time without a
  reply had no reply to give: it has no such target.
- Resolution: the clock runs only while the next step is ours, so the due time stands
  still while the ticket waits on someone else (sla.py). The target is met when the
  clock stopped for the last time (the ticket went pending, on hold or solved) by the
  due time and the ticket is resolved; missed once the clock ran past the due time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from maild.tickets.model import RESOLVED

TARGETS = ("first_response", "resolution", "internal_first_response")


class TicketTimes(Protocol):
    """What a ticket's outcomes are read from: a Ticket, or a row of these columns."""

    @property
    def status(self) -> str: ...
    @property
    def first_response_at(self) -> datetime | None: ...
    @property
    def solved_at(self) -> datetime | None: ...
    @property
    def response_due_at(self) -> datetime | None: ...
    @property
    def internal_response_due_at(self) -> datetime | None: ...
    @property
    def resolution_due_at(self) -> datetime | None: ...
    @property
    def sla_paused_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Outcome:
    target: str  # one of TARGETS
    due: datetime
    met: bool
    settled_at: datetime  # when it was met, or when its due time passed unmet
    late: timedelta  # missed: how far past the due time it was met, or is by now if open
    open: bool  # missed and still unmet now


def _due(ticket: TicketTimes, target: str) -> datetime | None:
    return {
        "first_response": ticket.response_due_at,
        "internal_first_response": ticket.internal_response_due_at,
        "resolution": ticket.resolution_due_at,
    }[target]


def _resolved(ticket: TicketTimes) -> datetime | None:
    """When the ticket was resolved, if it is."""
    return ticket.solved_at if ticket.status in RESOLVED else None


def outcome(ticket: TicketTimes, target: str, now: datetime) -> Outcome | None:
    """The target's outcome as of `now`; None while it runs, or when there is no target."""
    due = _due(ticket, target)
    if due is None:
        return None
    if target == "resolution":
        return _resolution(ticket, due, now)
    return _first_response(ticket, target, due, now)


def _first_response(ticket: TicketTimes, target: str, due: datetime,
                    now: datetime) -> Outcome | None:
    answered = ticket.first_response_at
    if answered is not None:
        if answered <= due:
            return Outcome(target, due, True, answered, timedelta(), False)
        return Outcome(target, due, False, due, answered - due, False)
    resolved = _resolved(ticket)
    if resolved is not None and resolved <= due:
        return None
    if due > now:
        return None
    until = resolved if resolved is not None else now
    return Outcome(target, due, False, due, until - due, resolved is None)


def _resolution(ticket: TicketTimes, due: datetime, now: datetime) -> Outcome | None:
    resolved = _resolved(ticket)
    stopped = ticket.sla_paused_at  # None while the clock runs
    if resolved is not None:
        stopped = stopped or resolved
        if stopped <= due:
            return Outcome("resolution", due, True, resolved, timedelta(), False)
        return Outcome("resolution", due, False, due, stopped - due, False)
    ran_out = due <= now if stopped is None else due < stopped
    if not ran_out:
        return None
    return Outcome("resolution", due, False, due, now - due, True)


def outcomes(ticket: TicketTimes, now: datetime) -> list[Outcome]:
    """Every settled target of the ticket as of `now`."""
    return [found for target in TARGETS if (found := outcome(ticket, target, now)) is not None]
