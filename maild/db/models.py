"""The schema. Alembic migrations in maild/migrations follow these models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from maild.tickets.model import DEFAULT_PRIORITY, DEFAULT_TIER


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, hands back timezone-aware datetimes on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; attach a zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Customer(Base):
    """An organisation we support, recognised by its mail domains."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tier: Mapped[str] = mapped_column(String(20), default=DEFAULT_TIER)
    plan: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    welcomed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    domains: Mapped[list[CustomerDomain]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerDomain.domain"
    )
    contacts: Mapped[list[CustomerContact]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerContact.id"
    )


class CustomerDomain(Base):
    __tablename__ = "customer_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    customer: Mapped[Customer] = relationship(back_populates="domains")


class CustomerContact(Base):
    __tablename__ = "customer_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    customer: Mapped[Customer] = relationship(back_populates="contacts")


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # The scheduler's two questions: which pending tickets are due, which are unscheduled.
        Index("ix_tickets_status_followup_due_at", "status", "followup_due_at"),
        # The close and survey sweeps: solved tickets by when they were solved, and those
        # still without their survey; read every minute, so never by going through all.
        Index("ix_tickets_status_solved_at", "status", "solved_at"),
        Index("ix_tickets_status_survey_sent_at", "status", "survey_sent_at"),
        # A requester's tickets; those touched lately first of all (their recent
        # automatic mail, counted for every new ticket).
        Index("ix_tickets_requester_updated_at", "requester", "updated_at"),
        # The report's weeks: the tickets opened in a range, and how many came before it.
        Index("ix_tickets_created_at", "created_at"),
        # The report's kept weeks: which tickets changed since a week was worked out.
        Index("ix_tickets_updated_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    priority: Mapped[str] = mapped_column(String(2), default=DEFAULT_PRIORITY)
    requester: Mapped[str] = mapped_column(String(320))
    assignee: Mapped[str | None] = mapped_column(String(320))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    follow_up_of_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # SLA (maild/sla.py): the severity its priority maps to, what its policy promises,
    # and the team's own first-response target. The resolution clock stops while the
    # ticket waits on someone else (since sla_paused_at).
    severity: Mapped[int | None] = mapped_column(Integer)
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    internal_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Every time the resolution clock stood still, [since, until] as ISO times (until null
    # while it stands; NULL: never), kept as the status changes: the clocks are
    # recomputed from it without reading the event log (sla.py).
    sla_pauses: Mapped[list[list[str | None]] | None] = mapped_column(JSON)
    # Business time from opening to the first response and to the solve, worked out when
    # they happen (sla.py), so that the report sums them instead of walking calendars.
    first_response_business_seconds: Mapped[float | None] = mapped_column(Float)
    resolution_business_seconds: Mapped[float | None] = mapped_column(Float)
    # The next warning, breach notice or escalation to send, and the ones already sent.
    sla_alert_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    sla_alerts_sent: Mapped[list[str] | None] = mapped_column(JSON, default=list)
    # When the SLA sweep last moved its due times (or severity) with nothing happening to
    # it: planned afresh under other policies, business hours or plan (sla.py `replan`).
    # No activity, so not `updated_at`; the report's kept weeks read both.
    sla_replanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    nudges_sent: Mapped[int] = mapped_column(Integer, default=0)
    # While pending: since when, and when the next nudge or the auto-solve is due (NULL
    # until the scheduler has computed it in business time).
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    followup_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Customer satisfaction: the survey goes out once, after the ticket is first solved.
    survey_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    satisfaction: Mapped[int | None] = mapped_column(Integer)  # 1 (bad) to 5 (good)
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    # The [[mailboxes]] name the conversation came in through; its mail goes out from there.
    mailbox: Mapped[str | None] = mapped_column(String(40))
    # Without a mailbox: which of our addresses it was delivered to (feedback@ on the
    # SMTP listener); its mail goes out from there.
    delivered_to: Mapped[str | None] = mapped_column(String(320))
    # What the SEs found the problem to be (#cause); unknown until one says.
    cause: Mapped[str | None] = mapped_column(Text)
    # The customer's own severity (maild/tickets/severity_claims.py): the priority it maps
    # to and their words. The ticket runs on it until an engineer sets the priority
    # (priority_triaged_at).
    claimed_priority: Mapped[str | None] = mapped_column(String(2))
    severity_claim: Mapped[str | None] = mapped_column(String(200))
    priority_triaged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the mail maild writes about the ticket reads of its thread, kept as the thread
    # grows (maild/tickets/conversation.py), so that writing it loads no message: the
    # Message-IDs as the customer saw them, oldest first (its References), the
    # requester's name as they sign (its greeting), and how many mails the requester
    # wrote (their replies, counted in the staff's notification). NULL is empty.
    thread_ids: Mapped[list[str] | None] = mapped_column(JSON)
    requester_name: Mapped[str | None] = mapped_column(String(200))
    requester_mails: Mapped[int] = mapped_column(Integer, server_default="0")

    customer: Mapped[Customer | None] = relationship()
    participants: Mapped[list[Participant]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="Participant.id"
    )
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id"
    )
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")
    # The tickets opened by a later message after this one was closed.
    follow_ups: Mapped[list[Ticket]] = relationship(
        foreign_keys=[follow_up_of_id], order_by="Ticket.id", viewonly=True
    )

    @property
    def cc(self) -> list[str]:
        return [p.address for p in self.participants if p.role == "cc"]


class Participant(Base):
    """Everyone who takes part in a ticket's conversation, and as what."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("ticket_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    address: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[str] = mapped_column(String(20))  # requester | cc | staff
    ticket: Mapped[Ticket] = relationship(back_populates="participants")


class Message(Base):
    """One mail of a ticket's conversation, or an internal note.

    direction is seen from the customer: an SE's reply is `out` although it
    reached maild as an inbound mail, because it goes out to the customer.
    """

    __tablename__ = "messages"
    __table_args__ = (
        # A ticket's messages of a kind since a moment: its recent automatic mail.
        Index("ix_messages_ticket_id_kind_created_at", "ticket_id", "kind", "created_at"),
        # One sender's recent mail: the cap on the staff's notifications about them.
        Index("ix_messages_author_created_at", "author", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    kind: Mapped[str] = mapped_column(String(10))  # public | internal | system
    author: Mapped[str] = mapped_column(String(320))
    author_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(40), default="")
    automatic: Mapped[str | None] = mapped_column(String(200))  # why it counts as automatic
    # Written by someone who takes no part in the ticket (docs/security.md): kept for the
    # engineers, never sent on, and it changed nothing.
    outside: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The staff's notification of this mail: "sent", or "held" by the cap on notifications
    # about one sender; NULL when none was due.
    staff_notice: Mapped[str | None] = mapped_column(String(4))
    # Mail from a staff address that did not prove it came from that engineer: why. It was
    # handled as a customer's mail (docs/design.md, "Who may do what").
    unproven_staff: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    outbox: Mapped[OutboxMail | None] = relationship(back_populates="message", uselist=False)


class ReceivedRaw(Base):
    """A received message's bytes, when small enough to live in a row (raw_mail.py): named
    by their SHA-256, like the raw store's files, and written in the transaction of the
    message or quarantine entry that refers to them."""

    __tablename__ = "raw_mail"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class OutboxMail(Base):
    """A mail to deliver, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        # The notices of one kind sent lately (those about unproven staff mail are capped).
        Index("ix_outbox_purpose_created_at", "purpose", "created_at"),
        # The claims of one sender: released when it goes silent.
        Index("ix_outbox_owner", "owner"),
        CheckConstraint("raw IS NOT NULL OR raw_sha256 IS NOT NULL", name="ck_outbox_raw_kept"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    # Indexed: a ticket's thread is loaded with each message's outbox row.
    message_row_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))  # ack | reply | welcome | command_error …
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    # The mail's bytes: in the row when small (raw_mail.IN_ROW_BYTES: an acknowledgment, a
    # notification), else a file of the raw store named by its SHA-256.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The sender that holds the mail now (a queued mail), or that last had it in hand (a
    # sent or failed one); an OutboxSender's owner id. A queued mail whose owner has no
    # live OutboxSender row is free to claim.
    owner: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    message: Mapped[Message | None] = relationship(back_populates="outbox")


class OutboxSender(Base):
    """A sender at work: it holds outbox claims while its heartbeat is fresh.

    `beat_at` is written with the database's own clock (maild.outbound.claims), so every
    sender judges silence on one clock, whatever MAILD_NOW or the machines' skew says."""

    __tablename__ = "outbox_senders"

    owner: Mapped[str] = mapped_column(String(120), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """The audit log of a ticket: every status change and what caused it."""

    __tablename__ = "events"
    # The report's counts of a kind of event in a range (breaches, nudges, answers).
    __table_args__ = (Index("ix_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(30))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class ReportWeek(Base):
    """A closed week's report figures (maild/tickets/report.py `Figures`), worked out
    once and kept until a ticket of that week changes (maild/tickets/report_rollup.py).
    `definition` names what they were worked out by: the report's version, the business
    calendar and the customers' plans; weeks of another definition are not read."""

    __tablename__ = "report_weeks"

    definition: Mapped[str] = mapped_column(String(64), primary_key=True)
    week_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    # When the figures were last known right: worked out, or found untouched by changes.
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    tickets: Mapped[list[int]] = mapped_column(JSON)  # the tickets the figures read


class SiteSecret(Base):
    """A random key maild made for itself once, shared by every process on the database
    (the key of the reply tokens in staff notifications: maild/mail/reply_tokens.py)."""

    __tablename__ = "site_secrets"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MailboxState(Base):
    """Where reading an IMAP folder got to: valid only while the folder's UIDVALIDITY holds."""

    __tablename__ = "mailbox_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    folder: Mapped[str] = mapped_column(Text)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MailboxConnection(Base):
    """How the reader of an IMAP mailbox stands, written by the maild that holds it, so
    that every maild sharing the database reports the same (maild/web/metrics.py)."""

    __tablename__ = "mailbox_connections"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # connected | backoff | stopped
    detail: Mapped[str | None] = mapped_column(Text)  # the fault behind a backoff
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The last time the reader looked at the folder and the server answered.
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QuarantinedMail(Base):
    """A message that could not be processed, kept with the reason."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10), default="held")  # held | released
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # `maild quarantine replay`: how often, when last, and what became of it.
    replays: Mapped[int | None] = mapped_column(Integer, default=0)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)


class FailedStep(Base):
    """A scheduled step (a nudge, a survey, a closing, an SLA alert) that failed for one
    ticket: held back until `retry_at`, so that the ticket neither fails every minute nor
    stops the tickets behind it. Gone once the step succeeds."""

    __tablename__ = "failed_steps"
    # The sweeps leave out what is held back: by step, until when.
    __table_args__ = (Index("ix_failed_steps_step_retry_at", "step", "retry_at"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    step: Mapped[str] = mapped_column(String(20), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FailedJob(Base):
    """A scheduled job that belongs to no ticket (the weekly digest) and failed: held
    back until `retry_at`, across restarts, so that neither the minute-by-minute sweep
    nor a daemon that keeps restarting tries it at every turn. Gone once it succeeds."""

    __tablename__ = "failed_jobs"

    job: Mapped[str] = mapped_column(String(40), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime] = mapped_column(UTCDateTime)
