"""Sample contexts for every template, one per situation a live mail can be written in,
for `maild check` to render each template with before a customer's mail meets it.

The common part of every context comes from the builder the live mails use
(`mail_context`), over tickets, customers and messages of the real models, with the due
times the real SLA clocks give them; the report of the digest is built by the real report
over these tickets. So a variable added to what every template receives is in the samples
at once. What a single kind of mail adds is written here as its caller passes it (the
file named beside each): a variable added there belongs here too, and
tests/test_template_check.py renders every shipped template against these samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from maild.clock import Clock
from maild.config import Config
from maild.db.models import Base, Customer, CustomerDomain, Event, Message, Participant, Ticket
from maild.outbound.mails import mail_context
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.conversation import add_message
from maild.tickets.customer_context import TicketLine
from maild.tickets.report import build_report
from maild.tickets.report_text import report_text
from maild.tickets.sla import Alert, SlaClocks


@dataclass(frozen=True)
class Sample:
    template: str
    situation: str  # in words, for the operator: "a customer of an organisation, ..."
    context: dict[str, Any]


@dataclass(frozen=True)
class _Case:
    situation: str
    ticket: Ticket


class _Desk:
    """Sample tickets, as intake and the engineers leave them."""

    def __init__(self, config: Config, clock: Clock, sla: SlaClocks) -> None:
        self.config = config
        self.now = clock.now()
        self.sla = sla
        self.numbers = iter(range(1001, 2000))
        self.customer = Customer(
            id=1, name="Acme Corp", tier="enterprise", plan="premium", created_at=self.now,
            domains=[CustomerDomain(domain="acme.example")], contacts=[])
        self.customer_without_plan = Customer(
            id=2, name="Small Shop", tier="free", plan=None, created_at=self.now,
            domains=[], contacts=[])
        self.engineer = config.staff.addresses[0] if config.staff.addresses \
            else "engineer@example.com"
        self.mailbox = config.mailboxes[0].name if config.mailboxes else None

    def message(self, ticket: Ticket, *, direction: str = "in", kind: str = "public",
                author: str | None = None, name: str | None = "Ann Example",
                at: datetime | None = None, body: str = "It does not start.\n\nAnn") -> Message:
        message = Message(
            message_id=f"<sample.{ticket.id}.{len(ticket.messages)}@example.com>",
            direction=direction, kind=kind, author=author or ticket.requester,
            author_name=name, created_at=at or ticket.created_at, subject=ticket.subject,
            body=body, channel="imap", automatic=None, outside=False, staff_notice=None,
            unproven_staff=None, attachments=[], outbox=None)
        add_message(ticket, message)
        return message

    def ticket(self, *, customer: Customer | None, mailbox: str | None = None,
               status: str = "new", priority: str = "p2", named: bool = True,
               by_staff: bool = False, answered: bool = False) -> Ticket:
        created = self.now - timedelta(days=3)
        requester = "ann@acme.example" if customer is self.customer else "bob@mail.example"
        ticket = Ticket(
            id=next(self.numbers), subject="The export fails with error 42", status=status,
            priority=priority, requester=requester, customer=customer,
            customer_id=customer.id if customer else None, created_at=created,
            updated_at=created, nudges_sent=0, sla_alerts_sent=[], mailbox=mailbox,
            assignee=self.engineer if by_staff or answered else None,
            messages=[], events=[], follow_ups=[],
            participants=[Participant(address=requester, role="requester"),
                          Participant(address="carol@acme.example", role="cc")])
        self.sla.refresh(ticket)
        if by_staff:
            self.message(ticket, direction="out", author=self.engineer, name="Dan Engineer",
                         body="As discussed on the phone, here is the ticket for it.")
        else:
            self.message(ticket, name="Ann Example" if named else None)
        if by_staff or answered:
            ticket.first_response_at = created + timedelta(hours=2)
            self.message(ticket, direction="out", author=self.engineer, name="Dan Engineer",
                         at=ticket.first_response_at, body="Could you send the log?")
        if status in ("pending", "solved", "closed"):
            ticket.pending_since = ticket.first_response_at or created
        if status in ("solved", "closed"):
            ticket.solved_at = self.now - timedelta(hours=5)
            ticket.cause = "a full disk"
            ticket.satisfaction = 4
        if status == "closed":
            ticket.closed_at = self.now - timedelta(hours=1)
        self.sla.refresh(ticket)
        return ticket

    def cases(self, statuses: tuple[str, ...]) -> Iterator[_Case]:
        """The tickets a template about a ticket may meet, in `statuses`."""
        for status in statuses:
            answered = status != "new"
            yield _Case(f"{status}, a customer of an organisation",
                        self.ticket(customer=self.customer, status=status, answered=answered))
            through = f", through mailbox {self.mailbox}" if self.mailbox else ""
            yield _Case(f"{status}, an organisation without a plan{through}",
                        self.ticket(customer=self.customer_without_plan, status=status,
                                    mailbox=self.mailbox, answered=answered))
            yield _Case(f"{status}, a sender of no known organisation, who gave no name",
                        self.ticket(customer=None, status=status, named=False,
                                    answered=answered))
            yield _Case(f"{status}, severity 1",
                        self.ticket(customer=self.customer, status=status, priority="p0",
                                    answered=answered))
            if status != "new":
                yield _Case(f"{status}, opened by an engineer writing to the customer",
                            self.ticket(customer=None, status=status, by_staff=True))


def samples(config: Config, clock: Clock) -> list[Sample]:
    """Every template, in every situation its mail is written in."""
    calendar = BusinessCalendar(config.business_hours)
    sla = SlaClocks(config.sla, calendar)
    desk = _Desk(config, clock, sla)
    now = clock.now()
    found: list[Sample] = []
    made: list[Ticket] = []

    def add(template: str, situation: str, ticket: Ticket | None, **extra: Any) -> None:
        if ticket is not None and ticket not in made:
            made.append(ticket)
        found.append(Sample(template, situation,
                            mail_context(config, clock, calendar, ticket, **extra)))

    # intake/apply.py: the acknowledgment, and the notification of what a customer wrote.
    closed = desk.ticket(customer=desk.customer, status="closed", answered=True)
    for case in desk.cases(("new",)):
        message = case.ticket.messages[-1]
        add("ack", case.situation, case.ticket, message=message, follows=None)
        add("ack", f"{case.situation}, following up closed ticket #{closed.id}",
            case.ticket, message=message, follows=closed)
    other_open = [TicketLine(1002, "Login is slow", "open", "p2", "opened 2 days ago")]
    recently_solved = [TicketLine(998, "Export <broken>", "solved", "p1", "solved 5 days ago"),
                       TicketLine(990, "VPN drops", "closed", "p2", "solved 3 weeks ago")]
    for case in desk.cases(("new", "open")):
        message = case.ticket.messages[-1]
        for suggest_call, held_back in ((False, 0), (True, 3)):
            # The busier sample also has the customer's other tickets and a claimed severity.
            add("notify", f"{case.situation}{', after many replies' if suggest_call else ''}"
                f"{', with mail held back' if held_back else ''}", case.ticket,
                message=message, headline="New ticket from Ann Example <ann@acme.example>:",
                open_tickets=2 if suggest_call else 1,
                other_open=other_open if suggest_call else [],
                recently_solved=recently_solved if suggest_call else [],
                severity_claim="Severity 1" if suggest_call else None,
                customer_replies=4 if suggest_call else 0,
                suggest_call=suggest_call, held_back=held_back,
                held_tickets=[1002, 1003] if held_back else [],
                notify_cap=config.staff.notify_per_sender_per_hour)
        # intake/apply.py and cli/tickets.py: the engineer set another severity than the
        # customer claimed.
        add("severity_changed", case.situation, case.ticket, claimed_severity=1)
        # intake/apply.py: an engineer's reply relayed; commands that were not understood;
        # mail in an engineer's name that proved nothing.
        reply = desk.message(case.ticket, direction="out", author=desk.engineer,
                             name="Dan Engineer", body="Please try version 2.1.\n\nDan")
        for answering in (message, None):
            add("reply", f"{case.situation}, {'answering' if answering else 'answering nothing'}",
                case.ticket, reply=reply, answering=answering)
        add("command_error", case.situation, case.ticket,
            errors=["#status: unknown status 'done'"], reply=reply)
        for notice in ("staff_unproven", "staff_confirm"):
            for ignored in ([], ["#status solved"]):
                add(notice, case.situation, case.ticket, message=message,
                    reason="has no reply token", ignored_commands=ignored)

    # tickets/followups.py: each nudge step, then the auto-solve; tickets/surveys.py.
    steps = len(config.followup.nudges)
    for case in desk.cases(("pending",)):
        for number in range(1, steps + 1):
            pending_since = case.ticket.pending_since or now
            add("nudge", f"{case.situation}, nudge {number} of {steps}", case.ticket,
                nudge_number=number, last=number == steps,
                auto_solve_at=calendar.add(pending_since, config.followup.auto_solve_after))
        add("auto_solved", case.situation, case.ticket)
    for case in desk.cases(("solved",)):
        add("survey", case.situation, case.ticket)

    # tickets/alerts.py: warnings and breaches of each target; the escalation.
    for case in desk.cases(("new", "open")):
        ticket = case.ticket
        dues = [due for due in (ticket.internal_response_due_at, ticket.response_due_at,
                                ticket.resolution_due_at) if due is not None] or [now]
        for stage in ("warning", "breach"):
            alerts = [Alert(target, stage, due, due) for target, due in zip(
                ("internal_response", "first_response", "resolution"), dues, strict=False)]
            add("sla_alert", f"{case.situation}, {stage}", ticket, alerts=alerts, now=now)
        add("escalation", case.situation, ticket, now=now,
            escalate_after=sla.config.escalate_after)

    # tickets/customers.py: the welcome mail, with and without a plan.
    for customer in (desk.customer, desk.customer_without_plan):
        add("welcome", f"{customer.name}, plan {customer.plan or 'none'}", None,
            customer=customer, contact="ann@acme.example", promises=sla.promises(customer.plan))

    # tickets/digest.py: the weekly report, built by the report itself over these tickets.
    for situation, tickets in (("a week with tickets", made), ("an empty week", [])):
        report = _report(calendar, tickets, since=now - timedelta(days=7), now=now)
        add("digest", situation, None, report=report, report_text=report_text(report),
            week="2026-W48")
    return found


def _report(calendar: BusinessCalendar, tickets: list[Ticket], since: datetime,
            now: datetime) -> dict[str, Any]:
    """The report over copies of the sample tickets, in a database of its own in memory:
    the real report reads what it needs with its own queries."""
    engine = create_engine("sqlite://")
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([Customer(id=1, name="Acme Corp", tier="enterprise",
                                      plan="premium", created_at=since)])
            for ticket in tickets:
                copy = Ticket(**{column.key: getattr(ticket, column.key)
                                 for column in Ticket.__table__.columns})
                copy.customer_id = 1 if ticket.customer_id == 1 else None
                session.add(copy)
                for message in ticket.messages:
                    session.add(Message(**{column.key: getattr(message, column.key)
                                           for column in Message.__table__.columns
                                           if column.key != "id"} | {"ticket_id": ticket.id}))
                if ticket.solved_at:
                    session.add(Event(ticket_id=ticket.id, at=ticket.solved_at,
                                      actor="ann@acme.example", kind="satisfaction",
                                      new="4", detail="Quick and friendly"))
            session.flush()
            return build_report(session, calendar, since, now, now)
    finally:
        engine.dispose()
