"""Whether mail claiming a staff address really comes from the staff's domain.

The receiving server records its SPF, DKIM and DMARC verdicts in Authentication-Results
(RFC 8601). Only headers added by a server the operator trusts count: anyone can write
such a header into the mail they send, so the authserv-id must be one of ours.
"""

from __future__ import annotations

import re

from maild.config import StaffConfig
from maild.mail.addresses import domain_of

_RESULT = re.compile(r"\b(dkim|spf|dmarc)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
_PROPERTY = re.compile(r"\b(header\.d|header\.i|header\.from|smtp\.mailfrom)\s*=\s*\"?([^\s;\"]+)",
                       re.IGNORECASE)


def _domain(value: str) -> str:
    return domain_of(value).strip().lower().rstrip(".")


def _passes_for(result: str, domain: str) -> bool:
    for _, verdict, properties in _RESULT.findall(result):
        if verdict.lower() != "pass":
            continue
        for _, value in _PROPERTY.findall(properties):
            if _domain(value) == domain:
                return True
    return False


def staff_unverified(sender: str, results: list[str], staff: StaffConfig) -> str | None:
    """Why mail from a staff address is not trusted as staff, or None when it is."""
    if staff.verify == "none":
        return None
    domain = _domain(sender)
    trusted = {server.lower() for server in staff.trusted_authserv_ids}
    for header in results:
        first = header.split(";", 1)[0].split()
        authserv_id = first[0].lower() if first else ""
        if authserv_id in trusted and _passes_for(header, domain):
            return None
    return (f"claims staff address {sender}, but no Authentication-Results from "
            f"{', '.join(sorted(trusted))} shows dkim, spf or dmarc passing for {domain}")
