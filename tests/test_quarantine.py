"""`maild quarantine list|show|replay`: an operator sees what was set aside and why, and
runs it again once the cause is fixed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from maild.db.raw_mail import IN_ROW_BYTES
from tests.conftest import Sink, using_postgresql
from tests.helpers import maild
from tests.mailbuilder import make_mail

AUTO_REPLY = make_mail(sender="Bob <bob@customer.example>", subject="Out of office",
                       message_id="<ooo@customer.example>",
                       headers={"Auto-Submitted": "auto-replied"}, body="Back Monday.\n")
# A sender with two addresses and no way to tell which one wrote: for an operator.
AMBIGUOUS = make_mail(sender="Bob bob@customer.example carl@customer.example",
                      subject="Who wrote me?", message_id="<who@customer.example>")


REFUSED_AUTHOR = "ann@customer.example"


@pytest.fixture
def desk_config(config_file: Path, database_url: str) -> Path:
    """A desk whose database refuses the messages of one customer (a trigger, as the
    database refuses a value it cannot hold), until `_mend` drops it."""
    assert maild(config_file, "db", "upgrade").exit_code == 0
    engine = create_engine(database_url)
    with engine.begin() as connection:
        if using_postgresql():
            connection.execute(text(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.author = '{REFUSED_AUTHOR}' THEN RAISE EXCEPTION 'row is too big' "
                "USING ERRCODE = '54000'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            connection.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON messages "
                                    "FOR EACH ROW EXECUTE FUNCTION refuse()"))
        else:
            connection.execute(text(
                f"CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.author = "
                f"'{REFUSED_AUTHOR}' BEGIN SELECT RAISE(ABORT, 'row is too big'); END"))
    engine.dispose()
    return config_file


def _mend(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER refuse ON messages" if using_postgresql()
                                else "DROP TRIGGER refuse"))
    engine.dispose()


def test_list_and_show_say_why_and_keep_the_bytes(config_file: Path) -> None:
    assert maild(config_file, "quarantine", "list").output == "nothing in quarantine\n"
    assert maild(config_file, "ingest", "-", stdin=AMBIGUOUS).exit_code == 65

    listed = maild(config_file, "quarantine", "list").output.splitlines()
    assert listed[0].split()[:2] == ["1", "held"]
    assert "Bob bob@customer.example" in listed[0]
    assert listed[1].strip().startswith("invalid sender:")
    assert "names several addresses" in listed[1]

    shown = json.loads(maild(config_file, "quarantine", "show", "1", "--json").output)
    assert shown["headers"]["subject"] == "Who wrote me?"
    assert shown["headers"]["message-id"] == "<who@customer.example>"
    assert shown["size"] == len(AMBIGUOUS)
    assert shown["channel"] == "ingest"
    assert shown["raw_path"] is None  # small: kept in the database
    assert f"{len(AMBIGUOUS)} bytes in the database" in maild(
        config_file, "quarantine", "show", "1").output

    raw = maild(config_file, "quarantine", "show", "1", "--raw")
    assert raw.stdout_bytes == AMBIGUOUS


def test_a_large_message_is_shown_and_replayed_from_its_file(config_file: Path) -> None:
    """Too large for a row of the database, a message is a file of the raw store, as all
    mail was before: every command reads it there."""
    large = make_mail(sender="Bob bob@customer.example carl@customer.example",
                      subject="The whole log", message_id="<log@customer.example>",
                      body="a line of the log, pasted whole\n" * (IN_ROW_BYTES // 30))
    assert len(large) > IN_ROW_BYTES
    assert maild(config_file, "ingest", "-", stdin=large).exit_code == 65

    shown = json.loads(maild(config_file, "quarantine", "show", "1", "--json").output)
    sha256 = hashlib.sha256(large).hexdigest()
    assert shown["raw_path"] is not None and shown["raw_path"].endswith(f"{sha256}.eml")
    assert Path(shown["raw_path"]).read_bytes() == large
    assert (shown["size"], shown["headers"]["subject"]) == (len(large), "The whole log")
    assert maild(config_file, "quarantine", "show", "1", "--raw").stdout_bytes == large
    replayed = maild(config_file, "quarantine", "replay", "1")
    assert (replayed.exit_code, replayed.output.startswith(
        "1: still quarantined: invalid sender")) == (65, True)

    Path(shown["raw_path"]).unlink()  # a partial restore of a backup
    missing = maild(config_file, "quarantine", "show", "1", "--json")
    assert json.loads(missing.output)["size"] is None
    assert "raw message missing from storage" in json.loads(
        missing.output)["headers"]["error"]
    gone = maild(config_file, "quarantine", "replay", "1")
    assert gone.exit_code == 65
    assert "its raw bytes are missing from storage" in gone.output
    assert f"restore {shown['raw_path']} first" in gone.output


def test_automatic_mail_for_no_ticket_is_ignored_with_its_reason_not_quarantined(
    config_file: Path, sink: Sink
) -> None:
    taken = maild(config_file, "ingest", "-", stdin=AUTO_REPLY)
    assert (taken.exit_code, taken.output) == (
        0, "-: ignored: automatic message that belongs to no ticket "
           "(Auto-Submitted: auto-replied)\n")
    assert maild(config_file, "quarantine", "list").output == "nothing in quarantine\n"
    listed = maild(config_file, "quarantine", "list", "--ignored").output.splitlines()
    assert listed[0].split()[:2] == ["1", "ignored"]
    assert "Bob <bob@customer.example>" in listed[0]
    assert listed[1].strip() == ("automatic message that belongs to no ticket "
                                 "(Auto-Submitted: auto-replied)")
    assert maild(config_file, "quarantine", "show", "1", "--raw").stdout_bytes == AUTO_REPLY
    # Taken again (an IMAP move that did not happen), it is still one entry.
    assert maild(config_file, "ingest", "-", stdin=AUTO_REPLY).exit_code == 0
    assert len(json.loads(maild(config_file, "quarantine", "list", "--ignored",
                                "--json").output)) == 1
    assert json.loads(maild(config_file, "tickets", "list", "--json").output) == []
    assert sink.messages() == []


def test_a_message_the_database_refused_goes_through_once_it_is_mended(
    desk_config: Path, database_url: str, sink: Sink
) -> None:
    assert maild(desk_config, "ingest", "-", stdin=make_mail()).exit_code == 65
    [entry] = json.loads(maild(desk_config, "quarantine", "list", "--json").output)
    assert entry["reason"].startswith("refused by the database:")
    assert "row is too big" in entry["reason"]
    assert json.loads(maild(desk_config, "tickets", "list", "--json").output) == []

    _mend(database_url)
    replayed = maild(desk_config, "quarantine", "replay", str(entry["id"]))
    assert replayed.exit_code == 0, replayed.output
    # The failed attempt may have used up a number (PostgreSQL sequences do not roll back).
    [ticket_id] = [t["id"] for t in json.loads(
        maild(desk_config, "tickets", "list", "--json").output)]
    assert replayed.output == f"1: released, ticket #{ticket_id}: new ticket, acknowledged\n"

    ticket = json.loads(maild(desk_config, "tickets", "show", str(ticket_id), "--json").output)
    assert ticket["messages"][0]["message_id"] == "<first@customer.example>"
    assert "Thank you for writing" in ticket["messages"][1]["body"]
    after = json.loads(maild(desk_config, "quarantine", "show", "1", "--json").output)
    assert (after["status"], after["replays"]) == ("released", 1)
    assert after["outcome"] == f"stored on ticket #{ticket_id}: new ticket, acknowledged"
    assert maild(desk_config, "quarantine", "list").output == "nothing in quarantine\n"
    again = maild(desk_config, "quarantine", "replay", "1")
    assert (again.exit_code, again.output) == (
        65, "1: quarantined message 1 was already released\n")


def test_what_still_fails_stays_held_with_the_reason_that_holds_now(config_file: Path) -> None:
    maild(config_file, "ingest", "-", stdin=AMBIGUOUS)
    replayed = maild(config_file, "quarantine", "replay", "--all")
    assert replayed.exit_code == 65
    assert replayed.output.startswith("1: still quarantined: invalid sender")
    shown = json.loads(maild(config_file, "quarantine", "show", "1", "--json").output)
    assert (shown["status"], shown["replays"]) == ("held", 1)
    assert len(json.loads(maild(config_file, "quarantine", "list", "--json").output)) == 1


def test_a_replay_whose_message_arrived_meanwhile_is_released_as_a_duplicate(
    desk_config: Path, database_url: str
) -> None:
    maild(desk_config, "ingest", "-", stdin=make_mail())  # refused by the database
    _mend(database_url)
    assert maild(desk_config, "ingest", "-", stdin=make_mail()).exit_code == 0  # resent
    replayed = maild(desk_config, "quarantine", "replay", "1")
    assert replayed.output == "1: released, a duplicate of <first@customer.example>\n"


def test_replay_needs_to_be_told_what(config_file: Path) -> None:
    result = maild(config_file, "quarantine", "replay")
    assert result.exit_code == 1
    assert "name the messages to replay, or give --all" in result.output
    assert maild(config_file, "quarantine", "show", "9").exit_code == 1
