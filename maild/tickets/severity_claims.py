"""A customer's own word on how bad it is: "Severity 1: production down", "[P0] outage".

The claim is read from the subject and the first lines of the mail that opens a ticket and
taken at its word until an engineer triages (docs/design.md, "Who writes what"): the ticket
runs on the claimed severity's clocks, the engineer's notification and `tickets next` say
the customer claimed it, and the engineer's `#priority` settles it.

A claim names a priority ("P1") or a severity ("sev 2"); words that say production is down
("production down", "outage", "URGENT") claim severity 1. A severity is the priority of the
same number when the configuration maps it so ("severity 1" is p1 with the default
`[sla] severities`), else the first priority that has that severity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from maild.config import SlaConfig
from maild.tickets.model import PRIORITIES

# How far into the body a claim still counts: a greeting, then the first thing said.
FIRST_LINES = 3

_SEVERITY = re.compile(r"\b(?:severity|sev)[\s_:#-]*(?P<n>[1-4])\b", re.IGNORECASE)
_PRIORITY = re.compile(r"\bP(?P<n>[0-3])\b", re.IGNORECASE)
_DOWN = re.compile(
    # "not urgent" and "no outage" claim nothing
    r"""(?<!not\s)(?<!no\s)(?<!non-)\b(?:
        urgent | outage | emergency
      | (?:production|prod|site|service|system|server|instance|cluster|database|website|
           platform|api)\s+(?:is\s+|went\s+)?down
      | down\s+in\s+production
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class Claim:
    severity: int
    priority: str
    words: str  # as the customer wrote them, e.g. "Severity 1"


def read_claim(subject: str, text: str, sla: SlaConfig) -> Claim | None:
    """The most severe claim in `subject` and the first lines of `text`, if any."""
    lines = [line.strip() for line in text.splitlines() if line.strip()][:FIRST_LINES]
    claims = [claim for where in [subject, *lines] for claim in _claims_in(where, sla)]
    return min(claims, key=lambda c: (c.severity, PRIORITIES.index(c.priority)), default=None)


def _claims_in(text: str, sla: SlaConfig) -> list[Claim]:
    found = []
    for match in _PRIORITY.finditer(text):
        priority = f"p{match.group('n')}"
        found.append(Claim(sla.severity(priority), priority, match.group(0)))
    for match in _SEVERITY.finditer(text):
        claim = _severity_claim(int(match.group("n")), match.group(0), sla)
        if claim is not None:
            found.append(claim)
    for match in _DOWN.finditer(text):
        claim = _severity_claim(1, match.group(0), sla)
        if claim is not None:
            found.append(claim)
    return found


def _severity_claim(severity: int, words: str, sla: SlaConfig) -> Claim | None:
    same_number = f"p{severity}"
    if same_number in PRIORITIES and sla.severity(same_number) == severity:
        return Claim(severity, same_number, words)
    priority = next((p for p in PRIORITIES if sla.severity(p) == severity), None)
    return Claim(severity, priority, words) if priority is not None else None
