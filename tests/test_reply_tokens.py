"""The reply tokens in mail to staff (maild/mail/reply_tokens.py) and their key, kept in the
database so that it survives restarts and every process on it shares one."""

from __future__ import annotations

import re
import threading

from maild.clock import FixedClock
from maild.db.database import Database
from maild.db.migrate import upgrade
from maild.db.secrets import site_secret
from maild.mail.reply_tokens import ReplyTokens
from maild.runtime.app import App, build_app
from tests.conftest import START

# RFC 5322 msg-id: "<" dot-atom-text "@" dot-atom-text ">"
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
MSG_ID = re.compile(rf"<{_ATEXT}(?:\.{_ATEXT})*@{_ATEXT}(?:\.{_ATEXT})*>")


def test_a_token_names_its_ticket_and_address_and_nothing_else() -> None:
    tokens = ReplyTokens(b"k" * 32)
    message_id = tokens.message_id("example.com", 7, "dan@example.com")
    assert MSG_ID.fullmatch(message_id)
    assert message_id.startswith("<maild.7.")
    assert tokens.answered_tickets(["<x@y>", message_id], "dan@example.com") == {7}
    assert tokens.answered_tickets([message_id], "DAN@example.com") == {7}  # case-blind
    assert tokens.answered_tickets([message_id], "eve@example.com") == frozenset()
    assert tokens.answered_tickets([message_id.replace("<maild.7.", "<maild.8.")],
                                   "dan@example.com") == frozenset()
    assert ReplyTokens(b"other key" * 4).answered_tickets(
        [message_id], "dan@example.com") == frozenset()


def test_an_internationalised_desk_domain_is_written_in_ascii() -> None:
    message_id = ReplyTokens(b"k" * 32).message_id("bücher.example", 1, "dan@bücher.example")
    assert message_id.endswith("@xn--bcher-kva.example>") and MSG_ID.fullmatch(message_id)


def test_the_key_survives_a_restart_and_is_the_same_for_every_process(
    app: App, clock: FixedClock
) -> None:
    made = app.reply_tokens.message_id("example.com", 3, "dan@example.com")
    restarted = build_app(app.config, clock)
    try:
        assert restarted.reply_tokens.answered_tickets([made], "dan@example.com") == {3}
    finally:
        restarted.close()


def test_processes_starting_at_once_agree_on_one_key(database_url: str) -> None:
    database = Database(database_url)
    try:
        upgrade(database)
        keys: list[bytes] = []
        start = threading.Barrier(4)

        def first_start() -> None:
            start.wait()
            keys.append(site_secret(database, "reply_tokens", START))

        threads = [threading.Thread(target=first_start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(keys) == 4 and len(set(keys)) == 1 and len(keys[0]) == 32
    finally:
        database.dispose()
