"""Threat: an engineer's out-of-office speaking for the desk.

Exchange answers the notification an engineer gets with "Automatic reply: …",
`X-Auto-Response-Suppress: All` and no Auto-Submitted header. Taken for the engineer's
reply, it would be relayed to the customer from the support address, count as the first
response (stopping the SLA clock) and start the nudges. Staff automatic mail, in any of
its forms, is kept on the ticket as an internal record and changes nothing.
"""

from __future__ import annotations

import pytest

from tests.mailbuilder import make_mail
from tests.security.conftest import Desk

CUSTOMER = "ann@customer.example"

FORMS = {
    "exchange": ("Automatic reply: [#1] Printer on fire", {"X-Auto-Response-Suppress": "All"}),
    "subject only": ("Abwesenheitsnotiz: [#1] Printer on fire", {}),
}


@pytest.mark.parametrize("form", FORMS)
def test_an_engineers_out_of_office_is_never_relayed_and_changes_nothing(
    desk: Desk, form: str
) -> None:
    desk.smtp(make_mail(), mail_from=CUSTOMER)
    desk.deliver()
    [notification] = desk.mail_to("dan@example.com")
    before = desk.show(1)

    subject, headers = FORMS[form]
    desk.smtp(make_mail(sender="Dan Engineer <dan@example.com>", subject=subject,
                        message_id="<ooo@example.com>",
                        in_reply_to=str(notification["Message-ID"]), headers=headers,
                        body="I am out of the office until Monday.\n"),
              mail_from="dan@example.com")
    desk.deliver()

    assert len(desk.mail_to(CUSTOMER)) == 1  # the acknowledgment, nothing since
    ticket = desk.show(1)
    kept = ticket["messages"][-1]
    assert (kept["author"], kept["kind"], kept["body"]) == (
        "dan@example.com", "internal", "I am out of the office until Monday.")
    for key in ("status", "assignee", "first_response_at", "response_due_at",
                "followup_due_at", "nudges_sent"):
        assert ticket[key] == before[key], key
