"""`maild quarantine list|show|replay`: an operator sees what was set aside and why, and
runs it again once the cause is fixed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maild.config import parse_config
from tests.conftest import Sink, config_text
from tests.helpers import maild
from tests.mailbuilder import make_mail

AUTO_REPLY = make_mail(sender="Bob <bob@customer.example>", subject="Out of office",
                       message_id="<ooo@customer.example>",
                       headers={"Auto-Submitted": "auto-replied"}, body="Back Monday.\n")
# A sender with two addresses and no way to tell which one wrote: for an operator.
AMBIGUOUS = make_mail(sender="Bob bob@customer.example carl@customer.example",
                      subject="Who wrote me?", message_id="<who@customer.example>")


@pytest.fixture
def own_templates(tmp_path: Path) -> Path:
    """An operator's template directory whose acknowledgment has a typo in a variable."""
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "ack.txt.j2").write_text(
        "Subject: Re: [#{{ ticket.id }}] {{ ticket.subject }}\n\nHello {{ ticket.requestor }},\n"
        "we have your mail.\n")
    return directory


@pytest.fixture
def desk_config(tmp_path: Path, database_url: str, sink: Sink, own_templates: Path) -> Path:
    path = tmp_path / "maild.toml"
    path.write_text(config_text(database_url, tmp_path / "storage", sink.port,
                                extra=f'\n[templates]\ndir = "{own_templates}"\n'))
    return path


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

    raw = maild(config_file, "quarantine", "show", "1", "--raw")
    assert raw.stdout_bytes == AMBIGUOUS


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


def test_a_message_quarantined_by_a_broken_template_goes_through_once_it_is_fixed(
    desk_config: Path, own_templates: Path, sink: Sink
) -> None:
    assert maild(desk_config, "ingest", "-", stdin=make_mail()).exit_code == 65
    [entry] = json.loads(maild(desk_config, "quarantine", "list", "--json").output)
    assert "internal error while processing" in entry["reason"]
    assert "requestor" in entry["reason"]
    assert json.loads(maild(desk_config, "tickets", "list", "--json").output) == []

    (own_templates / "ack.txt.j2").write_text(
        "Subject: Re: [#{{ ticket.id }}] {{ ticket.subject }}\n\nHello {{ ticket.requester }},\n"
        "we have your mail.\n")
    replayed = maild(desk_config, "quarantine", "replay", str(entry["id"]))
    assert replayed.exit_code == 0, replayed.output
    # The failed attempt may have used up a number (PostgreSQL sequences do not roll back).
    [ticket_id] = [t["id"] for t in json.loads(
        maild(desk_config, "tickets", "list", "--json").output)]
    assert replayed.output == f"1: released, ticket #{ticket_id}: new ticket, acknowledged\n"

    ticket = json.loads(maild(desk_config, "tickets", "show", str(ticket_id), "--json").output)
    assert ticket["messages"][0]["message_id"] == "<first@customer.example>"
    assert "Hello ann@customer.example" in ticket["messages"][1]["body"]
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
    desk_config: Path, own_templates: Path
) -> None:
    maild(desk_config, "ingest", "-", stdin=make_mail())  # quarantined by the broken template
    (own_templates / "ack.txt.j2").unlink()  # back to the shipped one
    assert maild(desk_config, "ingest", "-", stdin=make_mail()).exit_code == 0  # resent
    replayed = maild(desk_config, "quarantine", "replay", "1")
    assert replayed.output == "1: released, a duplicate of <first@customer.example>\n"


def test_a_missing_raw_file_is_said_plainly(config_file: Path, tmp_path: Path) -> None:
    maild(config_file, "ingest", "-", stdin=AMBIGUOUS)
    config = parse_config(config_file.read_text())
    for raw in (config.storage.dir / "raw").rglob("*.eml"):
        raw.unlink()
    replayed = maild(config_file, "quarantine", "replay", "1")
    assert replayed.exit_code == 65
    assert "its raw bytes are missing from storage" in replayed.output
    assert "restore " in replayed.output


def test_replay_needs_to_be_told_what(config_file: Path) -> None:
    result = maild(config_file, "quarantine", "replay")
    assert result.exit_code == 1
    assert "name the messages to replay, or give --all" in result.output
    assert maild(config_file, "quarantine", "show", "9").exit_code == 1
