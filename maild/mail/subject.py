"""The ticket's tag in a subject, `[#N]`: written into every mail maild sends and read from
every mail it gets (docs/design.md, "Threading"), here and nowhere else."""

from __future__ import annotations

import re

# Up to nine digits: a longer number is no ticket of ours, and never a huge integer.
_TAG = re.compile(r"\[#(\d{1,9})\]")
# Reply and forward prefixes and tags at the start, however they interleave: a reply to
# a reply of ticket 1's follow-up reads "Re: [#17] Re: [#1] …".
_LEADING = re.compile(r"^\s*(?:(?:re|aw|sv|fw|fwd|wg|tr|antw)\s*:\s*|\[#\d{1,9}\]\s*)+",
                      re.IGNORECASE)


def tag(number: int) -> str:
    return f"[#{number}]"


def tags_in(subject: str) -> list[int]:
    """The ticket numbers tagged in a subject, in the order they stand."""
    return [int(number) for number in _TAG.findall(subject)]


def bare(subject: str) -> str:
    """The subject without its leading Re:/AW:/Fwd: prefixes and without tags."""
    return " ".join(_TAG.sub("", _LEADING.sub("", subject)).split())


def tagged(subject: str, number: int) -> str:
    """`[#N]` once, in front of the subject without its Re:/AW: prefixes; a subject
    that already carries this ticket's tag is left as it is."""
    if tag(number) in subject:
        return subject
    return f"{tag(number)} {bare(subject)}".strip()


# The reply and forward prefixes mail clients write, in the languages Outlook, Gmail, Apple
# Mail and Thunderbird are used in: English Re/Fw/Fwd, German AW/WG, Scandinavian SV/VS/VL/
# VB/Fwd, Dutch Antw/Doorst, Italian R/RIF/I, French TR/Réf, Spanish RV/RE, Portuguese
# RES/ENC, Polish Odp/PD, Czech Odp/Fw, Turkish YNT/İLT, Greek ΑΠ/ΣΧΕΤ/ΠΡΘ, Hebrew,
# Chinese and Japanese; with a counter ("Re[2]:", "Re(3):") or a full-width colon.
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|vl|vb|antw|antwort|doorst|rif|r|i|tr|réf|ref|rv|res|enc|odp|pd|"
    r"ynt|ilt|İlt|fw|fwd|wg|ap|απ|σχετ|πρθ|השב|тема|отв|回复|答复|回覆|转发|轉寄|返信|転送)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*|\[#\d{1,9}\]\s*)+",
    re.IGNORECASE,
)


def is_reply(subject: str) -> bool:
    """Whether the subject starts with a reply or forward prefix."""
    match = _REPLY_PREFIX.match(subject)
    return match is not None and bool(_TAG.sub("", match.group(0)).strip())


def conversation(subject: str) -> str:
    """The subject as it names a conversation: without reply and forward prefixes in any
    language, tags, case or spacing, so that "RE: AW: Cannot  log in" names the
    conversation "Cannot log in" does."""
    return " ".join(_REPLY_PREFIX.sub("", subject).split()).casefold()
