"""Threading (docs/design.md rules 1–4) and the status transitions, through the real pipeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from maild.clock import FixedClock
from maild.db.models import QuarantinedMail
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.tickets.customers import add_customer
from maild.tickets.service import set_status
from maild.tickets.views import get_ticket
from tests.helpers import kept_raw, notice_to, show, sqlite_plan, statements
from tests.mailbuilder import make_mail, staff_reply


def _ack_id(app: App, ticket_id: int) -> str:
    ack = show(app, ticket_id)["messages"][1]
    assert ack["kind"] == "system"
    return ack["delivery"]["message_id"]


def test_first_mail_opens_a_new_ticket_with_an_acknowledgment(app: App) -> None:
    result = ingest(app.intake, make_mail(), "test")

    assert result.outcome == "stored"
    ticket = show(app, result.ticket_id)
    assert ticket["status"] == "new"
    assert ticket["requester"] == "ann@customer.example"
    assert ticket["subject"] == "Printer on fire"
    assert [m["kind"] for m in ticket["messages"]] == ["public", "system"]
    ack = ticket["messages"][1]
    assert ack["direction"] == "out"
    assert ack["delivery"]["recipients"] == ["ann@customer.example"]
    assert ack["delivery"]["status"] == "queued"
    assert ticket["response_due_at"] == "2026-11-30T18:00:00+00:00"


def test_same_message_id_twice_is_one_message(app: App) -> None:
    first = ingest(app.intake, make_mail(), "test")
    second = ingest(app.intake, make_mail(body="different bytes, same Message-ID\n"), "test")

    assert second.outcome == "duplicate"
    assert len(show(app, first.ticket_id)["messages"]) == 2


def test_reply_to_the_acknowledgment_by_headers_reopens_the_same_ticket(
    app: App, clock: FixedClock
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ack_id = _ack_id(app, ticket_id)
    clock.advance(timedelta(minutes=5))

    reply = make_mail(subject="Re: Printer on fire", message_id="<second@customer.example>",
                      in_reply_to=ack_id, references=["<first@customer.example>", ack_id],
                      body="It is still on fire.\n")
    result = ingest(app.intake, reply, "test")

    assert result.ticket_id == ticket_id
    ticket = show(app, ticket_id)
    assert ticket["status"] == "open"
    assert ticket["messages"][-1]["body"] == "It is still on fire."


def test_reply_found_by_references_alone(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    reply = make_mail(subject="Re: something else", message_id="<r@customer.example>",
                      references=["<unknown@elsewhere.example>", "<first@customer.example>"])
    assert ingest(app.intake, reply, "test").ticket_id == ticket_id


def test_subject_tag_from_a_participant_threads_without_headers(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    tagged = make_mail(subject=f"RE: [#{ticket_id}] Printer on fire",
                       message_id="<tag@customer.example>", body="Any news?\n")
    assert ingest(app.intake, tagged, "test").ticket_id == ticket_id
    assert show(app, ticket_id)["status"] == "open"


def test_subject_tag_from_a_stranger_opens_a_new_ticket(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    stranger = make_mail(sender="mallory@attacker.example",
                         subject=f"Re: [#{ticket_id}] Printer on fire",
                         message_id="<evil@attacker.example>")
    result = ingest(app.intake, stranger, "test")

    assert result.ticket_id != ticket_id
    assert len(show(app, ticket_id)["messages"]) == 2


def test_staff_reply_is_relayed_and_sets_pending(app: App, clock: FixedClock) -> None:
    ticket_id = ingest(app.intake, make_mail(cc="bob@customer.example"), "test").ticket_id
    clock.advance(timedelta(hours=1))
    se_reply = make_mail(
        sender="Dan Engineer <dan@example.com>", to="support@example.com",
        subject=f"Re: [#{ticket_id}] Printer on fire", message_id="<dan1@example.com>",
        in_reply_to=notice_to(app, ticket_id),
        body="Please unplug it first.\n\nOn Mon, Ann wrote:\n> It is on fire.\n",
    )
    ingest(app.intake, se_reply, "test")

    ticket = show(app, ticket_id)
    assert ticket["status"] == "pending"
    assert ticket["assignee"] == "dan@example.com"
    assert ticket["first_response_at"] == "2026-11-23T19:00:00+00:00"
    reply = ticket["messages"][-1]
    assert (reply["direction"], reply["kind"], reply["author"]) == (
        "out", "public", "dan@example.com")
    assert reply["body"] == "Please unplug it first."
    assert reply["delivery"]["recipients"] == ["ann@customer.example", "bob@customer.example"]


def test_staff_reply_all_does_not_send_the_customer_a_second_copy(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(cc="bob@customer.example"), "test").ticket_id
    reply_all = make_mail(
        sender="dan@example.com", to="ann@customer.example", cc="support@example.com",
        subject=f"Re: [#{ticket_id}] Printer on fire", message_id="<dan2@example.com>",
        in_reply_to=notice_to(app, ticket_id), body="Unplug it.\n",
    )
    ingest(app.intake, reply_all, "test")

    reply = show(app, ticket_id)["messages"][-1]
    assert reply["delivery"]["recipients"] == ["bob@customer.example"]


def test_note_command_keeps_the_reply_internal(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    note = staff_reply(ticket_id, "#note\nCustomer is on the old firmware.\n", "<note@example.com>",
                       answering=notice_to(app, ticket_id))
    ingest(app.intake, note, "test")

    ticket = show(app, ticket_id)
    last = ticket["messages"][-1]
    assert (last["kind"], last["delivery"]) == ("internal", None)
    assert last["body"] == "Customer is on the old firmware."
    assert ticket["status"] == "new"
    assert ticket["first_response_at"] is None


def test_commands_after_a_note_on_the_first_line_are_carried_out(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    note = staff_reply(ticket_id, "#note customer is on the old firmware\n#priority p1\n"
                       "#status open\n", "<note@example.com>",
                       answering=notice_to(app, ticket_id))
    ingest(app.intake, note, "test")

    ticket = show(app, ticket_id)
    assert (ticket["status"], ticket["priority"], ticket["severity"]) == ("open", "p1", 1)
    last = ticket["messages"][-1]
    assert (last["kind"], last["delivery"]) == ("internal", None)
    assert last["body"] == "customer is on the old firmware"


def test_commands_change_the_ticket_and_are_stripped_from_the_relay(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    reply = staff_reply(ticket_id, "#priority p1\n#solve\nFixed in 2.3.1, please upgrade.\n",
                        "<cmd@example.com>", answering=notice_to(app, ticket_id))
    ingest(app.intake, reply, "test")

    ticket = show(app, ticket_id)
    assert (ticket["status"], ticket["priority"]) == ("solved", "p1")
    assert ticket["messages"][-1]["body"] == "Fixed in 2.3.1, please upgrade."
    assert ticket["solved_at"] is not None


def test_unknown_command_changes_nothing_and_tells_the_se(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    reply = staff_reply(ticket_id, "#sovle\nDone.\n", "<bad@example.com>",
                        answering=notice_to(app, ticket_id))
    result = ingest(app.intake, reply, "test")

    ticket = show(app, ticket_id)
    assert ticket["status"] == "new"
    assert ticket["messages"][-1]["kind"] == "internal"
    assert result.outbox_queued == 1
    assert any(e["kind"] == "command_rejected" and "#sovle" in e["detail"]
               for e in ticket["events"])


def test_staff_writing_to_a_customer_with_support_in_cc_opens_their_ticket(app: App) -> None:
    mail = make_mail(sender="Dan <dan@example.com>", to="Carol <carol@customer.example>",
                     cc="support@example.com", subject="Your upgrade next week",
                     message_id="<outreach@example.com>", body="Shall we plan it?\n")
    ticket_id = ingest(app.intake, mail, "test").ticket_id
    # No notification to answer: Dan proves it was him by answering maild's notice.
    ingest(app.intake, staff_reply(ticket_id, "Yes, that was me.\n", "<confirm@example.com>",
                                   answering=notice_to(app, ticket_id)), "test")

    ticket = show(app, ticket_id)
    assert ticket["requester"] == "carol@customer.example"
    assert ticket["assignee"] == "dan@example.com"
    assert ticket["status"] == "pending"
    assert [m["kind"] for m in ticket["messages"]] == ["public", "internal"]  # no ack

    answer = make_mail(sender="carol@customer.example", to="dan@example.com",
                       cc="support@example.com", subject="Re: Your upgrade next week",
                       message_id="<carol1@customer.example>",
                       in_reply_to="<outreach@example.com>", body="Tuesday works.\n")
    assert ingest(app.intake, answer, "test").ticket_id == ticket_id
    assert show(app, ticket_id)["status"] == "open"


def test_reply_to_a_closed_ticket_opens_a_linked_follow_up(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    with app.db.transaction() as session:
        set_status(get_ticket(session, ticket_id), "closed", actor="test",
                   now=app.clock.now(), clocks=app.sla)
    again = make_mail(subject="Re: Printer on fire", message_id="<later@customer.example>",
                      in_reply_to="<first@customer.example>", body="It is back.\n")
    result = ingest(app.intake, again, "test")

    assert result.ticket_id != ticket_id
    follow_up = show(app, result.ticket_id)
    assert follow_up["follow_up_of"] == ticket_id
    assert follow_up["status"] == "new"
    assert show(app, ticket_id)["status"] == "closed"


def test_auto_reply_on_a_ticket_is_stored_and_reopens_nothing(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, staff_reply(ticket_id, "Try this.\n", "<d@example.com>",
                                   answering=notice_to(app, ticket_id)), "test")
    ooo = make_mail(subject=f"Out of office: [#{ticket_id}]", message_id="<ooo@customer.example>",
                    in_reply_to="<d@example.com>", headers={"Auto-Submitted": "auto-replied"},
                    body="I am away until Monday.\n")
    result = ingest(app.intake, ooo, "test")

    assert result.ticket_id == ticket_id
    ticket = show(app, ticket_id)
    assert ticket["status"] == "pending"
    assert ticket["messages"][-1]["automatic"] == "Auto-Submitted: auto-replied"


def test_automatic_mail_that_threads_nowhere_is_ignored_not_answered(app: App) -> None:
    bounce = make_mail(sender="MAILER-DAEMON@mx.customer.example", subject="Undeliverable",
                       message_id="<bounce@mx.customer.example>")
    result = ingest(app.intake, bounce, "test")

    assert result.outcome == "ignored"
    assert "automatic" in result.reason


def test_acknowledgments_to_one_address_are_limited_per_hour(
    app: App, clock: FixedClock
) -> None:
    def new_mail(n: int) -> int:
        return ingest(app.intake,
            make_mail(subject=f"Problem {n}", message_id=f"<p{n}@customer.example>"),
            "test").ticket_id

    limit = app.config.outbound.auto_replies_per_hour
    acknowledged = [new_mail(n) for n in range(limit)]
    silent = new_mail(limit)
    clock.advance(timedelta(minutes=61))
    later = new_mail(limit + 1)

    assert all(len(show(app, t)["messages"]) == 2 for t in acknowledged)
    assert [m["kind"] for m in show(app, silent)["messages"]] == ["public"]
    assert any(e["kind"] == "ack_withheld" for e in show(app, silent)["events"])
    assert len(show(app, later)["messages"]) == 2


def test_recent_automatic_mail_is_counted_from_the_requesters_own_tickets(app: App) -> None:
    """Counted for every new ticket, so read by index from the requester's recently
    touched tickets: never by going through the whole desk's mail of the last hour,
    which grows with its traffic."""
    if app.db.is_postgresql:
        pytest.skip("SQLite's plan is fixed by its indexes; PostgreSQL's by statistics")
    with statements(app.db.engine) as given:
        ingest(app.intake, make_mail(), "test")
    [(statement, parameters)] = [(s, p) for s, p in given
                                 if "count(messages.id)" in s and "JOIN messages" in s]
    plan = sqlite_plan(app.db.engine, statement, parameters)
    assert [step.split(" USING ")[1] for step in plan] == [
        "COVERING INDEX ix_tickets_requester_updated_at (requester=? AND updated_at>?)",
        "COVERING INDEX ix_messages_ticket_id_kind_created_at "
        "(ticket_id=? AND kind=? AND created_at>?)"], plan


def _statements_of(app: App, raw: bytes) -> list[str]:
    with statements(app.db.engine) as given:
        assert ingest(app.intake, raw, "test").outcome == "stored"
    return [" ".join(statement.split()) for statement, _ in given]


def test_a_reply_costs_the_same_queries_however_long_its_thread(
    app: App, clock: FixedClock
) -> None:
    """The ticket a reply belongs to is loaded without its thread: the mails queued
    about it read their References from the ticket, not from the thread's messages."""
    def reply(n: int) -> bytes:
        clock.advance(timedelta(hours=2))  # past the cap on notifications per sender
        return make_mail(subject="Re: Printer on fire", message_id=f"<r{n}@customer.example>",
                         in_reply_to="<first@customer.example>",
                         references=["<first@customer.example>"])

    ingest(app.intake, make_mail(), "test")
    ingest(app.intake, reply(1), "test")  # the first reply changes more than the next ones
    short = len(_statements_of(app, reply(2)))
    for n in range(3, 12):
        ingest(app.intake, reply(n), "test")
    assert len(_statements_of(app, reply(12))) == short


def test_a_reply_reads_its_ticket_in_one_query_and_neither_its_thread_nor_its_events(
    app: App, clock: FixedClock
) -> None:
    """The reply that reopens a ticket is answered from the ticket's row, read with its
    participants and customer in one query: the References and greeting of the
    notification and the SLA clocks' pauses are kept on the ticket, so no message of
    the thread, no outbox row and no event is read."""
    ingest(app.intake, make_mail(), "test")
    ack = _ack_id(app, 1)
    clock.advance(timedelta(hours=2))
    with app.db.transaction() as session:
        set_status(get_ticket(session, 1), "pending", actor="dan@example.com",
                   now=clock.now(), clocks=app.sla)
    clock.advance(timedelta(hours=2))
    statements = _statements_of(app, make_mail(
        subject="Re: Printer on fire", message_id="<second@customer.example>",
        in_reply_to=ack, references=["<first@customer.example>", ack]))
    reads = [s for s in statements if s.startswith("SELECT")]
    assert not [s for s in reads if "messages.body" in s or "outbox.raw" in s
                or "FROM events" in s], reads
    [ticket] = [s for s in reads if "participants" in s or "customers" in s]
    assert "FROM tickets LEFT OUTER JOIN customers" in ticket, ticket
    assert "LEFT OUTER JOIN participants" in ticket, ticket
    assert show(app, 1)["status"] == "open"


def test_invalid_sender_is_quarantined_with_the_reason(app: App) -> None:
    result = ingest(app.intake, make_mail(sender="not-an-address"), "test")
    assert result.outcome == "quarantined"
    assert "sender" in result.reason


def test_mail_from_our_own_address_is_a_loop(app: App) -> None:
    result = ingest(app.intake, make_mail(sender="support@example.com"), "test")
    assert result.outcome == "quarantined"
    assert "loop" in result.reason


def test_nul_bytes_in_headers_and_body_are_dropped_not_fatal(app: App) -> None:
    raw = (b"From: Ann\x00 <ann@customer.example>\r\nTo: support@example.com\r\n"
           b"Subject: broken\x00 subject\r\nMessage-ID: <nul@customer.example>\r\n\r\n"
           b"body with \x00 a NUL\r\n")
    result = ingest(app.intake, raw, "test")

    assert result.outcome == "stored", result.reason
    ticket = show(app, result.ticket_id)
    assert ticket["subject"] == "broken subject"
    assert ticket["messages"][0]["body"] == "body with  a NUL"


def test_quarantined_message_keeps_its_raw_bytes(app: App) -> None:
    raw = b"this is not an email at all"
    result = ingest(app.intake, raw, "test")

    assert result.outcome == "quarantined"
    with app.db.transaction() as session:
        held = session.scalars(select(QuarantinedMail)).one()
        assert kept_raw(app, held.raw_sha256) == raw
        assert held.reason == result.reason


def test_every_status_change_is_in_the_event_log(app: App) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake, staff_reply(ticket_id, "Try this.\n", "<d@example.com>",
                                   answering=notice_to(app, ticket_id)), "test")
    ingest(app.intake, make_mail(message_id="<c2@customer.example>", in_reply_to="<d@example.com>",
                                 body="Did not help.\n"), "test")

    changes = [(e["old"], e["new"]) for e in show(app, ticket_id)["events"]
               if e["kind"] in ("created", "status")]
    assert changes == [(None, "new"), ("new", "pending"), ("pending", "open")]


def test_customer_organisation_is_recognised_by_domain(app: App) -> None:
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Customer Inc", domains=["customer.example"],
                     tier="enterprise", plan="managed")
    ticket = show(app, ingest(app.intake, make_mail(), "test").ticket_id)
    assert (ticket["organization"], ticket["tier"], ticket["plan"]) == (
        "Customer Inc", "enterprise", "managed")


def test_a_contact_address_names_its_customer_before_the_domain_does(app: App) -> None:
    """A consultant writing from a client's domain works for someone else."""
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Customer Inc", domains=["customer.example"])
        add_customer(app.mails, session, "Partner Ltd", domains=["partner.example"],
                     contacts=["consultant@customer.example"])
    by_contact = show(app, ingest(app.intake, make_mail(sender="consultant@customer.example"),
                                  "test").ticket_id)
    by_domain = show(app, ingest(app.intake, make_mail(sender="someone@customer.example",
                                                       message_id="<two@customer.example>"),
                                 "test").ticket_id)
    unknown = show(app, ingest(app.intake, make_mail(sender="who@elsewhere.example",
                                                     message_id="<three@elsewhere.example>"),
                               "test").ticket_id)
    assert [by_contact["organization"], by_domain["organization"], unknown["organization"]] == [
        "Partner Ltd", "Customer Inc", None]
