"""The hostile corpus (tests/corpus/): every file ends as a ticket message, in the
quarantine with a reason or filed as ignored with one, its raw bytes kept, and the intake
goes on. Then mail as the world writes it (tests/realmail.py), through a real Dovecot."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from maild.clock import FixedClock
from maild.config import parse_config
from maild.db.models import Message, QuarantinedMail
from maild.intake.pipeline import ingest
from maild.runtime.app import App, build_app
from tests.conftest import Sink, config_text, mailbox_toml
from tests.helpers import kept_raw, show
from tests.realmail import IGNORED, Corpus, Desk, play

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((CORPUS / "expected.toml").read_text())


def test_every_corpus_file_has_an_expectation_and_every_expectation_a_file() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


@pytest.fixture
def corpus_app(tmp_path: Path, database_url: str, clock: FixedClock) -> Any:
    text = config_text(database_url, tmp_path / "storage", 2526)
    text = text.replace("[storage]\n", "[storage]\nmax_attachment_bytes = 16384\n")
    app = build_app(parse_config(text), clock)
    yield app
    app.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str, corpus_app: App) -> None:
    expected = EXPECTED[name]
    raw = (CORPUS / name).read_bytes()

    result = ingest(corpus_app.intake, raw, "corpus")

    assert result.outcome == expected["outcome"], result.reason
    sha256 = hashlib.sha256(raw).hexdigest()
    assert kept_raw(corpus_app, sha256) == raw, "the bytes are kept, whatever became of it"
    with corpus_app.db.transaction() as session:
        held = session.scalars(select(QuarantinedMail)).all()
        stored = session.scalars(select(Message).where(Message.direction == "in")).all()
    if expected["outcome"] in ("quarantined", "ignored"):
        # Set aside: held for an operator, or filed as ignored (automatic mail for no ticket)
        assert [(q.raw_sha256, q.status) for q in held] == [
            (sha256, "held" if expected["outcome"] == "quarantined" else "ignored")]
        assert expected["reason"] in held[0].reason
        assert stored == []
        return
    assert held == []
    assert result.ticket_id is not None
    ticket = show(corpus_app, result.ticket_id)
    [message] = [m for m in ticket["messages"] if m["message_id"] == result.message_id]
    if "subject" in expected:
        assert ticket["subject"] == expected["subject"]
    if "requester" in expected:
        assert ticket["requester"] == expected["requester"]
    for text in expected.get("body", []):
        assert text in message["body"]
    for text in expected.get("not_in_body", []):
        assert text not in message["body"]
    if "attachments" in expected:
        seen = [[a["filename"], a["sha256"] is not None] for a in message["attachments"]]
        assert seen == expected["attachments"]


# --- mail as the world writes it, through a real Dovecot and `maild run --once` -------------

def test_real_world_mail_lands_where_a_person_would_put_it(
    tmp_path: Path, database_url: str, sink: Sink, imap_account: Any
) -> None:
    """tests/realmail.py: customers in the styles of nine clients, their out-of-office
    replies and their servers' bounces in nine MTA formats, strangers on the same subject,
    noise, duplicates and malformed senders, with the truth about each."""
    config = tmp_path / "maild.toml"
    config.write_text(config_text(database_url, tmp_path / "storage", sink.port,
                                  mailbox_toml(imap_account)))
    env = {**os.environ, "MAILD_CONFIG": str(config),
           "MAILD_TEST_IMAP_SUPPORT": imap_account.password}
    desk = Desk([sys.executable, "-m", "maild"], env, imap_account, sink.directory)
    corpus = Corpus(seed=17)

    result = play(corpus, desk, conversations=70)

    print(json.dumps(result.summary()))
    assert result.mails >= 200
    assert len({m.style for m in corpus.mails}) >= 40
    assert result.wrong == [] or result.accuracy >= 0.99, result.wrong
    assert result.tickets_opened_wrongly == []
    assert result.lost == []
    assert result.characters_lost == []
    assert (result.noise_quarantined, result.noise_ignored) == (
        0, sum(1 for m in {m.raw: m for m in corpus.mails}.values() if m.truth == IGNORED))
    # No automatic mail was answered: what maild sent outside the team answers people.
    automatic = {m.message_id for m in corpus.mails if m.kind in ("auto_reply", "bounce",
                                                                  "noise")}
    answered = {str(m.get("In-Reply-To", "")).strip(): m for m in desk.sent()
                if m["Delivered-To"] != "dan@example.com"}
    assert [str(answered[i]["Subject"]) for i in automatic.intersection(answered)] == []
    assert (imap_account.count("INBOX"), imap_account.count("Quarantine")) == (0, 0)
