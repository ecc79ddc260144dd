"""Quoted history is stripped from replies, in the styles real clients write."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maild.intake.replies import _PARSER, latest_reply, new_text

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


@pytest.mark.parametrize("name", CASES)
def test_the_library_is_read_with_its_regular_expressions_built_once(name: str) -> None:
    text = CASES[name][0]
    signed = f"{text}\n\nBest regards,\nAnn\n\nSent from my iPhone\n"
    for sample in (text, signed, "Hi\n\n" + "_" * 30 + "\nFrom: x\n" + text):
        assert latest_reply(sample) == _PARSER.parse_reply(sample)


_LINES = [
    "On Mon, 23 Nov 2026 at 10:00, Ann <ann@customer.example> wrote:", "On Mon, Dan wrote:",
    "> quoted", ">> deeper", "> On Sun, Bob wrote:", "From: Ann", "*From:* Ann", "Sent: Monday",
    "To: Bob", "Subject: RE: x", "Date: today", "Cc: Carl", "Von: Ann", "Gesendet: Montag",
    "An: Bob", "Betreff: x", "De : Ann", "Envoyé : lundi", "Objet : x", "De: Ana",
    "Enviado: lunes", "Para: Bob", "Asunto: x", "Da: Anna", "Inviato: lunedì", "A: Bob",
    "Oggetto: x", "Van: An", "Verzonden: maandag", "Aan: Bob", "Onderwerp: x",
    "-----Original Message-----", "----- Original Message -----",
    "Am 23.11.2026 um 10:00 schrieb Ann <ann@customer.example>:",
    "Le lun. 23 nov. 2026 à 10:00, Ann a écrit :", "El lun, 23 nov 2026, Ann escribió:",
    "Il giorno lun 23 nov 2026 Ann ha scritto:", "Op ma 23 nov 2026 schreef Ann:",
    "Best regards,", "Mit freundlichen Grüßen", "Sent from my iPhone", "-- ", "--",
    "________________________________", "", "Hello", "  indented", "Thanks: it works",
]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.one_of(st.sampled_from(_LINES), st.text(max_size=30)), max_size=14)
       .map("\n".join))
def test_the_line_start_header_expression_finds_what_the_library_finds(text: str) -> None:
    assert latest_reply(text) == _PARSER.parse_reply(text)
