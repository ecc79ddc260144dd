"""The weekly digest to the leads: the past week's report as a mail with a text part and
an HTML part whose charts are tables, on the schedule in the config, once per week
however many schedulers run."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from maild.clock import FixedClock
from maild.config import Config, DigestConfig, parse_config
from maild.db.models import OutboxMail
from maild.runtime.app import App, build_app
from maild.tickets.digest import latest_due
from tests.conftest import Sink, config_text
from tests.helpers import at_once, delivered_notice, maild
from tests.mailbuilder import make_mail, plain_text, staff_reply

LA = ZoneInfo("America/Los_Angeles")
DIGEST = """
[digest]
to = ["lead@example.com", "Boss@Example.com"]
weekday = "mon"
time = "08:00"
"""


def digest_config(database_url: str, tmp_path: Path, sink: Sink) -> str:
    return config_text(database_url, tmp_path / "storage", sink.port, DIGEST)


@pytest.fixture
def digest_file(tmp_path: Path, database_url: str, sink: Sink) -> Path:
    path = tmp_path / "maild.toml"
    path.write_text(digest_config(database_url, tmp_path, sink))
    return path


def digests(sink: Sink) -> list[str]:
    """The Message-IDs of the digests delivered, one per mail (the sink keeps a mail with
    all its recipients once)."""
    return [str(m["Message-ID"]) for m in sink.messages() if "digest" in str(m["Message-ID"])]


def run_once(config: Path, now: str) -> str:
    result = maild(config, "run", "--once", now=now)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_schedule_in_the_business_time_zone() -> None:
    monday_eight = DigestConfig(weekday="mon", time=datetime(2026, 1, 1, 8).time())
    just_before = datetime(2026, 11, 30, 7, 59, tzinfo=LA)
    assert latest_due(monday_eight, LA, just_before) == datetime(2026, 11, 23, 8, tzinfo=LA)
    assert latest_due(monday_eight, LA, just_before.replace(minute=0, hour=8)) == datetime(
        2026, 11, 30, 8, tzinfo=LA)
    # Across the change to summer time, still 08:00 on the wall clock.
    assert latest_due(monday_eight, LA, datetime(2027, 3, 15, 9, tzinfo=LA)).utcoffset() \
        == datetime(2027, 3, 15, 8, tzinfo=LA).utcoffset()
    friday = DigestConfig(weekday="fri", time=datetime(2026, 1, 1, 16, 30).time())
    assert latest_due(friday, LA, datetime(2026, 11, 30, 7, tzinfo=LA)) == datetime(
        2026, 11, 27, 16, 30, tzinfo=LA)


def test_the_digest_goes_out_each_monday_as_text_and_html(
    digest_file: Path, sink: Sink
) -> None:
    # The first start sends the week that ended last Monday 08:00, late; then nothing
    # more until the next Monday 08:00.
    assert "weekly digest queued" in run_once(digest_file, "2026-11-23T10:00:00-08:00")
    assert "weekly digest queued" not in run_once(digest_file, "2026-11-23T10:05:00-08:00")
    assert digests(sink) == ["<maild.digest.2026-W48@example.com>"]

    maild(digest_file, "ingest", "-", stdin=make_mail(subject="Answered"))
    maild(digest_file, "ingest", "-", now="2026-11-23T10:30:00-08:00",
          stdin=staff_reply(1, "Try this.\n", answering=delivered_notice(digest_file, sink)))
    maild(digest_file, "ingest", "-", stdin=make_mail(
        sender="bob@other.example", subject="Never <b>answered</b> & co",
        message_id="<n@other.example>"))
    run_once(digest_file, "2026-11-30T07:59:00-08:00")
    assert len(digests(sink)) == 1

    assert "weekly digest queued" in run_once(digest_file, "2026-11-30T08:00:00-08:00")
    assert digests(sink)[1:] == ["<maild.digest.2026-W49@example.com>"]
    [mail] = [m for m in sink.messages() if str(m["Message-ID"]).endswith("W49@example.com>")]
    assert str(mail["To"]) == "lead@example.com, boss@example.com"
    assert str(mail["From"]) == "Example Support <support@example.com>"
    assert str(mail["Auto-Submitted"]) == "auto-generated"
    assert str(mail["Subject"]) == "Example Support: the week to 30 Nov 2026, 1 open SLA breach"
    assert mail.get_content_type() == "multipart/alternative"

    text = plain_text(mail)
    assert "maild report: Mon 23 Nov 2026 08:00 to Mon 30 Nov 2026 08:00" in text
    assert "  opened 2, solved 0" in text
    # Our own hour (09:00-24:00 UTC): #1 answered at 18:30 UTC, #2 still not.
    assert "  first response  50.0 % (1 of 2) met, 1 missed" in text
    assert "  #2 Never <b>answered</b> & co: our own target overdue" in text
    assert all(len(line) <= 80 for line in text.splitlines())

    html_part = mail.get_body(preferencelist=("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<svg" not in html and "<img" not in html and "src=" not in html
    assert "url(" not in html and "<style" not in html  # inline styles only
    # The internal target's bar: half green (met), half red (missed), 160 pixels in all.
    assert ('<td width="80" height="12" bgcolor="#2e7d32"' in html
            and '<td width="80" height="12" bgcolor="#c62828"' in html)
    assert "#2 Never &lt;b&gt;answered&lt;/b&gt; &amp; co" in html  # the customer's words
    assert "<b>answered</b>" not in html


def digest_app(database_url: str, tmp_path: Path, sink: Sink, clock: FixedClock) -> App:
    config: Config = parse_config(digest_config(database_url, tmp_path, sink))
    return build_app(config, clock)


def test_two_schedulers_at_once_send_one_digest(
    database_url: str, tmp_path: Path, sink: Sink, clock: FixedClock
) -> None:
    app = digest_app(database_url, tmp_path, sink, clock)
    try:
        assert sorted(at_once(app, lambda scheduler: scheduler.digest.send())) == [0, 1]
        assert sorted(at_once(app, lambda scheduler: scheduler.digest.send())) == [0, 0]
        with app.db.transaction() as session:
            queued = session.scalars(select(OutboxMail.message_id)
                                     .where(OutboxMail.purpose == "digest")).all()
        assert queued == ["<maild.digest.2026-W48@example.com>"]
    finally:
        app.close()


def test_two_maild_processes_send_one_digest(
    database_url: str, tmp_path: Path, sink: Sink, clock: FixedClock
) -> None:
    config = tmp_path / "maild.toml"
    config.write_text(digest_config(database_url, tmp_path, sink))
    environment = {**os.environ, "MAILD_CONFIG": str(config),
                   "MAILD_NOW": "2026-11-30T08:00:00-08:00"}
    # The schema first: two processes creating it at once is another story.
    subprocess.run([sys.executable, "-m", "maild", "db", "upgrade"], env=environment,
                   check=True, capture_output=True)
    schedulers = [subprocess.Popen([sys.executable, "-m", "maild", "run", "--once", "--only",
                                    "scheduler"], env=environment, stdout=subprocess.PIPE)
                  for _ in range(2)]
    said = [process.communicate(timeout=120)[0].decode() for process in schedulers]
    assert [process.returncode for process in schedulers] == [0, 0]
    assert sum("weekly digest queued" in output for output in said) == 1
    app = digest_app(database_url, tmp_path, sink, clock)
    try:
        with app.db.transaction() as session:
            queued = session.scalars(select(OutboxMail.message_id)
                                     .where(OutboxMail.purpose == "digest")).all()
        assert queued == ["<maild.digest.2026-W49@example.com>"]
    finally:
        app.close()


def test_no_recipients_no_digest(app: App) -> None:
    assert app.config.digest.to == []
    assert app.digest.send() == 0
