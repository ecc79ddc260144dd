"""The ticket's tag in a subject, `[#N]`: written into every mail maild sends and read from
every mail it gets (docs/design.md, "Threading"), here and nowhere else."""

from __future__ import annotations

import re

# Up to nine digits: a longer number is no ticket of ours, and never a huge integer.
_TAG = re.compile(r"\[#(\d{1,9})\]")
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|sv|fw|fwd|wg|tr|antw)\s*:\s*)+", re.IGNORECASE)


def tag(number: int) -> str:
    return f"[#{number}]"


def tags_in(subject: str) -> list[int]:
    """The ticket numbers tagged in a subject, in the order they stand."""
    return [int(number) for number in _TAG.findall(subject)]


def strip(subject: str) -> str:
    """The subject without its leading Re:/AW:/Fwd: prefixes and without tags."""
    return _TAG.sub("", _REPLY_PREFIX.sub("", subject)).strip()


def tagged(subject: str, number: int) -> str:
    """`[#N]` once, in front of the subject without its Re:/AW: prefixes; a subject
    that already carries this ticket's tag is left as it is."""
    if tag(number) in subject:
        return subject
    return f"{tag(number)} {strip(subject)}".strip()
