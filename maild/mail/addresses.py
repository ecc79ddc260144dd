"""Mail addresses: parsed from headers as real clients write them, normalised, checked
with email-validator."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email


@dataclass(frozen=True)
class Mailbox:
    address: str  # normalised, lower case
    name: str = ""


class InvalidAddress(ValueError):
    pass


# Active Directory domains (corp.local) are a special-use name that email-validator
# refuses whatever it is asked, and mail from them is still a person writing (replies may
# fail to deliver, which the ticket shows). The other special-use names stay refused:
# `localhost` would deliver our replies on the relay itself. For the syntax check alone,
# a label is appended to such a domain.
_PRIVATE_NAMES = ("local",)
_CHECKED_AS = ".example"


def normalise(address: str) -> str:
    """The canonical form used for every comparison and every row: lower case, IDNA decoded.
    Domains need not be globally routable (`corp.local`, a single-label `intranet`)."""
    address = address.strip()
    try:
        return _validated(address)
    except EmailNotValidError as exc:
        domain = address.rpartition("@")[2].rstrip(".").lower()
        if "." in domain and domain.rpartition(".")[2] in _PRIVATE_NAMES:
            try:
                return _validated(address + _CHECKED_AS).removesuffix(_CHECKED_AS)
            except EmailNotValidError:
                pass
        raise InvalidAddress(f"{address!r} is not a valid address: {exc}") from None


def _validated(address: str) -> str:
    return validate_email(address, check_deliverability=False,
                          globally_deliverable=False).normalized.lower()


def _mailbox(name: str, address: str) -> Mailbox | None:
    try:
        return Mailbox(normalise(address), name.strip())
    except InvalidAddress:
        return None


# What a mail client's address looks like when the header around it is broken: in angle
# brackets, else bare (`Nguyen, Noor noor@corp.example.org`).
_IN_ANGLES = re.compile(r"<\s*([^<>\s@]+@[^<>\s]+?)\s*>")
_BARE = re.compile(r"(?<![^\s,;:<(\"'])([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*)")
_NAME_JUNK = " \t,;:\"'()"


def recovered_mailboxes(value: str) -> list[Mailbox]:
    """The mailboxes of a header that does not parse as an address list, as a person
    reads it: each address with the words before it as its name (an unquoted comma in a
    display name, an address without angle brackets)."""
    found: list[Mailbox] = []
    matches = list(_IN_ANGLES.finditer(value)) or list(_BARE.finditer(value))
    end = 0
    for match in matches:
        name = " ".join(value[end:match.start()].strip(_NAME_JUNK).split())
        end = match.end()
        mailbox = _mailbox(name, match.group(1))
        if mailbox is not None:
            found.append(mailbox)
    return found


def _mailboxes(value: str) -> list[Mailbox]:
    pairs = [(name, address) for name, address in getaddresses([value]) if address]
    valid = [m for m in (_mailbox(name, address) for name, address in pairs) if m]
    if pairs and len(valid) == len(pairs):
        return valid
    return recovered_mailboxes(value) or valid


def parse_mailboxes(header_values: list[str]) -> list[Mailbox]:
    """Every mailbox named in the given header values, recovered from the forms clients
    write that are not RFC 5322 (see `recovered_mailboxes`); invalid ones are skipped."""
    found: dict[str, Mailbox] = {}
    for value in header_values:
        for mailbox in _mailboxes(str(value)):
            found.setdefault(mailbox.address, mailbox)
    return list(found.values())


@dataclass(frozen=True)
class WireAddress:
    """An address as SMTP carries it: its domain in ASCII (IDNA) form."""

    address: str
    needs_smtputf8: bool  # the local part is not ASCII: only a relay with SMTPUTF8 takes it


def ascii_domain(domain: str) -> str:
    """A domain in the ASCII-compatible form DNS and SMTP use (xn--…)."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidAddress(f"the domain {domain!r} has no ASCII form: {exc}") from None


def on_the_wire(address: str) -> WireAddress:
    """How an address stored in its Unicode form (as `normalise` keeps it) is sent."""
    local, _, domain = address.rpartition("@")
    if not local:
        raise InvalidAddress(f"{address!r} is not a valid address: no @")
    return WireAddress(f"{local}@{ascii_domain(domain)}", not local.isascii())


def local_part(address: str) -> str:
    return address.rsplit("@", 1)[0]


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1]


# The local parts machines report on mail from: bounces, delivery and DMARC reports.
MAILER_DAEMONS = ("mailer-daemon", "postmaster", "noreply-dmarc-support")


def is_mailer_daemon(address: str) -> bool:
    return local_part(address).lower() in MAILER_DAEMONS
