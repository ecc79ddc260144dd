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


def local_part(address: str) -> str:
    return address.rsplit("@", 1)[0]


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1]


# The local parts machines report on mail from: bounces, delivery and DMARC reports.
MAILER_DAEMONS = ("mailer-daemon", "postmaster", "noreply-dmarc-support")


def is_mailer_daemon(address: str) -> bool:
    return local_part(address).lower() in MAILER_DAEMONS
