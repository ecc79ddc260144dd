"""Reading results the way an operator would: through the ticket JSON."""

from __future__ import annotations

from typing import Any

from maild.app import App
from maild.ticket_views import get_ticket, ticket_json


def show(app: App, ticket_id: int) -> dict[str, Any]:
    with app.db.transaction() as session:
        return ticket_json(get_ticket(session, ticket_id))
