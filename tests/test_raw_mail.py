"""Where received mail is kept: a small message in a row of the database, a large one (and
any message received before rows existed) in a file of the raw store. Every reader finds
it in either place."""

from __future__ import annotations

import hashlib

import pytest

from maild.db.raw_mail import IN_ROW_BYTES, raw_place, read_raw
from maild.intake.pipeline import ingest
from maild.runtime.app import App
from maild.tickets.views import WholeTexts
from tests.mailbuilder import make_mail

REPLY = make_mail(subject="Re: Printer on fire", message_id="<reply@customer.example>",
                  body="Still on fire.\n\nOn Monday, support wrote:\n> Have you tried "
                       "turning it off?\n")


def test_a_small_message_is_read_from_its_row_and_an_older_one_from_its_file(
    app: App
) -> None:
    assert ingest(app.intake, REPLY, "test").outcome == "stored"
    in_row = hashlib.sha256(REPLY).hexdigest()
    # Kept as a file by a maild before this one: its bytes were never moved.
    older = make_mail(message_id="<older@customer.example>", body="Taken in last year.\n")
    in_file = app.raw_store.put(older)

    with app.db.reading() as session:
        assert read_raw(session, app.raw_store, in_row) == REPLY
        assert read_raw(session, app.raw_store, in_file) == older
        assert read_raw(session, app.raw_store, in_row, at_most=9) == REPLY[:9]
        assert read_raw(session, app.raw_store, in_file, at_most=9) == older[:9]
        assert raw_place(session, app.raw_store, in_row) == (None, len(REPLY))
        assert raw_place(session, app.raw_store, in_file) == (
            app.raw_store.path_for(in_file), len(older))
    assert not app.raw_store.path_for(in_row).exists()


def test_a_message_kept_nowhere_is_said_missing(app: App) -> None:
    gone = "ab" * 32
    with app.db.reading() as session:
        with pytest.raises(FileNotFoundError):
            read_raw(session, app.raw_store, gone)
        assert raw_place(session, app.raw_store, gone) == (app.raw_store.path_for(gone), None)
        assert WholeTexts(app.raw_store, app.parser.policy).of(session, gone) is None


def test_a_page_folds_the_quoted_history_of_mail_from_either_place(app: App) -> None:
    large_reply = make_mail(
        subject="Re: Printer on fire", message_id="<long-reply@customer.example>",
        body="The whole log is below.\n\nOn Monday, support wrote:\n> Send the log.\n\n"
             + "a line of the log, pasted whole\n" * (IN_ROW_BYTES // 30))
    assert len(large_reply) > IN_ROW_BYTES
    in_row = hashlib.sha256(REPLY).hexdigest()
    in_file = app.raw_store.put(large_reply)
    assert ingest(app.intake, REPLY, "test").outcome == "stored"

    texts = WholeTexts(app.raw_store, app.parser.policy)
    with app.db.reading() as session:
        from_row = texts.of(session, in_row)
        from_file = texts.of(session, in_file)
    assert from_row is not None and "> Have you tried turning it off?" in from_row
    assert from_file is not None and "> Send the log." in from_file
