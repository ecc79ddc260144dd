"""Durations as operators write them in the config: "72 hours", "2 business days"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_UNITS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
_PATTERN = re.compile(r"^\s*(\d+)\s+(business\s+)?(minute|hour|day|week)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # minute | hour | day | week
    business: bool = False

    @property
    def wall_clock(self) -> timedelta:
        """The length on the wall clock; only meaningful when not business time."""
        return self.amount * _UNITS[self.unit]

    def __str__(self) -> str:
        plural = "" if self.amount == 1 else "s"
        business = "business " if self.business else ""
        return f"{self.amount} {business}{self.unit}{plural}"


def parse_duration(text: str) -> Duration:
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a duration (write e.g. \"72 hours\", \"2 business days\")"
        )
    amount, business, unit = match.groups()
    return Duration(int(amount), unit.lower(), business is not None)
