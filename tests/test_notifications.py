"""The SE's side: each new ticket and customer reply is mailed to the assignee (or the
staff list) in the ticket's thread, and answering that mail answers the customer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

from maild.clock import FixedClock
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.tickets.customers import add_customer
from maild.tickets.service import set_assignee, set_status
from maild.tickets.views import get_ticket
from tests.conftest import Sink
from tests.helpers import notice_to, show
from tests.mailbuilder import make_mail, plain_text


def delivered(app: App, sink: Sink, to: str) -> list[EmailMessage]:
    app.sender.deliver_due()
    return [m for m in sink.messages() if m["Delivered-To"] == to]


def assign(app: App, ticket_id: int, address: str) -> None:
    with app.db.transaction() as session:
        set_assignee(get_ticket(session, ticket_id), address, actor="test", now=app.clock.now())


def customer_reply(ticket_id: int, n: int, body: str) -> bytes:
    return make_mail(subject=f"Re: [#{ticket_id}] Printer on fire",
                     message_id=f"<reply{n}@customer.example>",
                     in_reply_to="<first@customer.example>", body=body)


def test_a_new_ticket_is_told_to_the_staff_list_with_who_the_customer_is(
    app: App, sink: Sink
) -> None:
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Customer Inc", domains=["customer.example"],
                     tier="enterprise", plan="managed")
    ingest(app.intake, make_mail(subject="Earlier problem", message_id="<old@customer.example>",
                                 sender="bob@customer.example"), "test")
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id

    notice = delivered(app, sink, "dan@example.com")[-1]

    assert notice["Subject"] == f"[#{ticket_id}] Printer on fire"
    assert notice["From"] == "Example Support <support@example.com>"
    assert notice["In-Reply-To"] == "<first@customer.example>"
    assert notice["Auto-Submitted"] == "auto-generated"
    text = plain_text(notice)
    assert text.startswith("New ticket from Ann Customer <ann@customer.example>:\n\n"
                           "It is on fire.\n")
    assert "Customer: Customer Inc, tier enterprise, managed plan\n" in text
    assert "Open tickets from them: 2\n" in text
    assert "Ticket #2, new, p2 (severity 2), not assigned yet\n" in text
    assert "Our own first-response target: Monday 23 November, 11:00 PST\n" in text
    assert "First response due: Monday 30 November, 10:00 PST\n" in text
    assert "#note  #status S  #priority P  #assign ADDR  #take  #solve  #hold  #cause TEXT" in text
    assert [e["kind"] for e in show(app, ticket_id)["events"]].count("notified") == 1


def test_replying_to_the_notification_answers_the_customer(app: App, sink: Sink) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    notice = delivered(app, sink, "dan@example.com")[-1]

    answer = make_mail(
        sender="Dan Engineer <dan@example.com>", subject=f"Re: {notice['Subject']}",
        message_id="<dan1@example.com>", in_reply_to=notice["Message-ID"],
        body="Unplug it first.\n\nOn Mon, Example Support wrote:\n> New ticket from Ann\n",
    )
    assert ingest(app.intake, answer, "test").ticket_id == ticket_id

    [ack, relay] = delivered(app, sink, "ann@customer.example")
    assert plain_text(relay).startswith("Unplug it first.")
    assert "New ticket from" not in plain_text(relay)
    assert notice["Message-ID"] not in relay["References"]  # staff-only mail stays hidden
    assert show(app, ticket_id)["assignee"] == "dan@example.com"


def test_once_assigned_only_the_assignee_is_told_and_a_call_is_suggested_in_time(
    app: App, sink: Sink
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    assign(app, ticket_id, "eve@example.com")

    for n in range(1, 4):
        ingest(app.intake, customer_reply(ticket_id, n, f"Still broken ({n}).\n"), "test")

    notices = delivered(app, sink, "eve@example.com")
    assert len(notices) == 3
    assert len(delivered(app, sink, "dan@example.com")) == 1  # the new ticket, before Eve
    assert "proposing a call" not in plain_text(notices[1])
    assert ("This is their reply number 3 and the cause is still unknown: "
            "consider proposing a call.") in plain_text(notices[2])


def test_no_call_is_suggested_once_the_cause_is_known(app: App, sink: Sink) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    ingest(app.intake,
        make_mail(sender="dan@example.com", subject=f"Re: [#{ticket_id}]",
                  message_id="<cause@example.com>", in_reply_to=notice_to(app, ticket_id),
                  body="#cause expired TLS certificate on their proxy\n#note\n"), "test")
    for n in range(1, 4):
        ingest(app.intake, customer_reply(ticket_id, n, f"Any news ({n})?\n"), "test")

    assert show(app, ticket_id)["cause"] == "expired TLS certificate on their proxy"
    assert "proposing a call" not in plain_text(delivered(app, sink, "dan@example.com")[-1])


def test_a_follow_up_of_a_closed_ticket_tells_the_assignee_and_links_it(
    app: App, sink: Sink
) -> None:
    closed_id = ingest(app.intake, make_mail(), "test").ticket_id
    assign(app, closed_id, "eve@example.com")
    with app.db.transaction() as session:
        set_status(get_ticket(session, closed_id), "closed", actor="test", now=app.clock.now(),
                   clocks=app.sla)
    follow_up = ingest(app.intake, customer_reply(closed_id, 1, "It is on fire again.\n"), "test")

    [notice] = delivered(app, sink, "eve@example.com")
    assert notice["Subject"] == f"[#{follow_up.ticket_id}] Printer on fire"
    assert plain_text(notice).startswith(
        f"Ann Customer <ann@customer.example> wrote again after ticket #{closed_id} was "
        "closed; this follow-up links to it:\n\nIt is on fire again.\n")


def test_an_se_out_of_office_answering_a_notification_never_reaches_the_customer(
    app: App, sink: Sink
) -> None:
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    notice = delivered(app, sink, "dan@example.com")[-1]
    ooo = make_mail(sender="dan@example.com", subject=f"Automatic reply: {notice['Subject']}",
                    message_id="<ooo@example.com>", in_reply_to=notice["Message-ID"],
                    headers={"Auto-Submitted": "auto-replied"}, body="I am on leave.\n")

    assert ingest(app.intake, ooo, "test").ticket_id == ticket_id

    assert len(delivered(app, sink, "ann@customer.example")) == 1  # the acknowledgment only
    last = show(app, ticket_id)["messages"][-1]
    assert (last["kind"], last["author"]) == ("internal", "dan@example.com")
    assert show(app, ticket_id)["status"] == "new"


def test_notifications_can_be_turned_off(
    app: App, app_with: Callable[..., App], sink: Sink
) -> None:
    quiet = app_with(staff=app.config.staff.model_copy(update={"notify": False}))
    ingest(quiet.intake, make_mail(), "test")
    assert delivered(app, sink, "dan@example.com") == []


def test_customer_html_reaches_the_se_as_text_never_as_markup(app: App, sink: Sink) -> None:
    html = ('<p>The <b>printer</b> is on fire.</p><script>steal(document.cookie)</script>'
            '<img src="https://tracker.example/p.gif" onerror="alert(1)">')
    ingest(app.intake, make_mail(body=None, html=html), "test")

    notice = delivered(app, sink, "dan@example.com")[-1]
    raw = notice.as_string()
    assert "The printer is on fire." in plain_text(notice)
    # The HTML part shows the customer's words as escaped text, never their markup.
    html_part = notice.get_body(preferencelist=("html",))
    assert html_part is not None
    shown = html_part.get_content()
    assert "The printer is on fire." in shown
    assert "<b>printer" not in shown and "<script" not in shown and "<img" not in shown
    assert "steal(" not in raw and "tracker.example" not in raw and "onerror" not in raw


def test_the_notification_says_who_the_customer_is_and_what_else_they_have(
    app: App, sink: Sink, clock: FixedClock
) -> None:
    """Organisation, plan and tier; their other open tickets and the last three solved,
    one line each, in the text and the HTML; the severity they claim."""
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Customer Inc", domains=["customer.example"],
                     tier="enterprise", plan="managed")
    for n, subject in enumerate(["Old one", "Export <broken>", "Login slow", "VPN drops"]):
        solved = ingest(app.intake, make_mail(sender="bob@customer.example", subject=subject,
                                              message_id=f"<s{n}@customer.example>"),
                        "test").ticket_id
        assert solved is not None
        clock.set(clock.now() + timedelta(hours=2))
        with app.db.transaction() as session:
            set_status(get_ticket(session, solved), "solved", actor="dan@example.com",
                       now=app.clock.now(), clocks=app.sla)
    still_open = ingest(app.intake, make_mail(sender="eve@customer.example",
                                              subject="Billing question",
                                              message_id="<open@customer.example>"),
                        "test").ticket_id
    clock.set(clock.now() + timedelta(days=1))
    ticket_id = ingest(app.intake, make_mail(subject="Severity 1: production down"),
                       "test").ticket_id

    notice = delivered(app, sink, "dan@example.com")[-1]
    text = plain_text(notice)
    assert "Customer: Customer Inc, tier enterprise, managed plan\n" in text
    assert "Open tickets from them: 2\n" in text
    assert (f"  open:   #{still_open} Billing question (new, p2, opened 1 day ago)\n"
            "  solved: #4 VPN drops (solved, p2, solved 1 day ago)\n"
            "  solved: #3 Login slow (solved, p2, solved 1 day 2 h ago)\n"
            "  solved: #2 Export <broken> (solved, p2, solved 1 day 4 h ago)\n") in text
    assert "Old one" not in text  # the last three solved only
    assert 'Severity claimed by the customer ("Severity 1"), not triaged' in text

    html_part = notice.get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "Customer Inc, tier enterprise, managed plan" in html
    assert f"<li>open: #{still_open} Billing question (new, p2, opened 1 day ago)</li>" in html
    assert "<li>solved: #2 Export &lt;broken&gt; (solved, p2, solved 1 day 4 h ago)</li>" \
        in html
    assert "Old one" not in html
    assert '<strong>Severity claimed by the customer</strong> ("Severity 1")' in html
    assert f"#{ticket_id}, new, p1 (severity 1)" in html
