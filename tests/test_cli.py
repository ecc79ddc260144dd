"""The command line as an operator uses it: exit codes, JSON, and plain-language errors."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from maild.db.raw_mail import IN_ROW_BYTES
from tests.conftest import Sink, using_postgresql
from tests.helpers import maild
from tests.mailbuilder import make_mail


def test_ingest_exit_codes(config_file: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(make_mail())
    bad = tmp_path / "bad.eml"
    bad.write_bytes(make_mail(sender="nobody"))

    stored = maild(config_file, "ingest", str(good))
    assert stored.exit_code == 0, stored.output
    assert "ticket #1" in stored.output
    duplicate = maild(config_file, "ingest", str(good))
    assert duplicate.exit_code == 0
    assert "duplicate" in duplicate.output
    quarantined = maild(config_file, "ingest", str(bad))
    assert quarantined.exit_code == 65
    assert "quarantined: invalid sender" in quarantined.output


def test_ingest_from_stdin(config_file: Path) -> None:
    result = maild(config_file, "ingest", "-", stdin=make_mail())
    assert result.exit_code == 0, result.output
    shown = json.loads(maild(config_file, "tickets", "show", "1", "--json").output)
    assert shown["messages"][0]["body"] == "It is on fire."


def test_raw_mail_that_cannot_be_kept_is_a_temporary_failure(
    config_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "storage").mkdir()
    (tmp_path / "storage" / "raw").write_text("a file where the raw store should be")
    # Too large for a row of the database: it needs the raw store's files.
    large = make_mail(body="a line of the log, pasted whole\n" * (IN_ROW_BYTES // 30))
    result = maild(config_file, "ingest", "-", stdin=large)
    assert result.exit_code == 75
    assert "not stored, try again later: cannot store raw mail" in result.output
    # A small message is kept in the database, and taken all the same.
    assert maild(config_file, "ingest", "-", stdin=make_mail()).exit_code == 0


def test_unusable_storage_directory_is_a_temporary_failure(
    config_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "storage").write_text("a file where the storage directory should be")
    result = maild(config_file, "ingest", "-", stdin=make_mail())
    assert result.exit_code == 75
    assert "storage.dir" in result.output


def test_tickets_set_note_list_and_export(config_file: Path) -> None:
    maild(config_file, "ingest", "-", stdin=make_mail())
    changed = maild(config_file, "tickets", "set", "1", "--status", "on_hold",
                    "--priority", "p1", "--assignee", "Eve@Example.com")
    assert changed.exit_code == 0, changed.output
    assert maild(config_file, "tickets", "note", "1", "Waiting on the vendor").exit_code == 0

    listed = json.loads(maild(config_file, "tickets", "list", "--status", "on_hold",
                              "--json").output)
    assert [(t["id"], t["priority"], t["assignee"]) for t in listed] == [
        (1, "p1", "eve@example.com")]
    lines = maild(config_file, "tickets", "export").output.strip().splitlines()
    exported = [json.loads(line) for line in lines]
    assert len(exported) == 1
    assert exported[0]["messages"][-1]["kind"] == "internal"
    assert exported[0]["messages"][-1]["body"] == "Waiting on the vendor"
    assert exported[0] == json.loads(maild(config_file, "tickets", "show", "1", "--json").output)


def test_unknown_ticket_is_a_clear_error(config_file: Path) -> None:
    result = maild(config_file, "tickets", "show", "42")
    assert result.exit_code == 1
    assert "there is no ticket #42" in result.output


def test_customers_add_and_list(config_file: Path) -> None:
    added = maild(config_file, "customers", "add", "Customer Inc", "--domain", "customer.example",
                  "--tier", "enterprise", "--plan", "managed", "--contact",
                  "lead@customer.example", "--welcome")
    assert added.exit_code == 0, added.output
    assert "welcome mail queued" in added.output
    again = maild(config_file, "customers", "add", "Customer Inc", "--domain",
                  "customer.example", "--tier", "enterprise", "--welcome")
    assert "already welcomed, not sent again" in again.output
    [customer] = json.loads(maild(config_file, "customers", "list", "--json").output)
    assert customer["domains"] == ["customer.example"]
    assert customer["welcomed_at"] == "2026-11-23T18:00:00+00:00"


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[support]\naddress = "support@example.com"\n[outbound]\nport = "many"\n')
    result = maild(path, "check")
    assert result.exit_code == 78
    assert "outbound.port:" in result.output


def test_broken_template_is_named_by_check_and_stops_the_daemon(
    config_file: Path, tmp_path: Path
) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "ack.html.j2").write_text("<p>{% if ticket %}unclosed</p>\n")
    config_file.write_text(config_file.read_text() + f'\n[templates]\ndir = "{overrides}"\n')

    checked = maild(config_file, "check")
    assert checked.exit_code == 1
    assert "FAIL templates: ack.html.j2 line 1:" in checked.output
    ran = maild(config_file, "run")
    assert ran.exit_code == 78
    assert "ack.html.j2" in ran.output


def test_check_reports_each_server(config_file: Path) -> None:
    result = maild(config_file, "check")
    assert result.exit_code == 0, result.output
    assert "ok   database" in result.output
    assert "ok   outbound SMTP" in result.output


@pytest.mark.parametrize(("settings", "warned"), [
    ('[staff]\nverify = "none"\n[inbound_smtp]\nenabled = true\nhost = "0.0.0.0"\n',
     "the SMTP listener on 0.0.0.0:"),
    ('[staff]\nverify = "none"\n[[mailboxes]]\nname = "support"\nhost = "127.0.0.1"\n'
     'port = 1\nsecurity = "none"\nusername = "support@example.com"\n'
     'password_env = "HOME"\n', "mailbox support"),
])
def test_check_warns_when_anyone_who_can_write_in_is_trusted_as_staff(
    tmp_path: Path, sink: Sink, settings: str, warned: str
) -> None:
    path = tmp_path / "open.toml"
    path.write_text(f'[support]\naddress = "support@example.com"\n[storage]\n'
                    f'url = "sqlite:///{tmp_path}/m.db"\n[outbound]\nport = {sink.port}\n'
                    f"{settings}")
    result = maild(path, "check")
    [line] = [line for line in result.output.splitlines() if " staff: " in line]
    assert line.startswith('WARN staff: verify = "none" trusts the From header, and strangers '
                           "can write to maild (")
    assert warned in line


def test_check_does_not_warn_about_the_local_setup_or_the_default(
    tmp_path: Path, sink: Sink
) -> None:
    local = tmp_path / "local.toml"
    local.write_text(f'[support]\naddress = "support@example.com"\n[storage]\n'
                     f'url = "sqlite:///{tmp_path}/m.db"\n[outbound]\nport = {sink.port}\n'
                     '[staff]\nverify = "none"\n[inbound_smtp]\nenabled = true\n'
                     'host = "127.0.0.1"\nport = 1\n')
    assert "ok   staff: verify = \"none\"" in maild(local, "check").output
    default = tmp_path / "default.toml"
    default.write_text(local.read_text().replace('verify = "none"', ""))
    assert "ok   staff: verify = 'reply-token'" in maild(default, "check").output


def test_run_once_delivers_what_is_due(config_file: Path, sink: Sink, tmp_path: Path) -> None:
    maild(config_file, "ingest", "-", stdin=make_mail())
    left = tmp_path / "storage" / "raw" / "incoming.4242.1.7.tmp"  # a killed maild's
    left.parent.mkdir(exist_ok=True)
    left.write_bytes(b"half a batch")
    os.utime(left, (time.time() - 7200, time.time() - 7200))
    result = maild(config_file, "run", "--once")
    assert not left.exists()
    assert result.exit_code == 0, result.output
    assert "delivered 2" in result.output  # the acknowledgment, and the SE's notification
    assert sorted(m["Delivered-To"] for m in sink.messages()) == [
        "ann@customer.example", "dan@example.com"]


def test_tickets_show_speaks_business_time_and_links_follow_ups(config_file: Path) -> None:
    now = "2026-11-23T10:00:00.123456-08:00"
    maild(config_file, "ingest", "-", stdin=make_mail(), now=now)
    maild(config_file, "tickets", "set", "1", "--status", "closed", now=now)
    maild(config_file, "ingest", "-", now="2026-11-24T09:30:00-08:00", stdin=make_mail(
        subject="Re: Printer on fire", message_id="<again@customer.example>",
        in_reply_to="<first@customer.example>", body="It is on fire again.\n"))

    closed = maild(config_file, "tickets", "show", "1").output
    assert "created Mon 23 Nov 2026 10:00 PST, severity 2" in closed
    assert "--- Mon 23 Nov 2026 10:00 PST in public ann@customer.example" in closed
    assert "followed up in #2" in closed
    assert ".123456" not in closed and "+00:00" not in closed
    later = maild(config_file, "tickets", "show", "2").output
    assert "follow-up of #1" in later
    assert "first response due Tue 01 Dec 2026 09:30 PST" in later
    assert json.loads(maild(config_file, "tickets", "show", "1", "--json").output)[
        "follow_ups"] == [2]


def test_a_file_that_cannot_be_read_exits_66_and_the_others_are_taken(
    config_file: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(make_mail())
    result = maild(config_file, "ingest", str(tmp_path / "missing.eml"), str(good))
    assert result.exit_code == 66  # EX_NOINPUT, not 65: nothing was wrong with a message
    assert "missing.eml: cannot read: No such file or directory" in result.output
    assert "good.eml: ticket #1" in result.output


def test_a_large_file_is_taken_from_disk_exactly(config_file: Path, tmp_path: Path) -> None:
    from tests.test_large_mail import PDF, large_mail

    big = tmp_path / "big.eml"
    big.write_bytes(large_mail())
    result = maild(config_file, "ingest", str(big))
    assert result.exit_code == 0, result.output
    shown = json.loads(maild(config_file, "tickets", "show", "1", "--json").output)
    [pdf] = [a for a in shown["messages"][0]["attachments"] if a["filename"] == "logs.pdf"]
    stored = tmp_path / "storage" / "attachments" / pdf["sha256"][:2] / pdf["sha256"][2:4]
    assert (stored / f"{pdf['sha256']}.bin").read_bytes() == PDF


@pytest.mark.parametrize("command", [("tickets", "show"), ("tickets", "note"),
                                     ("quarantine", "show")])
def test_a_number_beyond_any_row_is_one_line(config_file: Path, command: tuple[str, str]
                                             ) -> None:
    extra = ("a note",) if command[1] == "note" else ()
    result = maild(config_file, *command, "99999999999999999999", *extra)
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1
    assert result.output.startswith("maild: there is no ")
    assert "99999999999999999999" in result.output


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[support]\naddress = "support@example.com"\nname = "Café"\n'
                     .encode("latin-1"))
    result = maild(path, "tickets", "list")
    assert result.exit_code == 78
    assert result.output.splitlines() == [
        f"maild: config: {path}: line 3: not UTF-8 text (byte 0xe9); save the file as UTF-8"]


@pytest.mark.parametrize("now", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_maild_now_out_of_range_is_one_line(config_file: Path, now: str) -> None:
    for command in (("tickets", "list"), ("report",), ("check",)):
        result = maild(config_file, *command, now=now)
        assert result.exit_code == 78, result.output
        assert result.output.splitlines() == [
            f"maild: config: MAILD_NOW: {now!r} is out of range (between 1970 and 9000)"]


def test_a_busy_port_on_run_is_one_line(config_file: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config_file.write_text(config_file.read_text()
                               + f"\n[inbound_smtp]\nenabled = true\nport = {port}\n")
        result = maild(config_file, "run")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"maild: inbound SMTP cannot listen on 127.0.0.1:{port}: Address already in use "
        "(in use by another program)"]


def test_commands_that_log_in_nowhere_need_no_password(config_file: Path) -> None:
    config_file.write_text(config_file.read_text().replace(
        "[outbound]\n", '[outbound]\nusername = "relay"\npassword_env = "MAILD_UNSET_RELAY"\n')
        + '\n[[mailboxes]]\nname = "support"\nhost = "127.0.0.1"\nusername = '
          '"support@example.com"\npassword_env = "MAILD_UNSET_IMAP"\n')
    for command in (("tickets", "list"), ("report",), ("ingest", "-")):
        result = maild(config_file, *command, stdin=make_mail())
        assert result.exit_code == 0, (command, result.output)

    ran = maild(config_file, "run", "--once")
    assert ran.exit_code == 78
    assert ran.output.splitlines() == [
        "maild: config: mailboxes[0].password_env: environment variable MAILD_UNSET_IMAP is "
        "not set",
        "maild: config: outbound.password_env: environment variable MAILD_UNSET_RELAY is not "
        "set"]
    sending = maild(config_file, "run", "--once", "--only", "outbound")
    assert "MAILD_UNSET_IMAP" not in sending.output and "MAILD_UNSET_RELAY" in sending.output
    checked = maild(config_file, "check")
    assert checked.exit_code == 1
    assert ("FAIL secrets: outbound.password_env: environment variable MAILD_UNSET_RELAY is "
            "not set") in checked.output


def test_a_database_in_a_missing_directory_is_refused(config_file: Path, tmp_path: Path
                                                       ) -> None:
    if using_postgresql():
        pytest.skip("a SQLite path")
    missing = tmp_path / "typo" / "maild.db"
    text = config_file.read_text()
    config_file.write_text(text.replace(text.split('url = "')[1].split('"')[0],
                                        f"sqlite:///{missing}"))
    result = maild(config_file, "tickets", "list")
    assert result.exit_code == 78
    assert result.output.splitlines() == [
        f"maild: config: storage.url: the database's directory {missing.parent} does not "
        "exist; create it, or correct the URL"]
    checked = maild(config_file, "check")
    assert checked.exit_code == 1
    assert (f"FAIL database: cannot open sqlite:///{missing}: storage.url: the database's "
            "directory") in checked.output
    assert not missing.parent.exists()

    # In storage.dir, which maild makes when it starts, the database is no mistake.
    fresh = tmp_path / "fresh"
    config_file.write_text(config_file.read_text()
                           .replace(f"sqlite:///{missing}", f"sqlite:///{fresh}/maild.db")
                           .replace(f'dir = "{tmp_path / "storage"}"', f'dir = "{fresh}"'))
    assert (f"ok   database: sqlite:///{fresh}/maild.db: made in storage.dir on the first "
            "start") in maild(config_file, "check").output
    assert maild(config_file, "tickets", "list").exit_code == 0
