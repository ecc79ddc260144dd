"""Reading results the way an operator would: the command line and the ticket JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from maild.app import App
from maild.cli import main
from maild.ticket_views import get_ticket, ticket_json

# Monday 23 November 2026, 10:00 in Los Angeles: the start of every story.
NOW = "2026-11-23T10:00:00-08:00"


def maild(config_file: Path, *args: str, stdin: bytes | None = None, now: str = NOW) -> Result:
    """The command line, in-process, as an operator runs it at `now`."""
    return CliRunner().invoke(main, ["--config", str(config_file), *args], input=stdin,
                              env={"MAILD_NOW": now}, catch_exceptions=False)


def show(app: App, ticket_id: int) -> dict[str, Any]:
    with app.db.transaction() as session:
        return ticket_json(get_ticket(session, ticket_id))
