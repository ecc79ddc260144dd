"""Faults provoked for real under a running `maild run`: the disk under storage/ full,
and PostgreSQL restarted in the middle of a drain. maild waits and retries, and loses
and doubles nothing."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from maild.db.raw_mail import IN_ROW_BYTES
from tests.conftest import Sink, config_text, mailbox_toml, using_postgresql
from tests.mailbuilder import make_mail
from tests.test_crashes import outbox_by_purpose_and_status
from tests.test_scale_out import MAILD, SILENCE, Daemons
from tests.waiting import wait_for


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB filesystem of its own, for storage/ to fill up."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                              str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte, with one ballast file."""
    ballast = directory / "ballast"
    with open(ballast, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    return ballast


@pytest.mark.parametrize("full", ["raw store", "database"])
def test_a_full_disk_holds_the_mail_back_until_there_is_room(
    full: str, tmp_path: Path, database_url: str, sink: Sink, imap_account: Any,
    tiny_disk: Path
) -> None:
    """Large mail is kept in the raw store's files, small mail in the database: whichever
    disk is full holds back the mail that needs it, and takes nothing it could not keep."""
    storage = tiny_disk / "storage"
    (storage / "raw").mkdir(parents=True)
    daemons = Daemons(tmp_path, database_url, sink, {"support": imap_account})
    if full == "database":
        if using_postgresql():
            pytest.skip("PostgreSQL's disk is its server's")
        database_url = f"sqlite:///{storage}/maild.db"
        body, fault = "x" * 20_000 + "\n", "database or disk is full"  # SQLite's words
    else:
        if not using_postgresql():  # the database elsewhere: only storage/ fills up
            database_url = f"sqlite:///{tmp_path}/maild.db"
        body, fault = "x" * (IN_ROW_BYTES + 10_000) + "\n", "the disk is full"  # not in a row
    daemons.config.write_text(config_text(database_url, storage, sink.port,
                                          mailbox_toml(imap_account)))
    daemons.start("full")
    try:
        # Running before the disk fills: a database that cannot be opened stops a start.
        wait_for(lambda: daemons.said("full", "maild running"), "the daemon running")
        ballast = fill(tiny_disk)
        for n in range(3):
            imap_account.append(make_mail(sender=f"c{n}@customer.example", subject=f"Q{n}",
                                          message_id=f"<q{n}@customer.example>", body=body))
        # The mailbox's reader says so, holding the mail back (a note of its last look at
        # the mailbox, which failed too, says nothing of the mail).
        wait_for(lambda: any(fault in line and "trying again in" in line for line in
                             daemons.log("full").read_text().splitlines()),
                 "the disk-full fault", timeout=30)
        assert imap_account.count("INBOX") == 3  # nothing taken that could not be kept
        ballast.unlink()
        wait_for(lambda: imap_account.count("Processed") == 3, "the mail, once there is room",
                 timeout=90)
        wait_for(lambda: len(sink.messages()) >= 3, "the acknowledgments")
    finally:
        daemons.stop_all()
    assert sorted(t["subject"] for t in daemons.tickets()) == ["Q0", "Q1", "Q2"]
    assert not list((storage / "raw").glob("*.tmp")), "no half-written file is left"


@pytest.mark.skipif(not using_postgresql(), reason="restarts the PostgreSQL server")
def test_postgresql_restarted_in_the_middle_of_a_drain(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any
) -> None:
    cluster = next(Path("/etc/postgresql").iterdir()).name
    daemons = Daemons(tmp_path, database_url, sink, {"support": imap_account})
    tag = uuid.uuid4().hex[:8]
    for n in range(60):
        imap_account.append(make_mail(sender=f"c{n}@customer.example", subject=f"Q{n}",
                                      message_id=f"<{tag}.{n}@customer.example>"))
    daemons.start("run")
    try:
        wait_for(lambda: daemons.said("run", "stored <"), "the drain to be under way")
        subprocess.run([shutil.which("pg_ctlcluster") or "pg_ctlcluster",
                        "--skip-systemctl-redirect", cluster, "main", "restart", "-m", "fast"],
                       check=True, capture_output=True)
        wait_for(lambda: imap_account.count("Processed") == 60, "all 60 to be filed",
                 timeout=120)
    finally:
        daemons.stop_all()
    tickets = daemons.tickets()
    assert sorted(t["subject"] for t in tickets) == sorted(f"Q{n}" for n in range(60))
    assert imap_account.count("INBOX") == 0

    # Mail the sender had claimed or was recording when the server went down is free once
    # its sender is silent for the daemons' SILENCE (real time); mail deferred waits out
    # its retry delay: a run past both sends the rest.
    time.sleep(SILENCE.total_seconds())
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    subprocess.run([*MAILD, "run", "--once"], env={**daemons.env, "MAILD_NOW": later},
                   check=True, capture_output=True)
    assert outbox_by_purpose_and_status(database_url).get(("ack", "sent")) == 60
    sent: dict[str, set[str]] = defaultdict(set)
    for mail in sink.messages():
        sent[str(mail["Delivered-To"])].add(str(mail["Message-ID"]))
    assert all(len(sent[f"c{n}@customer.example"]) == 1 for n in range(60))
