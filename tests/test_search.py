"""`maild tickets search`: full-text over subjects and messages, on SQLite and PostgreSQL
alike, current the moment a mail is stored."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import insert

from maild.clock import FixedClock
from maild.db.database import Database
from maild.db.migrate import MIGRATIONS, upgrade
from maild.db.models import Message, Ticket
from maild.intake.pipeline import ingest, intake_batch
from maild.runtime.app import App
from maild.tickets.customers import add_customer
from tests.helpers import maild, notice_to, statements
from tests.mailbuilder import make_mail


def write(app: App, clock: FixedClock, n: int, subject: str, body: str,
          sender: str = "ann@customer.example") -> int:
    clock.set(clock.now() + timedelta(minutes=5))
    ticket_id = ingest(app.intake, make_mail(sender=sender, subject=subject, body=body,
                                             message_id=f"<m{n}@customer.example>"),
                       "test").ticket_id
    assert ticket_id is not None
    return ticket_id


def search(config_file: Path, clock: FixedClock, *args: str) -> list[dict[str, Any]]:
    found = maild(config_file, "tickets", "search", *args, "--json",
                  now=clock.now().isoformat())
    assert found.exit_code == 0, found.output
    result: list[dict[str, Any]] = json.loads(found.output)
    return result


def ids(found: list[dict[str, Any]]) -> list[int]:
    return [t["id"] for t in found]


def desk(app: App, clock: FixedClock) -> dict[str, int]:
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Firma GmbH", domains=["firma.example"],
                     tier="enterprise", plan="managed")
    tickets = {
        "resize": write(app, clock, 1, "Größenänderung schlägt fehl",
                        "Die Größenänderung des Volumes bricht nach 10 % ab.\n",
                        sender="kunde@firma.example"),
        "cafe": write(app, clock, 2, "Menu page", "The café page shows error 500.\n"),
        "printer": write(app, clock, 3, "Printer on fire", "Error E42 on the display.\n"),
        "jam": write(app, clock, 4, "Paper jam", "The printer jams on every page.\n",
                     sender="bob@other.example"),
    }
    # An engineer's answer is searchable too: how it was solved.
    ingest(app.intake, make_mail(sender="dan@example.com",
                                 subject=f"Re: [#{tickets['printer']}] Printer on fire",
                                 message_id="<fix@example.com>",
                                 in_reply_to=notice_to(app, tickets["printer"]),
                                 body="#solve\nReplace the fuser unit; E42 means the fuser "
                                      "overheats.\n"), "test")
    return tickets


def test_words_in_subjects_and_bodies_in_any_language(
    app: App, clock: FixedClock, config_file: Path
) -> None:
    t = desk(app, clock)
    assert ids(search(config_file, clock, "Größenänderung")) == [t["resize"]]
    assert ids(search(config_file, clock, "größenänderung", "volumes")) == [t["resize"]]
    assert ids(search(config_file, clock, "café")) == [t["cafe"]]
    assert ids(search(config_file, clock, "CAFÉ")) == [t["cafe"]]
    assert ids(search(config_file, clock, "fuser")) == [t["printer"]]  # the engineer's reply
    assert ids(search(config_file, clock, "printer", "display")) == [t["printer"]]
    assert search(config_file, clock, "printer", "café") == []  # every word, one message
    # maild's own acknowledgments say the same in every ticket: they are not searched.
    assert search(config_file, clock, "writing") == []


def test_ranked_subject_first_and_newest_first_among_equals(
    app: App, clock: FixedClock, config_file: Path
) -> None:
    t = desk(app, clock)
    # "printer" is the subject of one ticket and in the body of a newer one.
    assert ids(search(config_file, clock, "printer")) == [t["printer"], t["jam"]]
    older = write(app, clock, 5, "VPN drops", "The VPN drops every hour.\n",
                  sender="x@one.example")
    newer = write(app, clock, 6, "VPN drops", "The VPN drops every hour.\n",
                  sender="y@two.example")
    assert ids(search(config_file, clock, "vpn")) == [newer, older]


def test_a_ticket_written_a_moment_ago_is_found_at_once(
    app: App, clock: FixedClock, config_file: Path
) -> None:
    desk(app, clock)
    just_now = write(app, clock, 7, "Kerberos ticket expired",
                     "kinit says the clock skew is too great.\n")
    assert ids(search(config_file, clock, "skew")) == [just_now]


def test_filters_by_status_and_customer(app: App, clock: FixedClock, config_file: Path
                                        ) -> None:
    t = desk(app, clock)
    assert ids(search(config_file, clock, "error")) == [t["printer"], t["cafe"]]
    assert ids(search(config_file, clock, "error", "--status", "solved")) == [t["printer"]]
    assert ids(search(config_file, clock, "error", "--status", "new")) == [t["cafe"]]
    assert ids(search(config_file, clock, "page", "--customer", "other.example")) == [t["jam"]]
    assert ids(search(config_file, clock, "ab", "--customer", "FIRMA.example")) == [
        t["resize"]]


def test_the_json_and_the_text(app: App, clock: FixedClock, config_file: Path) -> None:
    t = desk(app, clock)
    [found] = search(config_file, clock, "overheats")
    assert set(found) == {"id", "subject", "status", "priority", "requester", "organization",
                          "assignee", "created_at", "solved_at", "cause", "score",
                          "matching_messages", "excerpt"}
    assert (found["id"], found["subject"], found["status"], found["assignee"]) == (
        t["printer"], "Printer on fire", "solved", "dan@example.com")
    assert found["matching_messages"] == 1
    assert found["excerpt"] == "Replace the fuser unit; E42 means the fuser overheats."
    assert isinstance(found["score"], float) and found["score"] > 0
    [resize] = search(config_file, clock, "Größenänderung")
    assert (resize["organization"], resize["matching_messages"]) == ("Firma GmbH", 1)

    shown = maild(config_file, "tickets", "search", "Größenänderung")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        f"#{t['resize']:<5} new      Mon 23 Nov 2026 10:05 PST  Größenänderung schlägt fehl"
        "  (Firma GmbH)",
        "       Die Größenänderung des Volumes bricht nach 10 % ab.",
    ]
    nothing = maild(config_file, "tickets", "search", "zebra")
    assert (nothing.exit_code, nothing.output) == (0, "no ticket holds those words\n")
    empty = maild(config_file, "tickets", "search", "--", "!!")
    assert empty.exit_code != 0 and "give a word to search for" in empty.output


@pytest.mark.empty_database
def test_the_migration_indexes_the_messages_already_stored(
    clock: FixedClock, config_file: Path, database_url: str
) -> None:
    database = Database(database_url)
    try:
        # A desk as it stood before search existed, with a ticket and its messages.
        upgrade(database, str(ScriptDirectory(str(MIGRATIONS)).get_revision(
            "0016").down_revision))
        now = clock.now()
        with database.engine.begin() as connection:
            connection.execute(insert(Ticket.__table__).values(
                id=7, subject="Kühlschrank defekt", status="solved", priority="p2",
                requester="ann@customer.example", created_at=now, updated_at=now,
                nudges_sent=0, sla_alerts_sent=[]))
            for n, (kind, body) in enumerate([
                    ("public", "Der Kühlschrank kühlt nicht mehr."),
                    ("system", "Thank you for writing to Example Support."),
                    ("public", "Replace the compressor relay.")]):
                connection.execute(insert(Message.__table__).values(
                    ticket_id=7, message_id=f"<old{n}@customer.example>", direction="in",
                    kind=kind, author="ann@customer.example", created_at=now,
                    subject="Kühlschrank defekt", body=body, channel="imap",
                    attachments=[]))
        upgrade(database)
    finally:
        database.dispose()
    assert ids(search(config_file, clock, "kühlschrank")) == [7]
    assert [t["matching_messages"] for t in search(config_file, clock, "compressor")] == [1]
    assert search(config_file, clock, "writing") == []


def test_a_batchs_messages_are_indexed_together_and_one_that_failed_is_not(
    app: App, clock: FixedClock, config_file: Path
) -> None:
    """The messages of one batch are made searchable in its transaction, with one
    statement for all of them (on SQLite; PostgreSQL's index is a generated column);
    a message whose savepoint was undone is not in the index."""
    words = ["aardvark", "bittern", "caracal", "dugong", "echidna"]
    with statements(app.db.engine) as given, intake_batch(app.intake, "test") as batch:
        for n, word in enumerate(words):
            batch.ingest(make_mail(sender=f"c{n}@customer.example", subject=f"About {word}",
                                   message_id=f"<b{n}@customer.example>",
                                   body=f"The {word} is missing.\n"))
        with pytest.raises(RuntimeError), batch.session.begin_nested():
            batch.ingest(make_mail(sender="x@customer.example", subject="About a fossa",
                                   message_id="<undone@customer.example>",
                                   body="The fossa is missing.\n"))
            raise RuntimeError("undone")
    indexing = [s for s, _ in given if s.lstrip().startswith("INSERT INTO message_search")]
    assert len(indexing) == (0 if app.db.is_postgresql else 1)
    for word in words:
        assert len(search(config_file, clock, word)) == 1, word
    assert search(config_file, clock, "fossa") == []
