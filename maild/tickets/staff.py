"""Who on the team receives maild's mail about a ticket: the notifications of what a customer
wrote, the SLA warnings and breaches, and the escalations (docs/design.md, "Who writes what").
"""

from __future__ import annotations

from maild.config import StaffConfig
from maild.db.models import Ticket

# The notices (outbox purposes) to the engineer whose address unproven mail used: that
# it was handled as a customer's, or, for a ticket it opened, asking them to confirm.
# Both together are capped per address and hour.
UNPROVEN_NOTICE = "staff_unproven"
CONFIRMATION_NOTICE = "staff_confirm"


def staff_recipients(ticket: Ticket, staff: StaffConfig, *, author: str | None = None
                     ) -> list[str]:
    """The assignee, or while there is none every staff address.

    `author` wrote the mail the notice is about: they need no copy of their own mail
    (one written in their name without proof is told to them apart)."""
    team = [ticket.assignee] if ticket.assignee else list(staff.addresses)
    return [address for address in team if address != author]


def escalation_recipients(ticket: Ticket, staff: StaffConfig) -> tuple[list[str], list[str]]:
    """(to, cc) of an escalation: the leads, or without leads the staff list; in copy,
    whoever else hears of the ticket (`staff_recipients`)."""
    leads = list(staff.leads) or list(staff.addresses)
    copied = [address for address in staff_recipients(ticket, staff) if address not in leads]
    return leads, copied
