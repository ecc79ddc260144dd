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
