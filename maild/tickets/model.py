"""The ticket model's vocabulary (docs/design.md, "Tickets"): statuses, priorities, customer
tiers, and the sets of statuses the rules speak of. Defined here once; the schema, the
service, the SLA clocks, triage, the report and the command line all read it from here.
"""

from __future__ import annotations

from typing import Literal, get_args

# new: no public reply from an engineer yet; open: the next step is ours; pending: waiting on
# the customer; on_hold: waiting on a third party; solved; closed: final (a later mail opens
# a follow-up ticket that links to it).
STATUSES = ("new", "open", "pending", "on_hold", "solved", "closed")

# The next step is ours: the resolution clock runs, and triage offers the ticket.
WAITING_ON_US = ("new", "open")

# Done with: no longer in the backlog or counted among a customer's open tickets.
RESOLVED = ("solved", "closed")

# Still to be done with: the backlog. Asked for by name (`IN`), the status index finds
# them without reading the resolved tickets, which are nearly all of a desk's.
UNRESOLVED = tuple(status for status in STATUSES if status not in RESOLVED)

Priority = Literal["p0", "p1", "p2", "p3"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
DEFAULT_PRIORITY: Priority = "p2"

# Highest first: triage ranks by this order after the priority.
TIERS = ("pre-sales", "enterprise", "team", "free", "open-source", "internal")
DEFAULT_TIER = "free"

# The actor of the events maild writes for what it does itself (nudges, auto-solves,
# notifications): the report tells its changes from people's by this name.
SYSTEM_ACTOR = "maild"
