"""Reading mailboxes on a real, private Dovecot: tickets, filing away, faults, OAuth2."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from maild.channels.imap import reader as reader_module
from maild.channels.imap.folders import file_away
from maild.channels.imap.reader import MailboxReader, plan_batches
from maild.channels.imap.session import MailboxLoginFailed, MailboxUnreachable
from maild.channels.imap.tokens import (
    AccessToken,
    CommandTokens,
    FileTokens,
    TokenUnavailable,
    parse_token,
)
from maild.cli import main
from maild.clock import FixedClock
from maild.config import parse_config
from maild.db.models import (
    MailboxConnection,
    MailboxState,
    Message,
    OutboxMail,
    QuarantinedMail,
    Ticket,
)
from maild.intake.pipeline import ingest
from maild.runtime.app import App, build_app
from maild.runtime.backoff import Backoff
from tests.conftest import Sink, config_text, free_port, mailbox_toml
from tests.helpers import kept_raw, notice_to, refusing_acknowledgments_of
from tests.mailbuilder import make_mail
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_for


@pytest.fixture
def make_app(
    database_url: str, tmp_path: Path, sink: Sink, clock: FixedClock
) -> Iterator[Callable[..., App]]:
    """An App whose config reads the given accounts: make_app(account, **mailbox settings)."""
    built: list[App] = []

    def build(*mailboxes: str, environ: dict[str, str] | None = None) -> App:
        text = config_text(database_url, tmp_path / "storage", sink.port, "\n".join(mailboxes))
        app = build_app(parse_config(text, environ or {}), clock)
        built.append(app)
        return app

    yield build
    for app in built:
        app.close()


def password_env(account: Any, name: str = "support") -> dict[str, str]:
    return {f"MAILD_TEST_IMAP_{name.upper()}": account.password}


@pytest.fixture
def reader_app(make_app: Callable[..., App], imap_account: Any) -> App:
    return make_app(mailbox_toml(imap_account), environ=password_env(imap_account))


def tickets(app: App) -> list[Ticket]:
    with app.db.transaction() as session:
        found = list(session.scalars(select(Ticket).order_by(Ticket.id)))
        session.expunge_all()
        return found


def count(app: App, model: Any) -> int:
    with app.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def purposes(app: App) -> dict[str, int]:
    with app.db.transaction() as session:
        rows = session.execute(
            select(OutboxMail.purpose, func.count()).group_by(OutboxMail.purpose)
        )
        return {purpose: number for purpose, number in rows}


def reader_for(app: App, **kwargs: Any) -> MailboxReader:
    return MailboxReader(app.intake, app.leases, app.config.mailboxes[0], **kwargs)


class RunningReader:
    """MailboxReader.run in a thread, as the daemon runs it, with a quick backoff."""

    def __init__(self, app: App) -> None:
        self.stop = threading.Event()
        self.reader = reader_for(app, backoff=Backoff(base=0.1, cap=0.5))
        self.thread = threading.Thread(target=self.reader.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> RunningReader:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the reader did not stop"


# --- reading and filing away ---------------------------------------------------------------


def test_appended_mail_becomes_tickets_and_moves_to_processed_unseen(
    reader_app: App, imap_account: Any
) -> None:
    for n in range(3):
        imap_account.append(
            make_mail(subject=f"Question {n}", message_id=f"<q{n}@customer.example>")
        )

    report = reader_for(reader_app).drain_once()

    assert (report.stored, report.duplicates, report.quarantined) == (3, 0, 0)
    assert [t.subject for t in tickets(reader_app)] == ["Question 0", "Question 1", "Question 2"]
    assert all(t.mailbox == "support" for t in tickets(reader_app))
    assert purposes(reader_app) == {"ack": 3, "notify": 3}
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 3
    # Fetched with BODY.PEEK[]: maild never marks the customer's mail as read.
    assert all(b"\\Seen" not in flags for flags in imap_account.flags("Processed"))
    with reader_app.db.transaction() as session:
        channels = set(session.scalars(select(Message.channel).where(Message.direction == "in")))
    assert channels == {"imap:support"}


def test_message_stored_before_a_crash_is_a_duplicate_and_is_filed_away(
    reader_app: App, imap_account: Any
) -> None:
    raw = make_mail(subject="Stored, then the daemon died", message_id="<crash@customer.example>")
    imap_account.append(raw)
    ingest(reader_app.intake, raw, "imap:support", "support")  # committed, never moved

    report = reader_for(reader_app).drain_once()

    assert (report.stored, report.duplicates) == (0, 1)
    assert len(tickets(reader_app)) == 1
    assert purposes(reader_app) == {"ack": 1, "notify": 1}
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 1


def test_poison_message_is_quarantined_on_the_server_and_the_rest_go_on(
    reader_app: App, imap_account: Any
) -> None:
    imap_account.append(make_mail(subject="Before", message_id="<before@customer.example>"))
    imap_account.append(b"From: not an address at all\r\nSubject: poison\r\n\r\nbody\r\n")
    imap_account.append(make_mail(subject="After", message_id="<after@customer.example>"))

    report = reader_for(reader_app).drain_once()

    assert (report.stored, report.quarantined) == (2, 1)
    assert [t.subject for t in tickets(reader_app)] == ["Before", "After"]
    assert imap_account.count("Quarantine") == 1
    assert imap_account.count("Processed") == 2
    with reader_app.db.transaction() as session:
        held = session.scalars(select(QuarantinedMail)).one()
        assert held.channel == "imap:support"
        assert "sender" in held.reason or "From" in held.reason


def test_a_message_the_database_refuses_is_filed_as_quarantined(
    reader_app: App, imap_account: Any
) -> None:
    """The batch's rows are written together and refused: each message is taken again
    alone, and the folder each goes to is by what became of it then."""
    refusing_acknowledgments_of(reader_app, "Boom")
    for subject in ("Before", "Boom", "After"):
        imap_account.append(make_mail(subject=subject,
                                      message_id=f"<{subject.lower()}@customer.example>"))

    report = reader_for(reader_app).drain_once()

    assert (report.stored, report.quarantined) == (2, 1)
    assert [t.subject for t in tickets(reader_app)] == ["Before", "After"]
    assert imap_account.count("Quarantine") == 1
    assert imap_account.count("Processed") == 2


def test_a_backlog_is_drained_in_batches(
    make_app: Callable[..., App], imap_account: Any
) -> None:
    app = make_app(mailbox_toml(imap_account, batch_messages=4), environ=password_env(imap_account))
    client = imap_account.client()
    for n in range(30):
        client.append("INBOX", make_mail(sender=f"c{n}@customer.example", subject=f"n{n}",
                                         message_id=f"<b{n}@customer.example>"))
    client.logout()

    report = reader_for(app).drain_once()

    assert report.stored == 30
    assert imap_account.count("INBOX") == 0
    assert imap_account.count("Processed") == 30
    with app.db.transaction() as session:
        assert session.get(MailboxState, "support").last_uid == 30


def test_batches_bound_the_bytes_held_at_once() -> None:
    sizes = {1: 10, 2: 10, 3: 50, 4: 200, 5: 10, 6: 10, 7: 10}
    assert list(plan_batches(sizes, max_messages=3, max_bytes=100)) == [
        [1, 2, 3], [4], [5, 6, 7]
    ]


def test_message_over_the_size_limit_is_kept_whole_and_quarantined(
    make_app: Callable[..., App], imap_account: Any
) -> None:
    app = make_app(mailbox_toml(imap_account, max_message_bytes=64 * 1024),
                   environ=password_env(imap_account))
    big = make_mail(subject="Huge", body="x" * 100 + "\n" + ("0123456789" * 8 + "\n") * 3000)
    imap_account.append(big)
    imap_account.append(make_mail(subject="Small", message_id="<small@customer.example>"))

    report = reader_for(app).drain_once()

    assert (report.stored, report.quarantined) == (1, 1)
    with app.db.transaction() as session:
        held = session.scalars(select(QuarantinedMail)).one()
        assert "larger than max_message_bytes" in held.reason
        kept = kept_raw(app, held.raw_sha256)
    client = imap_account.client()
    client.select_folder("Quarantine", readonly=True)
    on_server = next(iter(client.fetch(client.search(), ["BODY.PEEK[]"]).values()))[b"BODY[]"]
    client.logout()
    assert kept == on_server
    assert hashlib.sha256(kept).hexdigest() == held.raw_sha256


def test_renumbered_folder_is_rescanned_and_duplicates_are_recognised(
    make_app: Callable[..., App], imap_account: Any
) -> None:
    app = make_app(mailbox_toml(imap_account, folder="Support"), environ=password_env(imap_account))
    first = make_mail(subject="First", message_id="<first@customer.example>")
    no_id = (b"From: nina@customer.example\r\nTo: support@example.com\r\n"
             b"Subject: No id\r\n\r\nhi\r\n")
    client = imap_account.client()
    client.create_folder("Support")
    client.append("Support", first)
    client.append("Support", no_id)
    client.logout()
    assert reader_for(app).drain_once().stored == 2

    # The folder is rebuilt (a restore, a server move): new UIDVALIDITY, old mail back in it.
    client = imap_account.client()
    old_validity = client.folder_status("Support", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    client.delete_folder("Support")
    client.create_folder("Support")
    for raw in (first, no_id, make_mail(subject="New", message_id="<new@customer.example>")):
        client.append("Support", raw)
    new_validity = client.folder_status("Support", ["UIDVALIDITY"])[b"UIDVALIDITY"]
    client.logout()
    assert new_validity != old_validity

    report = reader_for(app).drain_once()

    assert (report.stored, report.duplicates) == (1, 2)
    assert [t.subject for t in tickets(app)] == ["First", "No id", "New"]
    with app.db.transaction() as session:
        state = session.get(MailboxState, "support")
        assert (state.uidvalidity, state.last_uid) == (new_validity, 3)


class WithoutCapabilities:
    """A real connection that hides some capabilities. A stand-in for servers without
    MOVE or UIDPLUS, since this Dovecot cannot be told to drop them."""

    def __init__(self, client: Any, hidden: set[str]) -> None:
        self._client = client
        self._hidden = hidden

    def has_capability(self, name: str) -> bool:
        return name not in self._hidden and self._client.has_capability(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize("hidden", [{"MOVE"}, {"MOVE", "UIDPLUS"}])
def test_filing_away_without_move(imap_account: Any, hidden: set[str]) -> None:
    for n in range(3):
        imap_account.append(make_mail(message_id=f"<m{n}@customer.example>"))
    client = imap_account.client()
    client.create_folder("Processed")
    client.select_folder("INBOX")
    file_away(WithoutCapabilities(client, hidden), [1, 2], "Processed")  # type: ignore[arg-type]
    client.logout()

    assert imap_account.uids("INBOX") == [3]
    assert imap_account.count("Processed") == 2


# --- several mailboxes ------------------------------------------------------------------------


def test_each_mailbox_answers_from_its_own_address(
    make_app: Callable[..., App], dovecot: Any, sink: Sink
) -> None:
    support, feedback = dovecot.add_account(), dovecot.add_account()
    app = make_app(
        mailbox_toml(support),
        mailbox_toml(feedback, name="feedback", address="feedback@example.com",
                     display_name="Example Feedback"),
        environ={**password_env(support), **password_env(feedback, "feedback")},
    )
    support.append(make_mail(subject="Help", message_id="<help@customer.example>"))
    feedback.append(make_mail(subject="Idea", message_id="<idea@customer.example>",
                              to="feedback@example.com"))
    from maild.runtime.daemon import Daemon

    report = Daemon(app).run_once()

    assert report.received.stored == 2
    assert {t.subject: t.mailbox for t in tickets(app)} == {"Help": "support", "Idea": "feedback"}
    senders = {m["Subject"]: m["From"] for m in sink.messages()}
    assert senders["Re: [#1] Help"] == "Example Support <support@example.com>"
    assert senders["Re: [#2] Idea"] == "Example Feedback <feedback@example.com>"

    # The SE's answer on the feedback ticket (to his notification) goes out from feedback@,
    # under the SE's name.
    feedback.append(make_mail(sender="Dan Engineer <dan@example.com>", to="feedback@example.com",
                              subject="Re: [#2] Idea", message_id="<dan-idea@example.com>",
                              in_reply_to=notice_to(app, 2), body="Thanks, noted!\n"))
    Daemon(app).run_once()
    relay = sink.messages()[-1]
    assert relay["From"] == "Dan Engineer <feedback@example.com>"
    assert relay["To"] == "ann@customer.example"
    assert relay["Message-ID"].endswith("@example.com>")


# --- waiting for mail ---------------------------------------------------------------------------


def test_idle_picks_up_a_message_appended_by_another_connection(
    make_app: Callable[..., App], imap_account: Any
) -> None:
    # Polling once an hour: only IDLE can explain a prompt pickup.
    app = make_app(mailbox_toml(imap_account, poll_seconds=3600),
                   environ=password_env(imap_account))
    with RunningReader(app):
        wait_for(lambda: count(app, MailboxState), "the reader to open the folder")
        imap_account.append(make_mail(subject="Pushed", message_id="<push@customer.example>"))
        wait_for(lambda: tickets(app), "the pushed message to become a ticket", timeout=10)
    assert imap_account.count("Processed") == 1


def test_the_reader_says_it_is_connected_only_once_the_database_says_so(
    reader_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz reads the reader's status, maild_imap_connected the database: whoever
    sees the first healthy finds the second connected."""
    said_at_record: list[tuple[str, str]] = []
    real_record = reader_module.record_connection

    def record(db: Any, clock: Any, name: str, state: str, detail: str | None = None
               ) -> None:  # notes what the reader said meanwhile, then records for real
        said_at_record.append((state, running.reader.status.state))
        real_record(db, clock, name, state, detail)

    monkeypatch.setattr(reader_module, "record_connection", record)
    running = RunningReader(reader_app)
    with running:
        wait_for(lambda: running.reader.status.state == "connected", "the reader to connect")
        with reader_app.db.transaction() as session:
            assert session.get(MailboxConnection, "support").state == "connected"
    assert said_at_record[0] == ("connected", "starting")


def test_without_idle_the_folder_is_polled(
    make_app: Callable[..., App], imap_account: Any
) -> None:
    app = make_app(mailbox_toml(imap_account, idle=False, poll_seconds=0.2),
                   environ=password_env(imap_account))
    with RunningReader(app):
        wait_for(lambda: count(app, MailboxState), "the reader to open the folder")
        imap_account.append(make_mail(subject="Polled", message_id="<poll@customer.example>"))
        wait_for(lambda: tickets(app), "the polled message to become a ticket")


def test_idle_is_renewed_before_servers_drop_it(
    make_app: Callable[..., App], imap_account: Any, dovecot: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(mailbox_toml(imap_account, idle_renew_seconds=0.5, poll_seconds=3600),
                   environ=password_env(imap_account))
    caplog.set_level(logging.DEBUG, logger="imapclient")
    with RunningReader(app):
        wait_for(lambda: count(app, MailboxState), "the reader to open the folder")
        wait_for(lambda: sum(_sent_idle(r) for r in caplog.records) >= 3,
                 "IDLE to be renewed twice")
        imap_account.append(make_mail(subject="Still here", message_id="<renew@customer.example>"))
        wait_for(lambda: tickets(app), "a message after the renewals")
    logins = [r for r in caplog.records if "LOGIN" in r.getMessage().upper()
              and r.name.startswith("imapclient") and r.getMessage().startswith(">")]
    # The reader's one session and the test's append: renewing is DONE + IDLE on the
    # same session, never a reconnect.
    assert len(logins) == 2


def _sent_idle(record: logging.LogRecord) -> bool:
    return record.name.startswith("imapclient") and record.getMessage().startswith("> ") \
        and record.getMessage().rstrip("'").endswith(" IDLE")


# --- faults ------------------------------------------------------------------------------------


def test_reader_recovers_when_the_server_restarts(
    make_app: Callable[..., App], imap_account: Any, dovecot: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(mailbox_toml(imap_account, poll_seconds=3600),
                   environ=password_env(imap_account))
    caplog.set_level(logging.INFO, logger="maild")
    with RunningReader(app):
        imap_account.append(make_mail(subject="Before restart", message_id="<r1@customer.example>"))
        wait_for(lambda: len(tickets(app)) == 1, "the first message")
        dovecot.restart()
        imap_account.append(make_mail(subject="After restart", message_id="<r2@customer.example>"))
        wait_for(lambda: len(tickets(app)) == 2, "the message after the restart", timeout=20)
    assert any("trying again in" in r.getMessage() for r in caplog.records)


@pytest.fixture
def proxy(dovecot: Any) -> Iterator[TcpProxy]:
    tcp_proxy = TcpProxy(dovecot.port)
    yield tcp_proxy
    tcp_proxy.close()


def test_connection_dropped_in_the_middle_of_a_fetch(
    make_app: Callable[..., App], imap_account: Any, proxy: TcpProxy
) -> None:
    app = make_app(mailbox_toml(imap_account, port=proxy.port, poll_seconds=3600),
                   environ=password_env(imap_account))
    for n in range(3):
        imap_account.append(make_mail(sender=f"c{n}@customer.example",
                                      message_id=f"<cut{n}@customer.example>"))
    proxy.cut_on = b"BODY.PEEK[]"
    with RunningReader(app):
        wait_for(lambda: len(tickets(app)) == 3, "all three messages after the reconnect")
    assert proxy.tripped.is_set() and proxy.connections == 2
    assert count(app, Message) == 6  # three in, three acknowledgments: nothing twice
    assert imap_account.count("INBOX") == 0


def test_connection_dropped_while_idling(
    make_app: Callable[..., App], imap_account: Any, proxy: TcpProxy
) -> None:
    app = make_app(mailbox_toml(imap_account, port=proxy.port, poll_seconds=3600),
                   environ=password_env(imap_account))
    with RunningReader(app):
        wait_for(lambda: count(app, MailboxState), "the reader to start idling")
        proxy.drop_all()
        wait_for(lambda: proxy.connections == 2, "a reconnect")
        imap_account.append(make_mail(subject="After the drop"))
        wait_for(lambda: tickets(app), "mail after the reconnect")


def test_mail_announced_with_a_search_answer_is_read_without_waiting(
    make_app: Callable[..., App], imap_account: Any, proxy: TcpProxy
) -> None:
    # Dovecot runs a SEARCH on the session's view as of its previous command, so mail
    # that lands just before the SEARCH reaches it is not among the results: it is
    # announced with the SEARCH's answer, and never again by a later IDLE. With IDLE
    # renewed every 29 minutes, only noticing it at once reads it within the wait below.
    app = make_app(mailbox_toml(imap_account, port=proxy.port, poll_seconds=3600,
                                idle_renew_seconds=1740),
                   environ=password_env(imap_account))
    with RunningReader(app):
        # The second IDLE is the long one: the first is the short round after starting.
        # Waited for until the server has answered it ("+ idling"), not only until the
        # reader sent it: Dovecot announces mail that lands before it has entered IDLE
        # only at its next periodic check (mailbox_idle_check_interval: 30 s by default,
        # 1 s in tests/dovecot.py), not at once; under load that gap is long.
        wait_for(lambda: proxy.answered.count(b"+ idling") >= 2,
                 "the server to have the reader in IDLE")
        proxy.while_held = lambda: imap_account.append(
            make_mail(subject="Landed during the search", message_id="<race@customer.example>"))
        proxy.hold_on = b"SEARCH"
        # Wake the reader with mail its search skips (flagged \Deleted): that search,
        # which finds nothing to read, is the one the next mail lands under.
        appender = imap_account.client()
        try:
            appender.append("INBOX", make_mail(subject="Deleted already"), flags=[b"\\Deleted"])
        finally:
            appender.logout()
        wait_for(proxy.tripped.is_set, "the search the mail lands under")
        wait_for(lambda: tickets(app), "the mail that landed during the search")
    assert [t.subject for t in tickets(app)] == ["Landed during the search"]
    assert proxy.connections == 1


def test_a_silent_hang_is_noticed_by_the_liveness_check(
    make_app: Callable[..., App], imap_account: Any, proxy: TcpProxy
) -> None:
    # The network swallows everything from the first IDLE on, with no reset: only the
    # DONE that renews IDLE, and its timeout, can tell.
    app = make_app(mailbox_toml(imap_account, port=proxy.port, poll_seconds=3600,
                                idle_renew_seconds=0.5, timeout_seconds=1),
                   environ=password_env(imap_account))
    proxy.freeze_on = b" IDLE\r\n"
    with RunningReader(app):
        wait_for(proxy.tripped.is_set, "the hang to begin")
        imap_account.append(make_mail(subject="During the hang"))
        wait_for(lambda: tickets(app), "mail read on a new connection")
    assert proxy.connections == 2


def test_connection_refused_is_retried_and_named(
    make_app: Callable[..., App], imap_account: Any, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens here
    app = make_app(mailbox_toml(imap_account, port=port), environ=password_env(imap_account))
    with pytest.raises(MailboxUnreachable,
                       match=f"mailbox support: cannot connect to 127.0.0.1:{port}: "
                             "Connection refused"):
        reader_for(app).drain_once()
    caplog.set_level(logging.WARNING, logger="maild")
    expected = (f"mailbox support: cannot connect to 127.0.0.1:{port}: Connection refused; "
                "trying again in ")
    with RunningReader(app):
        wait_for(lambda: sum(r.getMessage().startswith(expected) for r in caplog.records) >= 2,
                 "two attempts, each logged")


def test_wrong_password_is_a_clear_error_naming_the_mailbox(
    make_app: Callable[..., App], imap_account: Any
) -> None:
    app = make_app(mailbox_toml(imap_account),
                   environ={"MAILD_TEST_IMAP_SUPPORT": "not-the-password"})
    with pytest.raises(MailboxLoginFailed) as failure:
        reader_for(app).drain_once()
    assert str(failure.value) == (
        f"mailbox support: 127.0.0.1 refused the password of {imap_account.username}: "
        "[AUTHENTICATIONFAILED] Authentication failed."
    )


# --- OAuth2 (XOAUTH2 / OAUTHBEARER), checked by Dovecot against the test's introspection ----


def token_command(tmp_path: Path, tokens: list[str], expires_in: int | None = None) -> str:
    """A command that prints the next of `tokens` each time it runs (as JSON with an
    expiry when `expires_in` is given), like a helper holding a refresh token would."""
    (tmp_path / "tokens").write_text("\n".join(tokens) + "\n")
    (tmp_path / "runs").write_text("0")
    script = tmp_path / "get-token"
    shape = (f'{{"access_token": "%s", "expires_in": {expires_in}}}' if expires_in
             else "%s")
    script.write_text(
        "#!/bin/sh\n"
        f'cd "{tmp_path}"\n'
        "n=$(($(cat runs) + 1)); echo $n > runs\n"
        f"printf '{shape}\\n' \"$(sed -n ${{n}}p tokens)\"\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_oauth2_token_from_a_command(
    make_app: Callable[..., App], imap_account: Any, dovecot: Any, tmp_path: Path,
    mechanism: str,
) -> None:
    token = dovecot.introspection.issue(imap_account.username)
    app = make_app(mailbox_toml(
        imap_account, password_env=None, oauth2_mechanism=mechanism,
        oauth2_token_command=token_command(tmp_path, [token], expires_in=3600),
    ))
    imap_account.append(make_mail(subject="Via OAuth2", message_id="<oauth@customer.example>"))

    assert reader_for(app).drain_once().stored == 1
    assert token in dovecot.introspection.asked


def test_oauth2_token_from_a_file(
    make_app: Callable[..., App], imap_account: Any, dovecot: Any, tmp_path: Path
) -> None:
    token_file = tmp_path / "access-token"
    token_file.write_text(dovecot.introspection.issue(imap_account.username) + "\n")
    app = make_app(mailbox_toml(imap_account, password_env=None,
                                oauth2_token_file=str(token_file)))
    imap_account.append(make_mail(subject="Via a token file"))
    assert reader_for(app).drain_once().stored == 1


def test_refused_token_is_named_and_a_fresh_one_is_fetched(
    make_app: Callable[..., App], imap_account: Any, dovecot: Any, tmp_path: Path
) -> None:
    good = dovecot.introspection.issue(imap_account.username)
    command = token_command(tmp_path, ["revoked-token", good], expires_in=3600)
    app = make_app(mailbox_toml(imap_account, password_env=None, oauth2_token_command=command))
    reader = reader_for(app)

    with pytest.raises(MailboxLoginFailed, match=(
        f"mailbox support: 127.0.0.1 refused the OAuth2 token of {imap_account.username}: "
        r"\[AUTHENTICATIONFAILED\]"
    )):
        reader.drain_once()
    # A refused token is never offered again, although it claimed an hour of life.
    imap_account.append(make_mail(subject="After a new token"))
    assert reader.drain_once().stored == 1
    assert (tmp_path / "runs").read_text().strip() == "2"


def test_expiring_token_is_refreshed_and_the_session_renewed(
    make_app: Callable[..., App], imap_account: Any, dovecot: Any, tmp_path: Path,
    clock: FixedClock,
) -> None:
    first = dovecot.introspection.issue(imap_account.username)
    second = dovecot.introspection.issue(imap_account.username)
    command = token_command(tmp_path, [first, second], expires_in=600)
    app = make_app(mailbox_toml(imap_account, password_env=None, oauth2_token_command=command,
                                idle_renew_seconds=0.3, poll_seconds=3600))
    with RunningReader(app):
        wait_for(lambda: count(app, MailboxState), "the first session")
        assert dovecot.introspection.asked[-1] == first
        clock.advance(timedelta(minutes=10))
        wait_for(lambda: second in dovecot.introspection.asked,
                 "a login with the refreshed token")
        imap_account.append(make_mail(subject="On the new session"))
        wait_for(lambda: tickets(app), "mail read on the renewed session")
    assert (tmp_path / "runs").read_text().strip() == "2"


def test_token_sources_say_what_went_wrong(tmp_path: Path, clock: FixedClock) -> None:
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'refresh token revoked' >&2\nexit 3\n")
    failing.chmod(0o755)
    with pytest.raises(TokenUnavailable, match="exit code 3: refresh token revoked"):
        CommandTokens(str(failing), clock).token()
    with pytest.raises(TokenUnavailable, match="cannot read token file"):
        FileTokens(tmp_path / "missing", clock).token()
    stale = tmp_path / "stale"
    stale.write_text('{"access_token": "t", "expires_at": "2026-11-23T17:00:00+00:00"}')
    with pytest.raises(TokenUnavailable, match="has expired"):
        FileTokens(stale, clock).token()


@pytest.mark.parametrize(("text", "value", "expires_at"), [
    ("ya29.bare-token\n", "ya29.bare-token", None),
    ('{"access_token": "a", "expires_in": 3599}', "a",
     datetime(2026, 11, 23, 18, 59, 59, tzinfo=UTC)),
    ('{"access_token": "b", "expires_at": "2026-11-23T19:30:00Z"}', "b",
     datetime(2026, 11, 23, 19, 30, tzinfo=UTC)),
    ('{"access_token": "c", "expires_at": 1795460400}', "c",
     datetime.fromtimestamp(1795460400, UTC)),
])
def test_token_output_shapes(
    text: str, value: str, expires_at: datetime | None, clock: FixedClock
) -> None:
    assert parse_token(text, clock.now()) == AccessToken(value, expires_at)


def test_token_json_without_a_token_is_refused(clock: FixedClock) -> None:
    with pytest.raises(TokenUnavailable, match="without an access_token"):
        parse_token('{"token_type": "Bearer"}', clock.now())


# --- the command line ----------------------------------------------------------------------


def test_check_connects_to_every_mailbox_and_says_how_each_is(
    tmp_path: Path, database_url: str, sink: Sink, dovecot: Any
) -> None:
    good, bad = dovecot.add_account(), dovecot.add_account()
    good.append(make_mail())
    closed_port = free_port()
    config = tmp_path / "maild.toml"
    config.write_text(config_text(database_url, tmp_path / "storage", sink.port, "\n".join([
        mailbox_toml(good),
        mailbox_toml(bad, name="feedback", address="feedback@example.com"),
        mailbox_toml(good, name="sales", address="sales@example.com", port=closed_port),
    ])))
    env = {"MAILD_TEST_IMAP_SUPPORT": good.password, "MAILD_TEST_IMAP_FEEDBACK": "wrong",
           "MAILD_TEST_IMAP_SALES": good.password}

    result = CliRunner().invoke(main, ["--config", str(config), "check"], env=env)

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert (
        f"ok   mailbox support: {good.username} at 127.0.0.1:{dovecot.port} (none); "
        "INBOX: 1 waiting; IDLE; will create Processed, Quarantine"
    ) in lines
    assert any(line.startswith(
        f"FAIL mailbox feedback: 127.0.0.1 refused the password of {bad.username}: "
    ) for line in lines)
    assert (f"FAIL mailbox sales: cannot connect to 127.0.0.1:{closed_port}: "
            "Connection refused") in lines
    assert any(line.startswith("ok   outbound SMTP") for line in lines)
    assert good.count("INBOX") == 1  # looked at, not touched


def test_run_once_reads_the_mailboxes(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any
) -> None:
    config = tmp_path / "maild.toml"
    config.write_text(config_text(database_url, tmp_path / "storage", sink.port,
                                  mailbox_toml(imap_account)))
    imap_account.append(make_mail())
    env = {"MAILD_TEST_IMAP_SUPPORT": imap_account.password, "MAILD_NOW": "2026-11-23T18:00Z"}

    result = CliRunner().invoke(main, ["--config", str(config), "run", "--once"], env=env)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("received 1, duplicates 0, quarantined 0, ignored 0; "
                                     "delivered 2,")
    assert len(sink.files()) == 2  # the acknowledgment, and the SE's notification


def test_run_once_with_an_unreachable_mailbox_is_a_temporary_failure(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any
) -> None:
    config = tmp_path / "maild.toml"
    config.write_text(config_text(database_url, tmp_path / "storage", sink.port,
                                  mailbox_toml(imap_account, port=free_port())))
    env = {"MAILD_TEST_IMAP_SUPPORT": imap_account.password}

    result = CliRunner().invoke(main, ["--config", str(config), "run", "--once"], env=env)

    assert result.exit_code == 75
    assert "could not read mailbox(es): support" in result.output


def test_a_missing_token_names_the_mailbox(
    make_app: Callable[..., App], imap_account: Any, tmp_path: Path
) -> None:
    app = make_app(mailbox_toml(imap_account, password_env=None,
                                oauth2_token_file=str(tmp_path / "not-there")))
    with pytest.raises(TokenUnavailable,
                       match=f"^mailbox support: cannot read token file {tmp_path}/not-there"):
        reader_for(app).drain_once()
