"""Changes to a ticket. Every one goes through here so that the event log is complete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, literal, select, union_all, update
from sqlalchemy.orm import Session, object_session

from maild.db.models import (
    Customer,
    CustomerContact,
    CustomerDomain,
    Event,
    Participant,
    Ticket,
)
from maild.errors import PermanentError
from maild.mail.addresses import domain_of
from maild.tickets.model import DEFAULT_PRIORITY, PRIORITIES, RESOLVED, STATUSES
from maild.tickets.severity_claims import Claim
from maild.tickets.sla import SlaClocks, status_changed


def record(
    ticket: Ticket, now: datetime, actor: str, kind: str,
    old: str | None = None, new: str | None = None, detail: str | None = None,
) -> None:
    # Linked from the event's side: appending to ticket.events would first load every
    # event the ticket has, only to add one.
    event = Event(ticket=ticket, at=now, actor=actor, kind=kind, old=old, new=new,
                  detail=detail)
    session = object_session(ticket)
    if session is not None:
        session.add(event)
    ticket.updated_at = now


@dataclass(frozen=True)
class EventById:
    """An event for a ticket not loaded (record_all_by_id)."""

    ticket_id: int
    kind: str
    new: str | None = None
    detail: str | None = None


_RECORD_EVENT = insert(Event)
_TOUCH_TICKETS = (
    update(Ticket).where(Ticket.id.in_(bindparam("ticket_ids", expanding=True)))
    .values(updated_at=bindparam("now", type_=Ticket.updated_at.type))
)


def record_all_by_id(session: Session, now: datetime, actor: str, events: list[EventById]
                     ) -> None:
    """`record` for tickets not loaded (the sender's record of a claim's deliveries):
    the events and the tickets' time written as they are, without reading the tickets
    first, the events in one statement and the tickets in another."""
    if not events:
        return
    connection = session.connection()
    connection.execute(_RECORD_EVENT, [
        {"ticket_id": event.ticket_id, "at": now, "actor": actor, "kind": event.kind,
         "old": None, "new": event.new, "detail": event.detail} for event in events])
    connection.execute(_TOUCH_TICKETS, {
        "ticket_ids": sorted({event.ticket_id for event in events}), "now": now})


def set_status(
    ticket: Ticket, status: str, *, actor: str, now: datetime, clocks: SlaClocks,
    detail: str | None = None,
) -> None:
    if status not in STATUSES:
        raise PermanentError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    if ticket.status == status:
        return
    if ticket.status == "closed":
        raise PermanentError(f"ticket #{ticket.id} is closed; a closed ticket is final")
    old = ticket.status
    ticket.status = status
    # Follow-ups run only while a ticket waits on the customer; the scheduler fills in
    # the due time (a fresh count of nudges each time it goes pending).
    ticket.followup_due_at = None
    ticket.pending_since = now if status == "pending" else None
    if status == "pending":
        ticket.nudges_sent = 0
    if status == "solved":
        ticket.solved_at = now
    elif status == "closed":
        ticket.closed_at = now
        ticket.solved_at = ticket.solved_at or now
    else:
        ticket.solved_at = None
    record(ticket, now, actor, "status", old, status, detail)
    status_changed(ticket, old, status, now)
    clocks.refresh(ticket)


def set_priority(
    ticket: Ticket, priority: str, *, actor: str, now: datetime, clocks: SlaClocks
) -> None:
    """A new priority may mean another severity, and so other due times."""
    if priority not in PRIORITIES:
        raise PermanentError(f"unknown priority {priority!r}; one of {', '.join(PRIORITIES)}")
    if ticket.priority != priority:
        record(ticket, now, actor, "priority", ticket.priority, priority)
        ticket.priority = priority
        clocks.refresh(ticket)


def claim_severity(ticket: Ticket, claim: Claim, *, now: datetime, clocks: SlaClocks) -> None:
    """The customer says how bad it is: believed, clocks and all, until triage."""
    ticket.claimed_priority = claim.priority
    ticket.severity_claim = claim.words
    record(ticket, now, ticket.requester, "severity_claimed", None, claim.priority,
           detail=claim.words)
    set_priority(ticket, claim.priority, actor=ticket.requester, now=now, clocks=clocks)


def triage_priority(
    ticket: Ticket, priority: str, *, actor: str, now: datetime, clocks: SlaClocks
) -> bool:
    """An engineer sets the priority, which settles what the customer claimed. True when
    the customer is to be told: this settles their claim with another severity."""
    settles_claim = ticket.claimed_priority is not None and ticket.priority_triaged_at is None
    set_priority(ticket, priority, actor=actor, now=now, clocks=clocks)
    ticket.priority_triaged_at = ticket.priority_triaged_at or now
    return settles_claim and ticket.severity != clocks.config.severity(
        str(ticket.claimed_priority))


def untriaged_claim(ticket: Ticket) -> str | None:
    """The severity the customer claimed, as they wrote it, while no engineer has set the
    priority: what the ticket runs on for now."""
    if ticket.claimed_priority is None or ticket.priority_triaged_at is not None:
        return None
    return ticket.severity_claim


def first_response(ticket: Ticket, *, now: datetime, clocks: SlaClocks) -> None:
    """A public reply from an SE: the first one stops the first-response clocks."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now
        clocks.refresh(ticket)


def set_assignee(
    ticket: Ticket, assignee: str | None, *, actor: str, now: datetime
) -> None:
    if ticket.assignee != assignee:
        record(ticket, now, actor, "assignee", ticket.assignee, assignee)
        ticket.assignee = assignee
        if assignee:
            add_participant(ticket, assignee, "staff")


def link_customer(
    ticket: Ticket, customer: Customer, *, actor: str, now: datetime, clocks: SlaClocks
) -> None:
    """The ticket belongs to `customer`, registered after it came in: its tier ranks it
    from now on, and while it is unresolved its SLA clocks are planned afresh by the
    customer's plan. A resolved ticket keeps the due times it was handled under."""
    if ticket.customer is customer:
        return
    record(ticket, now, actor, "customer", ticket.customer.name if ticket.customer else None,
           customer.name)
    ticket.customer = customer
    if ticket.status not in RESOLVED:
        clocks.refresh(ticket)


def add_participant(ticket: Ticket, address: str, role: str) -> bool:
    """False when `address` already takes part."""
    for participant in ticket.participants:
        if participant.address == address:
            return False
    ticket.participants.append(Participant(address=address, role=role))
    return True


def add_cc(ticket: Ticket, address: str, *, actor: str, now: datetime,
           detail: str | None = None) -> None:
    """Someone joins the ticket's conversation (docs/security.md): engineers' replies go to
    them from now on; automatic mail does not."""
    if add_participant(ticket, address, "cc"):
        record(ticket, now, actor, "participant", None, address, detail)


def takes_part(ticket: Ticket, address: str) -> bool:
    return any(p.address == address for p in ticket.participants)


_CUSTOMER_NAMED = union_all(
    select(CustomerContact.customer_id, literal(0).label("rank"))
    .where(CustomerContact.address == bindparam("address")),
    select(CustomerDomain.customer_id, literal(1).label("rank"))
    .where(CustomerDomain.domain == bindparam("domain")),
).order_by("rank").limit(1)


def customer_id_for(session: Session, address: str) -> int | None:
    """The customer a contact address names, else the one owning its domain. One query,
    on the connection: customers change outside the intake, never unflushed in it. In
    a transaction that `remember_customers` marked, asked once an address."""
    known = session.info.get(_CUSTOMERS_KNOWN)
    if known is not None and address in known:
        return known[address]
    found = session.connection().execute(
        _CUSTOMER_NAMED, {"address": address, "domain": domain_of(address)}
    ).scalar()
    if known is not None:
        known[address] = found
    return found


def remember_customers(session: Session) -> None:
    """The intake asks an address's customer several times in a batch (what a message may
    read, the ticket it opens, whether its sender is a colleague): once is enough, as
    the intake changes no customer."""
    session.info[_CUSTOMERS_KNOWN] = {}


_CUSTOMERS_KNOWN = "maild.customers_known"


def customer_for(session: Session, address: str) -> Customer | None:
    customer_id = customer_id_for(session, address)
    return session.get(Customer, customer_id) if customer_id is not None else None


def open_ticket(
    session: Session,
    *,
    subject: str,
    requester: str,
    now: datetime,
    clocks: SlaClocks,
    follow_up_of: Ticket | None = None,
    mailbox: str | None = None,
    delivered_to: str | None = None,
) -> Ticket:
    ticket = Ticket(
        id=next_ticket_number(session),
        subject=subject or "(no subject)",
        status="new",
        priority=DEFAULT_PRIORITY,
        requester=requester,
        customer=customer_for(session, requester),
        created_at=now,
        updated_at=now,
        nudges_sent=0,
        sla_alerts_sent=[],
        follow_up_of_id=follow_up_of.id if follow_up_of else None,
        mailbox=mailbox,
        delivered_to=delivered_to,
        # A new ticket has none yet: said here, its first append loads nothing.
        messages=[],
        events=[],
        thread_ids=[],
        requester_mails=0,
        sla_pauses=[],
    )
    ticket.participants.append(Participant(address=requester, role="requester"))
    session.add(ticket)
    detail = f"follow-up of #{follow_up_of.id}" if follow_up_of else None
    record(ticket, now, requester, "created", None, "new", detail)
    clocks.refresh(ticket)
    return ticket


def next_ticket_number(session: Session) -> int:
    """A new ticket's number, known before it is written: it is in everything written
    about the ticket from the start (the acknowledgment's subject and Message-ID).

    PostgreSQL draws it from the column's sequence. SQLite hands out the next rowid
    itself, the largest plus one; every maild transaction there holds the write lock
    from its start (BEGIN IMMEDIATE), so no one else can take a number meanwhile, and
    the largest is asked once per transaction, then counted on (a message rolled back
    leaves a gap, as a sequence does)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return int(connection.execute(_NEXT_FROM_SEQUENCE).scalar_one())
    transaction = session.get_transaction()
    handed_out = session.info.get(_HANDED_OUT)
    if handed_out is not None and handed_out[0] is transaction:
        number = handed_out[1] + 1
    else:
        number = int(connection.execute(_LARGEST).scalar_one() or 0) + 1
    session.info[_HANDED_OUT] = (transaction, number)
    return number


_HANDED_OUT = "maild.last_ticket_number"


def forget_ticket_numbers(session: Session) -> None:
    """After a rollback to a savepoint: on SQLite, the numbers handed out since are free
    again (nothing written, nothing sent has them), and the next is the largest plus one
    once more. A PostgreSQL sequence leaves them as gaps."""
    session.info.pop(_HANDED_OUT, None)


_NEXT_FROM_SEQUENCE = select(func.nextval(func.pg_get_serial_sequence("tickets", "id")))
_LARGEST = select(func.max(Ticket.id))
