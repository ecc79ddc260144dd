"""Mail addresses: parsed from headers, normalised, checked with email-validator."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email


@dataclass(frozen=True)
class Mailbox:
    address: str  # normalised, lower case
    name: str = ""


class InvalidAddress(ValueError):
    pass


def normalise(address: str) -> str:
    """The canonical form used for every comparison and every row: lower case, IDNA decoded."""
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{address!r} is not a valid address: {exc}") from None


def parse_mailboxes(header_values: list[str]) -> list[Mailbox]:
    """Every valid mailbox named in the given header values; invalid ones are skipped."""
    found: list[Mailbox] = []
    seen: set[str] = set()
    for name, address in getaddresses([str(v) for v in header_values]):
        if not address:
            continue
        try:
            normalised = normalise(address)
        except InvalidAddress:
            continue
        if normalised not in seen:
            seen.add(normalised)
            found.append(Mailbox(normalised, name.strip()))
    return found


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
