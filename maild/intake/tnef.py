"""winmail.dat (TNEF, from Outlook and Exchange): the files and text inside it.

An SE cannot open winmail.dat; what the customer attached is inside. Unpacking is best
effort: anything tnefparse cannot read leaves winmail.dat as it came.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")


@dataclass(frozen=True)
class Unpacked:
    text: str  # the message body TNEF carried, if any
    files: list[tuple[str, bytes]]  # (filename as the sender named it, content)


def is_tnef(content_type: str, filename: str) -> bool:
    return content_type in TNEF_TYPES or filename.lower() == "winmail.dat"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        for codec in ("utf-8", "windows-1252"):
            try:
                return value.decode(codec)
            except UnicodeDecodeError:
                continue
    return value if isinstance(value, str) else ""


def unpack(data: bytes) -> Unpacked | None:
    from tnefparse import TNEF  # see maild/intake/replies.py, _parser

    try:
        parsed = TNEF(data, do_checksum=False)
        files = [(_text(a.long_filename()) or "unnamed", bytes(a.data))
                 for a in parsed.attachments if a.data]
        text = _text(parsed.body).replace("\x00", "").strip()
    except Exception as exc:  # tnefparse raises many types on damaged data
        log.warning("winmail.dat could not be unpacked (%r); kept as it came", exc)
        return None
    return Unpacked(text, files)
