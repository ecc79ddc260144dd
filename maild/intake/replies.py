"""The new text of a reply, with the quoted history removed.

mail-parser-reply does the work; this wrapper adds the attribution lines it
misses when the reply itself starts with them, replies written below the quote
(Thunderbird's default), and always falls back to the whole text rather than
ever returning nothing for a message that has text.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailparser_reply import EmailReplyParser


@cache
def _parser() -> EmailReplyParser:
    """Built once: the languages are settled here, not per message. Imported when first
    used, as the other parsing libraries: a run with no mail to parse in this process
    (its mailboxes empty, or the parser process parsing them) imports none of them,
    about a twentieth of a second of every start."""
    from mailparser_reply import EmailReplyParser

    return EmailReplyParser(languages=["en", "de", "fr", "es", "it", "nl"])

# How much of a body the library reads: its time grows with the text (seconds for a
# few MB pasted in, during which the intake takes nothing else), while the new text of a
# top-posted reply, and the attribution that ends it, come first. A body whose first
# REPLY_SEARCH_CHARS hold no end of the new text is cut by the rules below alone, which
# read the whole of it in linear time.
REPLY_SEARCH_CHARS = 64 * 1024

# "On Mon, 1 Dec 2026 at 10:00, Ann <ann@x> wrote:" (possibly folded over two
# lines by the client), "Le lun. 1 déc. 2026 à 10:00, Ann a écrit :",
# "Am 01.12.2026 um 10:00 schrieb Ann:", Outlook's "-----Original Message-----"
# and its "From: … Sent: …" header block, whose lines are read one by one ([^\n]: with
# DOTALL a `.+` runs across lines, and the search's time grows steeply with the From
# lines of a body).
_ATTRIBUTION = re.compile(
    r"^(?:"
    r"On\s.{1,300}?\swrote:"
    r"|Le\s.{1,300}?a\s+écrit\s?:"
    r"|Am\s.{1,300}?schrieb\s.{0,200}?:"
    r"|-{2,}\s*Original Message\s*-{2,}"
    r"|From:[^\S\n][^\n]+\n(?:[^\n]+\n){0,3}?(?:Sent|Date):[^\S\n][^\n]+"
    r")\s*$",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)


def _cut_at_attribution(text: str) -> str:
    match = _ATTRIBUTION.search(text)
    return text[: match.start()] if match else text


def _drop_quoted_tail(text: str) -> str:
    lines = text.rstrip().split("\n")
    while lines and (lines[-1].startswith(">") or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines)


def _below_the_quote(text: str) -> str | None:
    """Thunderbird's default puts the attribution and the quote first and the new text
    below it (and some people answer between quoted lines): the lines that are not
    quoted are the new text. None when the reply does not start that way."""
    lines = text.split("\n")
    first = _ATTRIBUTION.match(lines[0])
    if first is None or first.end() != len(lines[0]):
        return None
    if len(lines) < 2 or not lines[1].startswith(">"):
        return None
    written = [line for line in lines[1:] if not line.startswith(">")]
    return "\n".join(written).strip() or None


def new_text(text: str) -> str:
    """The part of `text` its author wrote now."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        return ""
    below = _below_the_quote(text)
    if below is not None:
        return below
    head = _head(text)
    try:
        message = _parser().read(head)
        parsed, split = message.latest_reply, len(message.replies) > 1
    except Exception:  # a third-party parser must never take a message down with it
        parsed, split = head, False
    candidate = _drop_quoted_tail(_cut_at_attribution(parsed or "")).strip()
    if not candidate or (len(head) < len(text) and not split and parsed == candidate):
        # The library found nothing, or nothing that ends the new text within what it
        # read: cut ourselves, and keep everything if that fails too.
        candidate = _drop_quoted_tail(_cut_at_attribution(text)).strip()
    return candidate or text


def _head(text: str) -> str:
    """The first REPLY_SEARCH_CHARS of `text`, ending at a line's end where there is one."""
    if len(text) <= REPLY_SEARCH_CHARS:
        return text
    end = text.rfind("\n", 0, REPLY_SEARCH_CHARS)
    return text[:end] if end > 0 else text[:REPLY_SEARCH_CHARS]
