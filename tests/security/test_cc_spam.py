"""Threat: maild as a spam cannon.

Whoever writes to the support address chooses its Cc. If automatic mail went to every
participant, one mail copying 200 addresses would make maild send 200 acknowledgments
that carry the sender's subject, and the hourly cap, counted for the sender alone, would
not stop it. Automatic mail (acknowledgments, nudges, surveys, auto-solve notices) goes
to the requester alone, at most `outbound.auto_replies_per_hour` an hour to any address;
engineers' replies go to the participants. The staff's notifications about one sender
are capped as well, and what was held back is counted in the next one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.helpers import NOW
from tests.mailbuilder import make_mail, plain_text
from tests.security.conftest import Desk

LA = ZoneInfo("America/Los_Angeles")
SPAMMER = "spammer@attacker.example"
VICTIMS = [f"victim{n}@elsewhere.example" for n in range(200)]


def test_three_mails_copying_200_addresses_make_six_deliveries_not_600(desk: Desk) -> None:
    for n in range(3):
        desk.smtp(make_mail(sender=SPAMMER, cc=", ".join(VICTIMS),
                            subject=f"Cheap watches {n}: visit attacker.example",
                            message_id=f"<spam{n}@attacker.example>"), mail_from=SPAMMER)
    desk.deliver()

    delivered = sorted(recipient for recipient, _ in desk.deliveries())
    # Each mail: its acknowledgment to the sender, its notification to the engineer.
    assert delivered == ["dan@example.com"] * 3 + [SPAMMER] * 3
    assert all(len(desk.show(n)["cc"]) == 200 for n in (1, 2, 3))  # kept, for the engineer


def test_nudges_surveys_and_the_auto_solve_notice_go_to_the_requester_alone(
    desk: Desk
) -> None:
    desk.smtp(make_mail(cc="Bob <bob@customer.example>"))
    desk.ingest(make_mail(sender="dan@example.com", subject="Re: [#1] Printer on fire",
                          message_id="<dan1@example.com>", in_reply_to=desk.notice(1),
                          body="Please try the new driver.\n"))
    monday = datetime.fromisoformat(NOW)
    for later in (timedelta(days=2), timedelta(days=4), timedelta(days=8)):  # Wed, Fri, Tue
        desk.at(monday + later)
        desk.sweep()
    desk.deliver()

    assert desk.show(1)["status"] == "solved"
    ann = [plain_text(m) for m in desk.mail_to("ann@customer.example")]
    # acknowledgment, reply, two nudges, and the auto-solve notice that asks how we did
    assert len(ann) == 5
    [relay] = desk.mail_to("bob@customer.example")  # the engineer's reply, nothing else
    assert plain_text(relay).startswith("Please try the new driver.")


def test_each_address_gets_at_most_its_hourly_share_of_automatic_mail(desk: Desk) -> None:
    tickets = range(1, 8)
    for n in tickets:
        desk.ingest(make_mail(subject=f"Problem {n}", message_id=f"<p{n}@customer.example>"))
        desk.ingest(make_mail(sender="dan@example.com", subject=f"Re: [#{n}] Problem {n}",
                              message_id=f"<d{n}@example.com>",
                              in_reply_to=desk.notice(n), body="Try this.\n"))
    wednesday = datetime(2026, 11, 25, 10, tzinfo=LA)  # two business days later
    desk.at(wednesday)
    desk.sweep()

    nudged = [n for n in tickets if desk.show(n)["nudges_sent"] == 1]
    assert len(nudged) == 5  # outbound.auto_replies_per_hour
    waiting = [n for n in tickets if n not in nudged]
    assert all(any(e["kind"] == "followup_postponed" for e in desk.show(n)["events"])
               for n in waiting)

    desk.at(wednesday + timedelta(hours=1))
    desk.sweep()
    assert all(desk.show(n)["nudges_sent"] == 1 for n in tickets)


def test_notifications_about_one_sender_are_capped_and_what_was_held_is_counted(
    desk: Desk
) -> None:
    for n in range(12):
        desk.smtp(make_mail(sender=SPAMMER, subject=f"Buy now {n}",
                            message_id=f"<flood{n}@attacker.example>"), mail_from=SPAMMER)
    desk.deliver()

    assert len(desk.tickets()) == 12  # every mail kept on a ticket of its own
    assert len(desk.mail_to("dan@example.com")) == 10  # staff.notify_per_sender_per_hour
    held = [n for n in (11, 12) if desk.show(n)["messages"][0]["staff_notice"] == "held"]
    assert held == [11, 12]
    assert any(e["kind"] == "notification_held" for e in desk.show(12)["events"])

    desk.at(datetime.fromisoformat(NOW) + timedelta(minutes=61))
    desk.smtp(make_mail(sender=SPAMMER, subject="Buy now 12",
                        message_id="<flood12@attacker.example>"), mail_from=SPAMMER)
    desk.deliver()
    notice = plain_text(desk.mail_to("dan@example.com")[-1])
    assert (f"And 2 more mails from {SPAMMER} since the last notification about them, not "
            "notified (at most 10 notifications an hour about one sender); each is stored on "
            "its ticket: #11, #12\n") in notice
