"""email's modern policies, without two costs that dominate reading and writing mail.

- `HeaderRegistry` builds a new header class with `type()` every time a header is set
  or read; the class for a header name never changes, so it is made once.
- `policy.default` parses a header's value again on every read. A part's Content-Type is
  read many times (type, charset, filename, disposition), and mail repeats the same
  values, so a parsed value is kept. Parsed headers are immutable: sharing them is safe.
- Writing parses every value set and folds it again for the bytes. The mail maild writes
  repeats most of its headers (its own From and Reply-To, Auto-Submitted, the MIME
  headers of every part), so a value set is parsed, and a header folded, once. A
  header's folding depends only on its name, its parse tree (made from its text) and
  the policy's settings, so the text stands for the tree, and the copies of the policy
  `email` makes to write each part share what it folded.
- The headers unique to each mail (its Subject, Message-ID, In-Reply-To and
  References, and the To of a customer's acknowledgment: one address, no name) are
  mostly plain: printable ASCII words with single spaces, nothing that reads as an
  encoded word. Folding such a value gives back its text, so it is kept as text, as a
  header read from bytes is: `email` writes it as it stands, it is folded by its
  header's rule when too long for a line, and parsed only if something reads it.

Behaviour is that of `email.policy.default` (reading) and `email.policy.SMTP` (writing),
without the repeated work, and with two corrections:

- Reading: raw 8-bit bytes in a header (old clients send Latin-1 without RFC 2047) are
  decoded as UTF-8, else as windows-1252, where `email` would make them U+FFFD.
- Writing: the headers whose folding `email` gets wrong (msg-ids, Subject, addresses)
  are folded by maild/mail/headers.py.

What is kept lives in a `MailPolicies`, built once by the composition root (and by the
parser process for itself), never at import.
"""

from __future__ import annotations

import re
from email.headerregistry import Address, HeaderRegistry
from email.policy import EmailPolicy
from functools import lru_cache
from typing import Any, cast

from maild.mail.headers import (
    WRITTEN_HEADER_CLASSES,
    fold_bare_address,
    fold_ids,
    fold_text,
)

_LINE_BREAKS = re.compile(r"\r|\n")
# Longer values are parsed each time rather than kept.
_CACHED_VALUE_CHARS = 998


def _address_header(factory: Any, name: str,
                    mailboxes: tuple[tuple[str, str, str], ...]) -> Any:
    return factory(name, [Address(display_name=display_name, username=username, domain=domain)
                          for display_name, username, domain in mailboxes])


class _KeptHeaders(HeaderRegistry):
    """The header classes, each made once; headers parsed, and folded, once per value."""

    def __init__(self, classes: dict[str, type] | None = None) -> None:
        super().__init__()
        for name, header_class in (classes or {}).items():
            self.map_to_type(name, header_class)
        self._classes: dict[str, Any] = {}
        self.parsed = lru_cache(maxsize=1024)(self.__call__)
        self.folded = lru_cache(maxsize=1024)(EmailPolicy.fold_binary)
        self.mailboxes = lru_cache(maxsize=1024)(self._mailboxes)

    def _mailboxes(self, name: str, mailboxes: tuple[tuple[str, str, str], ...]) -> Any:
        return _address_header(self, name, mailboxes)

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(key)
        return made


def _kept(policy: EmailPolicy) -> _KeptHeaders:
    return cast(_KeptHeaders, policy.header_factory)


def address_header(policy: EmailPolicy, name: str,
                   mailboxes: tuple[tuple[str, str, str], ...]) -> Any:
    """An address header (From, To …) for `policy`'s messages, set from (display name,
    local part, domain) so that every name is written as meant (maild/mail/headers.py),
    never parsed back from text; made once for mailboxes that repeat (the desk's own)."""
    factory = policy.header_factory
    if isinstance(factory, _KeptHeaders):
        if len(mailboxes) == 1 and not mailboxes[0][0]:
            bare = f"{mailboxes[0][1]}@{mailboxes[0][2]}"
            if _is_plain(name, bare):
                # One address, no name (a new customer's acknowledgment): written as its
                # header would be, kept as text (`_is_plain`) rather than parsed.
                return bare
        return factory.mailboxes(name, mailboxes)
    return _address_header(factory, name, mailboxes)


def decode_8bit(value: str) -> str:
    """A header value read from bytes, its raw 8-bit bytes (which `email` keeps as
    surrogate escapes) decoded as UTF-8, else as windows-1252, the superset of Latin-1
    that old clients write."""
    if value.isascii():
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("windows-1252", "replace")


# Values that are new in nearly every mail: kept, they would only push out the ones that
# repeat (the desk's address, a customer's, Content-Type), at a few KB each. Not Date:
# the mail maild writes in one second shares it, and parsing and folding it costs 64 µs.
_NEVER_REPEATED = frozenset({"message-id", "subject", "references", "in-reply-to",
                             "received", "dkim-signature", "arc-seal",
                             "arc-message-signature", "arc-authentication-results"})


def _cacheable(name: str, value: str) -> bool:
    """Worth keeping parsed or folded: one short line, of a header whose values repeat.
    Both directions ask this, so that neither fills the caches with dates and IDs."""
    return (len(value) <= _CACHED_VALUE_CHARS and len(value.splitlines()) <= 1
            and name.lower() not in _NEVER_REPEATED)


class _ReadingPolicy(EmailPolicy):
    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        return name, decode_8bit(value)

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if not hasattr(value, "name"):
            unfolded = _LINE_BREAKS.sub("", value)
            if _cacheable(name, unfolded):
                return _kept(self).parsed(name, unfolded)
        return super().header_fetch_parse(name, value)


_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*"
_IDS = re.compile(r"<[!-;=?-~]+>(?: <[!-;=?-~]+>)*")  # what maild/mail/headers.py writes
_BARE_ADDRESS = re.compile(f"{_DOT_ATOM}@{_DOT_ATOM}")  # an addr-spec that needs no quotes
_PLAIN_BY_NAME = {  # Message-ID has a grammar of its own, and email reformats others
    "subject": _PLAIN,
    "in-reply-to": _IDS,
    "references": _IDS,
    "message-id": re.compile(f"<{_DOT_ATOM}@{_DOT_ATOM}>"),
    **{name: _BARE_ADDRESS for name in ("from", "to", "cc", "reply-to")},
}


# How each header kept as text folds: the rule of its class in WRITTEN_HEADER_CLASSES.
_TEXT_FOLDS = {"subject": fold_text, "in-reply-to": fold_ids, "references": fold_ids,
               "message-id": fold_ids,
               **{name: fold_bare_address for name in ("from", "to", "cc", "reply-to")}}


def _is_plain(name: str, value: str) -> bool:
    """A value email would write as it stands. One too long for a line it refolds
    itself, as it does a header read from bytes."""
    plain = _PLAIN_BY_NAME.get(name.lower())
    return plain is not None and "=?" not in value and plain.fullmatch(value) is not None


class _WritingPolicy(EmailPolicy):
    # `email`'s generator writes each part of a multipart mail under a clone of the
    # policy with the same settings (`flatten(part, linesep=…)`). Policies are immutable,
    # so two with the same settings fold alike: equal, they share what is folded, where
    # by identity the headers of every part would be folded anew, and crowd out the rest.
    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:  # what folding reads most; equal policies share them
        return hash((self.linesep, self.max_line_length, self.utf8))

    def header_store_parse(self, name: str, value: Any) -> Any:
        if type(value) is str:
            if _is_plain(name, value):
                return (name, value)
            if _cacheable(name, value):
                return (name, _kept(self).parsed(name, value))
        return super().header_store_parse(name, value)  # the checks on anything else

    def fold_binary(self, name: str, value: Any) -> bytes:
        if hasattr(value, "name"):
            if _cacheable(name, value):
                return _kept(self).folded(self, name, value)
        elif self._too_long(name, value) and _is_plain(name, value):
            # Kept as text: folded by its header class's own rule, as `email` would fold
            # it after parsing it into that class; the rule reads the text alone, so the
            # parse is not needed. A shorter one `email` writes as it stands.
            return _TEXT_FOLDS[name.lower()](name, value, self).encode("ascii")
        return super().fold_binary(name, value)

    def _too_long(self, name: str, value: str) -> bool:
        """Whether `email` refolds a header kept as text (refold_source "long")."""
        longest = self.max_line_length
        return longest is not None and 0 < longest < len(name) + 2 + len(value)


class MailPolicies:
    """The policies maild reads and writes mail with, sharing what they keep."""

    def __init__(self) -> None:
        self.reading: EmailPolicy = _ReadingPolicy(header_factory=_KeptHeaders())
        self.writing: EmailPolicy = _WritingPolicy(
            header_factory=_KeptHeaders(WRITTEN_HEADER_CLASSES), linesep="\r\n")
