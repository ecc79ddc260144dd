"""A customer registered after their first tickets came in: those tickets are theirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Sink, config_text
from tests.helpers import maild
from tests.mailbuilder import make_mail
from tests.test_report import SLA


@pytest.fixture
def cloud_config(tmp_path: Path, database_url: str, sink: Sink) -> Path:
    """The report's promises: p1 on the cloud plan 2 h to a first response, 8 h to
    resolve; p1 otherwise 4 h and 24 h."""
    config = tmp_path / "maild.toml"
    config.write_text(config_text(database_url, tmp_path / "storage", sink.port, SLA))
    return config


def test_adding_a_customer_links_its_earlier_tickets_and_plans_them_afresh(
    cloud_config: Path,
) -> None:
    def run(now: str, *args: str, stdin: bytes | None = None) -> str:
        result = maild(cloud_config, *args, stdin=stdin, now=f"2026-11-23T{now}:00-08:00")
        assert result.exit_code == 0, result.output
        return result.output

    def show(number: int) -> dict[str, Any]:
        return json.loads(run("10:30", "tickets", "show", str(number), "--json"))  # type: ignore[no-any-return]

    for number, sender in ((1, "x@newco.example"), (2, "y@newco.example"),
                           (3, "z@elsewhere.example"), (4, "boss@gmail.example")):
        run("10:00", "ingest", "-", stdin=make_mail(sender=sender, subject=f"Problem {number}",
                                                   message_id=f"<p{number}@c.example>"))
        run("10:00", "tickets", "set", str(number), "--priority", "p1")
    run("10:15", "tickets", "set", "2", "--status", "solved")
    assert show(1)["response_due_at"] == "2026-11-23T22:00:00+00:00"  # 4 h: no plan yet
    assert "free tier" in run("10:20", "tickets", "next")

    added = run("10:30", "customers", "add", "NewCo", "--domain", "newco.example",
                "--contact", "boss@gmail.example", "--plan", "cloud", "--tier", "enterprise")
    assert "3 earlier ticket(s) linked: #1, #2, #4" in added

    first = show(1)
    assert (first["organization"], first["tier"], first["plan"]) == (
        "NewCo", "enterprise", "cloud")
    # The cloud plan's promises, from when the ticket came in: 12:00 and 18:00.
    assert first["response_due_at"] == "2026-11-23T20:00:00+00:00"
    assert first["resolution_due_at"] == "2026-11-24T02:00:00+00:00"
    assert {"actor": "operator", "kind": "customer", "old": None, "new": "NewCo",
            "at": "2026-11-23T18:30:00+00:00", "detail": None} in first["events"]
    assert show(4)["organization"] == "NewCo"  # a contact at another domain
    solved = show(2)
    assert solved["organization"] == "NewCo"
    assert solved["response_due_at"] == "2026-11-23T22:00:00+00:00"  # as it was handled
    assert show(3)["organization"] is None
    assert run("10:40", "tickets", "next").splitlines()[1].startswith(
        "  first because: p1, enterprise tier, first response due Mon 23 Nov 12:00 PST")
    assert "linked" not in run("10:45", "customers", "add", "NewCo", "--domain",
                               "newco.example", "--plan", "cloud", "--tier", "enterprise")
