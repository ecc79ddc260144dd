"""Quoted history is stripped from replies, in the styles real clients write."""

from __future__ import annotations

import pytest

from maild.intake.replies import new_text

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
