"""Durations as operators write them in the config ("72 hours", "2 business days"), and
stretches of time as people say them ("3 h 15 min")."""

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


def spoken_span(value: timedelta) -> str:
    """A stretch of time as people say it: "45 min", "3 h 15 min", "2 days 4 h"."""
    minutes = int(abs(value.total_seconds()) // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    return " ".join(parts) or "less than a minute"
