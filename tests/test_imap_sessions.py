"""What each mailbox's session costs the process: many mailboxes share their TLS settings
instead of loading the CA certificates once per connection (bench/mailboxes.py)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from maild.channels.imap.session import open_session, tls_context
from maild.config import MailboxConfig, parse_config
from tests.conftest import config_text, mailbox_toml


def mailboxes(database_url: str, tmp_path: Path, accounts: list[Any], **settings: Any
              ) -> list[MailboxConfig]:
    entries = "\n".join(mailbox_toml(account, f"box{i}", **settings)
                        for i, account in enumerate(accounts))
    environ = {f"MAILD_TEST_IMAP_BOX{i}": a.password for i, a in enumerate(accounts)}
    return parse_config(config_text(database_url, tmp_path, 2525, entries), environ).mailboxes


def test_a_plaintext_mailbox_holds_no_tls_settings(
    database_url: str, tmp_path: Path, dovecot: Any
) -> None:
    accounts = [dovecot.add_account(), dovecot.add_account()]
    sessions = [open_session(box, None)
                for box in mailboxes(database_url, tmp_path, accounts, security="none")]
    try:
        for session in sessions:
            assert session.client.ssl_context is None
            assert session.client.noop()  # logged in and serving all the same
    finally:
        for session in sessions:
            session.close()


def test_mailboxes_with_the_same_verification_share_one_tls_context() -> None:
    verified, unverified = tls_context(True), tls_context(False)
    assert tls_context(True) is verified
    assert tls_context(False) is unverified
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    assert unverified.verify_mode == ssl.CERT_NONE and not unverified.check_hostname
