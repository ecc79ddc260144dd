"""Text from mail made safe to print: without the control characters a terminal or a
template would act on (BEL, ESC and the sequences it starts, DEL, the C1 set). Mail is
hostile input; what it says is kept, how it would drive a screen is not.
"""

from __future__ import annotations

import re

_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
# The controls that separate words or lines: a space where one line is wanted.
_SEPARATORS = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85"
_KEPT_IN_TEXT = "\t\n"

_LINE = {c: (" " if chr(c) in _SEPARATORS else None) for c in _CONTROLS}
_TEXT = {c: None for c in _CONTROLS if chr(c) not in _KEPT_IN_TEXT}
_ANY_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable_line(value: str) -> str:
    """A one-line value (a subject, a display name): controls gone, whitespace single."""
    return " ".join(value.translate(_LINE).split())


def printable_text(value: str) -> str:
    """A body: tabs and line breaks kept, every other control removed."""
    if _ANY_CONTROL.search(value) is None:  # the usual case, without copying the text
        return value
    return value.translate(_TEXT)
