"""The headers maild writes that every client must read back exactly, folded by rule.

`email`'s own folder gets three things wrong that cost threads and words:

- A msg-id header (Message-ID, In-Reply-To, References; RFC 5322 3.6.4) longer than a
  line is written as encoded words, `=?utf-8?q?=3CAM9PR07MB…?=`: that is no msg-id, and
  the customer's client loses the thread. Here the IDs are written as they are, folded
  only between them.
- Two words in a row that need encoding lose the space between them ("✉ —" reads back
  "✉—"): whitespace between two encoded words is not text (RFC 2047 6.2). Here a run of
  such words is encoded together, its spaces inside the encoded text.
- A display name encoded in several words reads back with spaces added by `email` and
  without them by RFC 2047 readers (Gmail, Thunderbird). Here a name that needs encoding
  is one encoded word, longer than RFC 2047's 75 characters if it must (readers accept
  such words, which Gmail itself writes), and several only when even that would not fit
  a line, about 180 characters of emoji.

Each class here takes a value as maild means it (nothing in it is decoded) and folds it
within `policy.max_line_length` where its atoms allow, and always within 998 characters
(RFC 5322 2.1.1). They are registered for writing only (maild/mail/policy.py).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from email.headerregistry import Address, UniqueAddressHeader, UnstructuredHeader
from email.policy import Policy
from email.utils import quote
from typing import Any

from maild.mail.message_id import message_ids, writable

LONGEST_LINE = 998  # RFC 5322 2.1.1, without the CRLF
LONGEST_ENCODED_WORD = 75  # RFC 2047 2
# What a continuation line holds after its folding space, at the usual 78 (RFC 5322 2.1.1).
_SHORT = 77

# Printable ASCII, nothing that could read as an encoded word: written as it stands.
_PLAIN_WORD = re.compile(r"[!-~]+")
# A word of a display name that needs no quotes (RFC 5322 3.2.3 atext).
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")
# The characters a Q-encoded word may carry as they are, in any header (RFC 2047 5.3).
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_PREFIXES = {"q": "=?utf-8?q?", "b": "=?utf-8?b?"}
_SUFFIX = "?="


def _is_plain(word: str) -> bool:
    return _PLAIN_WORD.fullmatch(word) is not None and "=?" not in word


def _q(char: str) -> str:
    return "".join(
        "_" if byte == 0x20 else chr(byte) if byte in _Q_LITERAL else f"={byte:02X}"
        for byte in char.encode("utf-8", "replace")
    )


def _b_length(size: int) -> int:
    return 4 * -(-size // 3)


def encoded_words(text: str, longest: int = LONGEST_ENCODED_WORD) -> list[str]:
    """`text` as UTF-8 encoded words of at most `longest` characters, split between
    characters; Q or B, whichever is shorter for the whole text."""
    if not text:
        return []
    sizes = [len(char.encode("utf-8", "replace")) for char in text]
    q_pieces = [_q(char) for char in text]
    by_b = _b_length(sum(sizes)) < sum(len(piece) for piece in q_pieces)
    prefix = _PREFIXES["b" if by_b else "q"]
    room = max(longest - len(prefix) - len(_SUFFIX), 4)
    chunks: list[str] = []
    start, used = 0, 0
    for index in range(len(text)):
        cost = sizes[index] if by_b else len(q_pieces[index])
        too_long = _b_length(used + cost) > room if by_b else used + cost > room
        if too_long and index > start:
            chunks.append(text[start:index])
            start, used = index, 0
        used += cost
    chunks.append(text[start:])
    if by_b:
        return [prefix + base64.b64encode(chunk.encode("utf-8", "replace")).decode("ascii")
                + _SUFFIX for chunk in chunks]
    return [prefix + "".join(_q(char) for char in chunk) + _SUFFIX for chunk in chunks]


def fold(name: str, atoms: Iterable[str], policy: Policy) -> str:
    """`name: atom atom …`, a line broken before an atom that would pass the policy's
    line length. An atom longer than that stands alone on its line; callers keep every
    atom shorter than LONGEST_LINE."""
    soft = min(policy.max_line_length or LONGEST_LINE, LONGEST_LINE)
    lines = [f"{name}:"]
    holds_atom = False
    for atom in atoms:
        longer = len(lines[-1]) + 1 + len(atom)
        if holds_atom and longer > soft or longer > LONGEST_LINE:
            lines.append("")
        lines[-1] += " " + atom
        holds_atom = True
    return policy.linesep.join(lines) + policy.linesep


def _words(text: str) -> list[str]:
    """Split at spaces only: any other whitespace is a character of its word, and kept."""
    return [word for word in text.split(" ") if word]


def text_atoms(text: str, plain_longest: int) -> list[str]:
    """The words of `text` as atoms: printable ASCII as it stands, every run of other
    words encoded together with the spaces inside it. Words are apart by one space, as
    `outbound.compose.one_line` leaves them; more spaces are written as one."""
    atoms: list[str] = []
    run: list[str] = []
    for word in _words(text):
        if _is_plain(word) and len(word) <= plain_longest:
            if run:
                atoms += encoded_words(" ".join(run))
                run = []
            atoms.append(word)
        else:
            run.append(word)
    if run:
        atoms += encoded_words(" ".join(run))
    return atoms


def display_name_atoms(name: str) -> list[str]:
    """A display name as atoms that read back as exactly `name`: plain words, one quoted
    string, or one encoded word."""
    words = _words(name)
    if not words:
        return []
    text = " ".join(words)
    if all(_ATOM.fullmatch(w) and "=?" not in w for w in words) and len(text) <= _SHORT:
        return words
    if all(_is_plain(w) for w in words):
        quoted = f'"{quote(text)}"'
        if len(quoted) <= _SHORT:
            return [quoted]
    single = encoded_words(text, longest=LONGEST_LINE - 2)
    return single if len(single) == 1 else encoded_words(text)


class _AsMeant:
    """The header's text is the value given, not a decoding of it: maild writes text
    that may itself look like an encoded word."""

    name: str  # given by email's BaseHeader, which the registry adds to every class

    @classmethod
    def parse(cls, value: Any, kwds: dict[str, Any]) -> None:
        super().parse(value, kwds)  # type: ignore[misc]
        kwds["decoded"] = str(value)


def fold_text(name: str, text: str, policy: Policy) -> str:
    """Subject: plain words as they are, runs of other words encoded together."""
    # A plain word longer than a line is encoded, where it can be split.
    plain_longest = min(policy.max_line_length or LONGEST_LINE, LONGEST_LINE) - 1
    return fold(name, text_atoms(text, plain_longest), policy)


def fold_ids(name: str, text: str, policy: Policy) -> str:
    """In-Reply-To, References: the IDs unencoded, a line broken only between them. An
    ID no 7-bit line can carry (not printable ASCII, or longer than a line) is left out."""
    return fold(name, [i for i in message_ids(text) if writable(i)], policy)


def fold_bare_address(name: str, text: str, policy: Policy) -> str:
    """From, To …: one address without a display name, as `MailboxesHeader` folds it."""
    return fold(name, [text], policy)


class TextHeader(_AsMeant, UnstructuredHeader):
    """Subject, folded by `fold_text`."""

    max_count = 1

    def fold(self, *, policy: Policy) -> str:
        return fold_text(self.name, str(self), policy)


class MessageIdsHeader(_AsMeant, UnstructuredHeader):
    """In-Reply-To, References, folded by `fold_ids`."""

    def fold(self, *, policy: Policy) -> str:
        return fold_ids(self.name, str(self), policy)


class MessageIdHeader(MessageIdsHeader):
    max_count = 1


class MailboxesHeader(UniqueAddressHeader):
    """From, To, Cc, Reply-To, set from `Address` objects (maild writes no groups): each
    display name as plain words, a quoted string or one encoded word, a line broken
    between atoms."""

    name: str  # given by email's BaseHeader

    def fold(self, *, policy: Policy) -> str:
        atoms: list[str] = []
        addresses: tuple[Address, ...] = self.addresses
        for index, address in enumerate(addresses):
            name = display_name_atoms(address.display_name)
            spec = f"<{address.addr_spec}>" if name else address.addr_spec
            comma = "," if index < len(addresses) - 1 else ""
            atoms += [*name, spec + comma]
        return fold(self.name, atoms, policy)


# What maild/mail/policy.py registers for writing, by header name.
WRITTEN_HEADER_CLASSES: dict[str, type] = {
    "subject": TextHeader,
    "message-id": MessageIdHeader,
    "in-reply-to": MessageIdsHeader,
    "references": MessageIdsHeader,
    "from": MailboxesHeader,
    "to": MailboxesHeader,
    "cc": MailboxesHeader,
    "reply-to": MailboxesHeader,
}
