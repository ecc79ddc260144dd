"""Quoted history is stripped from replies, in the styles real clients write."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from maild.db.models import Message
from maild.intake.pipeline import ingest
from maild.intake.replies import REPLY_SEARCH_CHARS, new_text
from maild.runtime.app import App
from tests.helpers import kept_raw, show
from tests.mailbuilder import make_mail

CASES = {
    "gmail": (
        "Thanks, that fixed it.\n\nOn Mon, 23 Nov 2026 at 10:00, Example Support "
        "<support@example.com> wrote:\n> Please restart.\n> \n",
        "Thanks, that fixed it.",
    ),
    "gmail folded attribution": (
        "Works now.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Example Support <\n"
        "support@example.com> wrote:\n\n> Please restart.\n",
        "Works now.",
    ),
    "reply starting with On": (
        "On second thought, the problem is back.\n\nOn Mon, 23 Nov 2026, Dan wrote:\n> Fixed?\n",
        "On second thought, the problem is back.",
    ),
    "outlook header block": (
        "Yes, version 2.3.\n\nFrom: Example Support <support@example.com>\n"
        "Sent: Monday, November 23, 2026 10:00 AM\nTo: Ann\nSubject: RE: [#4] Crash\n\n"
        "Which version?\n",
        "Yes, version 2.3.",
    ),
    "outlook original message": (
        "See below.\n\n-----Original Message-----\nFrom: Support\nWhich version?\n",
        "See below.",
    ),
    "french with le in the name": (
        "Merci, c'est réglé.\n\nLe lun. 23 nov. 2026 à 10:00, Jean le Grand "
        "<jean@client.example> a écrit :\n> Bonjour\n",
        "Merci, c'est réglé.",
    ),
    "german": (
        "Danke!\n\nAm 23.11.2026 um 10:00 schrieb Example Support <support@example.com>:\n"
        "> Hallo\n",
        "Danke!",
    ),
    "bottom quote only": ("Got it\n> quoted\n> more\n", "Got it"),
    "no quote": ("Just a new message.\nSecond line.", "Just a new message.\nSecond line."),
}


@pytest.mark.parametrize("name", CASES)
def test_new_text(name: str) -> None:
    text, expected = CASES[name]
    assert new_text(text) == expected


def test_a_message_that_is_all_quote_keeps_its_text() -> None:
    text = "> only a quote\n> nothing new\n"
    assert new_text(text) != ""


# --- a body of several MB (a log pasted in, a long thread quoted) ---------------------------

LOG_LINE = "2026-11-30 10:00:01,123 ERROR worker-7 export failed: code 42 at step 17\n"
# A Spanish Outlook header block: the library recognises it, the rules of replies.py do not.
SPANISH_HEADERS = ("De: Dan <dan@example.com>\nEnviado: lunes, 30 de noviembre de 2026 10:00\n"
                   "Para: Ann <ann@customer.example>\nAsunto: La exportación\n\n"
                   "Hola Ann, ¿puede enviar el registro?\n")
ATTRIBUTION = "On Mon, 30 Nov 2026 at 10:00, Dan <dan@example.com> wrote:\n"


def _log(chars: int) -> str:
    return LOG_LINE * (chars // len(LOG_LINE))


def test_the_library_reads_only_the_start_of_a_long_body() -> None:
    # Within REPLY_SEARCH_CHARS, the header block only the library knows ends the new text;
    # beyond it the library never sees it (that is what bounds its time), and the text
    # is kept whole rather than cut by a guess.
    within = "Aquí está el registro.\n\n" + _log(REPLY_SEARCH_CHARS // 2)
    assert new_text(within + "\n" + SPANISH_HEADERS) == within.strip()
    beyond = "Aquí está el registro.\n\n" + _log(2 * REPLY_SEARCH_CHARS)
    assert new_text(beyond + "\n" + SPANISH_HEADERS) == (beyond + "\n" + SPANISH_HEADERS).strip()


def test_an_attribution_beyond_the_search_still_ends_the_new_text() -> None:
    # replies.py's own rules read the whole body, in linear time.
    reply = "Here is the whole log.\n\n" + _log(2 * REPLY_SEARCH_CHARS)
    assert new_text(f"{reply}\n{ATTRIBUTION}> Could you send the log?\n") == reply.strip()


def test_a_huge_text_body_is_stored_whole_with_its_reply_extracted(app: App) -> None:
    quoted = "".join(f"> {line}\n" for line in _log(6_500_000).splitlines())
    raw = make_mail(body=f"Thanks, that fixed it.\n\n{ATTRIBUTION}{quoted}",
                    message_id="<quoted@customer.example>")
    pasted = "The export fails; the log:\n\n" + _log(6_500_000)
    raw_pasted = make_mail(body=pasted, subject="Export fails",
                           message_id="<pasted@customer.example>", sender="bob@x.example")
    assert len(raw) > 6_500_000

    replied = ingest(app.intake, raw, "test")
    logged = ingest(app.intake, raw_pasted, "test")

    def received(ticket_id: int) -> list[object]:
        return [m["body"] for m in show(app, ticket_id)["messages"] if m["direction"] == "in"]

    assert received(replied.ticket_id) == ["Thanks, that fixed it."]
    assert received(logged.ticket_id) == [pasted.strip()]
    with app.db.transaction() as session:
        kept = {row.message_id: row.raw_sha256 for row in session.execute(
            select(Message.message_id, Message.raw_sha256))}
    assert kept_raw(app, kept["<quoted@customer.example>"] or "") == raw
    assert kept_raw(app, kept["<pasted@customer.example>"] or "") == raw_pasted


def test_a_from_line_is_a_header_block_only_with_its_sent_or_date_line_below_it() -> None:
    # Outlook's block is a From line and, within the next four lines, Sent or Date. Read
    # across any number of lines, the rule took a From line and a Date line anywhere below
    # it for one (and its time grew steeply with the From lines of a body: a minute for
    # 200 of them).
    reply = ("Here is the whole log.\n\n" + _log(2 * REPLY_SEARCH_CHARS)
             + "From: the export job\n" + LOG_LINE * 10 + "Date: 30 November 2026\n")
    assert new_text(reply) == reply.strip()
    outlook = ("Here is the whole log.\n\n" + _log(2 * REPLY_SEARCH_CHARS))
    assert new_text(f"{outlook}\nFrom: Dan <dan@example.com>\nTo: Ann\n"
                    "Sent: Monday, 30 November 2026 10:00\n\nCould you send it?\n"
                    ) == outlook.strip()
