from __future__ import annotations

from maild.intake.commands import parse_commands


def test_plain_reply_has_no_commands() -> None:
    commands = parse_commands("Please try again.\n#status solved is not a command here")
    assert not commands.any
    assert commands.text.startswith("Please try again.")


def test_commands_on_the_first_lines() -> None:
    commands = parse_commands("#priority P1\n#assign Eve@Example.com\n\nHere is the fix.")
    assert (commands.priority, commands.assign, commands.status) == ("p1", "eve@example.com", None)
    assert commands.text == "Here is the fix."


def test_solve_hold_take_and_status() -> None:
    assert parse_commands("#solve").status == "solved"
    assert parse_commands("#hold").status == "on_hold"
    assert parse_commands("#take").assign == "me"
    assert parse_commands("#status on-hold").status == "on_hold"


def test_note_with_text_on_the_same_line() -> None:
    commands = parse_commands("#note they use the old plan\nmore detail")
    assert commands.internal
    assert commands.text == "they use the old plan\nmore detail"


def test_commands_after_a_note_with_text_are_commands() -> None:
    commands = parse_commands("#note customer is on the old plan\n#priority p1\n"
                              "#status open\n\nThey need the upgrade path.")
    assert commands.internal
    assert (commands.priority, commands.status) == ("p1", "open")
    assert commands.text == "customer is on the old plan\nThey need the upgrade path."


def test_a_line_after_a_note_that_is_no_command_is_refused_not_swallowed() -> None:
    commands = parse_commands("#note checked the logs\n#prio p1\nNothing there.")
    assert commands.errors == [
        "#prio: unknown command (known: #note #status #priority #assign #solve #hold "
        "#take #cause #cc)"]


def test_errors_are_collected() -> None:
    commands = parse_commands("#status closed\n#priority urgent\n#frobnicate\ntext")
    assert commands.errors == [
        "#status closed: the status must be one of new, open, pending, on_hold, solved",
        "#priority urgent: the priority must be one of p0, p1, p2, p3",
        "#frobnicate: unknown command (known: #note #status #priority #assign #solve #hold "
        "#take #cause #cc)",
    ]
    assert not commands.any  # nothing valid was understood, so nothing may change


def test_cc_names_people_to_take_part() -> None:
    commands = parse_commands("#cc Dora@Partner.example, <erin@partner.example>\n"
                              "#cc dora@partner.example\nWelcome, both.")
    assert commands.cc == ("dora@partner.example", "erin@partner.example")
    assert commands.any and not commands.errors
    assert commands.text == "Welcome, both."


def test_cc_without_an_address_is_an_error() -> None:
    assert parse_commands("#cc\nHello").errors == [
        "#cc: name the person by mail address, e.g. #cc bob@customer.example"]
    assert parse_commands("#cc dora at partner\nHello").errors == [
        "#cc dora: not a mail address", "#cc at: not a mail address",
        "#cc partner: not a mail address"]
