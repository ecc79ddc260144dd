"""A template that cannot render fails its one mail, visibly, and `maild check` finds it
first: the file, the line, the variable."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maild.clock import FixedClock
from maild.config import Config
from maild.db.models import OutboxMail
from maild.intake.pipeline import ingest
from maild.outbound.samples import samples
from maild.outbound.templates import SHIPPED_TEMPLATES, TEMPLATE_NAMES, Templates
from maild.runtime.app import App, build_app
from maild.tickets.customers import add_customer
from tests.conftest import START, mailbox_toml
from tests.helpers import maild, notice_to, show
from tests.mailbuilder import make_mail, staff_reply

TYPO = "{{ customer.nmae }}"


def _override(config_file: Path, tmp_path: Path, name: str, change: str) -> Path:
    """The shipped template `name` in an override directory, with `change` made at the
    start of its third line; the config points at the directory."""
    overrides = tmp_path / "templates"
    overrides.mkdir(exist_ok=True)
    lines = (SHIPPED_TEMPLATES / name).read_text().splitlines(keepends=True)
    lines[2] = change + lines[2]
    (overrides / name).write_text("".join(lines))
    if "[templates]" not in config_file.read_text():
        config_file.write_text(config_file.read_text() + f'\n[templates]\ndir = "{overrides}"\n')
    return overrides / name


def _ticket(config_file: Path, number: int) -> dict:  # type: ignore[type-arg]
    shown = maild(config_file, "tickets", "show", str(number), "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)  # type: ignore[no-any-return]


def _mail_failed(ticket: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["detail"] for e in ticket["events"] if e["kind"] == "mail_failed"]


def test_check_names_the_file_line_and_variable(config_file: Path, tmp_path: Path) -> None:
    path = _override(config_file, tmp_path, "ack.txt.j2", f"Dear {TYPO},\n")
    checked = maild(config_file, "check")
    assert checked.exit_code == 1
    problems = [line for line in checked.output.splitlines() if line.startswith("FAIL")]
    # One line per problem: a customer of an organisation, and a sender of none.
    assert len(problems) == 2
    assert problems[0].startswith(
        f"FAIL templates: {path} line 3: 'maild.db.models.Customer object' has no "
        "attribute 'nmae' (when new, a customer of an organisation, and ")
    assert problems[1].startswith(
        f"FAIL templates: {path} line 3: 'None' has no attribute 'nmae' (when new, a "
        "sender of no known organisation, who gave no name")


def test_check_renders_the_situations_a_mail_meets(config_file: Path, tmp_path: Path) -> None:
    """An earlier ticket exists only in a follow-up's acknowledgment; the HTML is checked
    as well as the text."""
    path = _override(config_file, tmp_path, "ack.html.j2", "<p>After #{{ follows.id }}</p>\n")
    checked = maild(config_file, "check")
    assert checked.exit_code == 1
    assert f"FAIL templates: {path} line 3: 'None' has no attribute 'id' (when new, " \
        in checked.output
    assert "following up" not in checked.output  # where there is one, it renders


@pytest.mark.parametrize("variant", ["override", "shipped"])
def test_shipped_templates_render_in_every_situation(config: Config, tmp_path: Path,
                                                     variant: str) -> None:
    """Every template the desk ships, in every sample situation, and an override that
    only copies them (its HTML twins with it), render without a problem."""
    directory = None
    if variant == "override":
        directory = tmp_path / "copies"
        directory.mkdir()
        for source in SHIPPED_TEMPLATES.glob("*.j2"):
            (directory / source.name).write_text(source.read_text())
    templates = Templates(directory)
    found = samples(config, FixedClock(START))
    assert {sample.template for sample in found} == set(TEMPLATE_NAMES)
    problems = [f"{sample.template} ({sample.situation}): {problem}"
                for sample in found
                for problem in templates.render_problems(sample.template, sample.context)]
    assert problems == []


def test_ingest_keeps_the_mail_when_its_acknowledgment_fails(
    config_file: Path, tmp_path: Path
) -> None:
    path = _override(config_file, tmp_path, "ack.txt.j2", f"Dear {TYPO},\n")
    first = maild(config_file, "ingest", "-", stdin=make_mail())
    assert first.exit_code == 0, first.output
    assert "ticket #1: new ticket, not acknowledged" in first.output

    ticket = _ticket(config_file, 1)
    assert [m["body"] for m in ticket["messages"]] == ["It is on fire."]
    assert _mail_failed(ticket) == [
        f"acknowledgment not sent: {path} line 3: 'None' has no attribute 'nmae'"]
    assert "notified" in [e["kind"] for e in ticket["events"]]  # the engineer still is

    # The customer's reply, and another customer's new mail, go on as ever.
    reply = maild(config_file, "ingest", "-", stdin=make_mail(
        subject="Re: [#1] Printer on fire", body="Still burning.",
        message_id="<second@customer.example>", in_reply_to="<first@customer.example>"))
    assert "ticket #1:" in reply.output
    other = maild(config_file, "ingest", "-", stdin=make_mail(
        sender="Bob <bob@elsewhere.example>", message_id="<bob@elsewhere.example>"))
    assert "ticket #2: new ticket, not acknowledged" in other.output
    assert [m["body"] for m in _ticket(config_file, 1)["messages"]] == \
        ["It is on fire.", "Still burning."]

    # Mended, the template acknowledges the next mail: nothing was left stuck.
    path.unlink()
    mended = maild(config_file, "ingest", "-", stdin=make_mail(
        sender="Cy <cy@third.example>", message_id="<cy@third.example>"))
    assert "ticket #3: new ticket, acknowledged" in mended.output


def test_a_failing_notification_fails_alone(config: Config, tmp_path: Path) -> None:
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "notify.txt.j2").write_text(
        "Subject: [#{{ ticket.id }}] {{ ticket.subject }}\n\n{{ mesage.body }}\n")
    app = build_app(config.model_copy(update={
        "templates": config.templates.model_copy(update={"dir": overrides})}),
        FixedClock(START))
    try:
        result = ingest(app.intake, make_mail(), "smtp")
        assert (result.outcome, result.ticket_id) == ("stored", 1)
        with app.db.transaction() as session:
            queued = session.scalars(select(OutboxMail.purpose)).all()
        assert queued == ["ack"]
        ticket = show(app, 1)
        assert _mail_failed(ticket) == [
            f"notification not sent: {overrides / 'notify.txt.j2'} line 3: "
            "'mesage' is undefined"]
        assert "notified" not in [e["kind"] for e in ticket["events"]]
        assert ticket["messages"][0]["staff_notice"] is None
    finally:
        app.close()


def test_the_log_names_the_ticket(config_file: Path, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
    _override(config_file, tmp_path, "ack.txt.j2", f"Dear {TYPO},\n")
    maild(config_file, "ingest", "-", stdin=make_mail())
    failed = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(failed) == 1
    assert re.match(r"ticket #1: acknowledgment not sent for <first@customer\.example>: "
                    r"template .*ack\.txt\.j2 line 3: 'None' has no attribute 'nmae'",
                    failed[0])


def test_samples_give_each_template_what_its_live_mail_gives_it(
    app: App, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The samples `maild check` renders hold the very variables the live mails hold: a
    variable added to a mail and not to its samples fails here, not at a customer's."""
    given: dict[str, set[str]] = {}
    render = Templates.render

    def recording(self: Templates, name: str, context: dict[str, Any]) -> Any:
        given.setdefault(name, set()).update(context)
        return render(self, name, context)

    # A spy, not a stand-in: the real render runs, and its context is noted.
    monkeypatch.setattr(Templates, "render", recording)

    # intake/apply.py: the acknowledgment and notification; an engineer's reply, relayed;
    # commands not understood.
    ticket_id = ingest(app.intake, make_mail(), "test").ticket_id
    assert ticket_id is not None
    ingest(app.intake, staff_reply(ticket_id, "#sovle\n", "<bad@example.com>",
                                   answering=notice_to(app, ticket_id)), "test")
    ingest(app.intake, staff_reply(ticket_id, "Unplug it.\n", "<dan1@example.com>",
                                   answering=notice_to(app, ticket_id)), "test")
    # intake/apply.py: a claimed severity the engineer's #priority changes.
    claimed = ingest(app.intake, make_mail(subject="Severity 1: production down",
                                           message_id="<sev1@customer.example>"),
                     "test").ticket_id
    assert claimed is not None
    ingest(app.intake, staff_reply(claimed, "#priority p2\n#note only a report\n",
                                   "<triage@example.com>",
                                   answering=notice_to(app, claimed)), "test")
    # tickets/followups.py and surveys.py: each nudge, the auto-solve (which asks how we
    # did itself), and the survey of a ticket an engineer solved.
    for _ in range(4):
        clock.advance(timedelta(days=7))
        app.followups.send()
    solved = ingest(app.intake, make_mail(sender="Cy <cy@customer.example>",
                                          message_id="<cy@customer.example>"), "test").ticket_id
    assert solved is not None
    ingest(app.intake, staff_reply(solved, "#solve\nFixed.\n", "<dan2@example.com>",
                                   answering=notice_to(app, solved)), "test")
    app.surveys.send()
    # tickets/alerts.py: a ticket nobody answers, warned about, breached, escalated.
    ingest(app.intake, make_mail(sender="Bob <bob@elsewhere.example>",
                                 message_id="<bob@elsewhere.example>"), "test")
    for _ in range(20):
        clock.advance(timedelta(days=1))
        app.sla_alerts.send()
    # tickets/customers.py: the welcome mail.
    with app.db.transaction() as session:
        add_customer(app.mails, session, "Acme", domains=["acme.example"],
                     contacts=["ann@acme.example"], welcome=True)

    assert set(given) >= {"ack", "notify", "reply", "command_error", "nudge", "auto_solved",
                          "survey", "sla_alert", "escalation", "welcome", "severity_changed"}
    sampled: dict[str, set[str]] = {}
    for sample in samples(app.config, clock):
        sampled.setdefault(sample.template, set()).update(sample.context)
    assert {name: sampled[name] for name in given} == given


def test_run_names_a_template_that_cannot_render_at_start_and_still_stores_mail(
    config_file: Path, tmp_path: Path, imap_account: Any
) -> None:
    # It compiles, so the start goes on; rendered as `maild check` renders it, it fails
    # for a sender of no known organisation: said at start, before a customer meets it.
    path = _override(config_file, tmp_path, "ack.txt.j2", f"Dear {TYPO},\n")
    config_file.write_text(config_file.read_text() + mailbox_toml(imap_account))
    imap_account.append(make_mail())

    ran = subprocess.run(
        [sys.executable, "-m", "maild", "--config", str(config_file), "run", "--once"],
        env={**os.environ, "MAILD_NOW": START.isoformat(),
             "MAILD_TEST_IMAP_SUPPORT": imap_account.password},
        capture_output=True, text=True, timeout=120, check=False)

    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("received 1, duplicates 0, quarantined 0, ignored 0;")
    warned = [line for line in ran.stderr.splitlines()
              if "WARNING" in line and "cannot be rendered" in line]
    assert len(warned) == 1, ran.stderr  # one line for the template, whatever it meets
    assert (f"template ack.txt.j2 cannot be rendered: {path} line 3: 'maild.db.models."
            "Customer object' has no attribute 'nmae' (when new, a customer of an "
            "organisation, and ") in warned[0]
    ticket = _ticket(config_file, 1)
    assert [m["body"] for m in ticket["messages"]] == ["It is on fire."]
    assert _mail_failed(ticket) == [
        f"acknowledgment not sent: {path} line 3: 'None' has no attribute 'nmae'"]
