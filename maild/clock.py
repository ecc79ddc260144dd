"""The one source of "now". Nothing in maild calls datetime.now() anywhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from maild.errors import ConfigError

# The moments MAILD_NOW may name.
EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(9000, 12, 31)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move; for MAILD_NOW and for tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a fixed clock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._at += delta


def clock_from_env(environ: Mapping[str, str] = os.environ) -> Clock:
    """MAILD_NOW (ISO-8601 with a zone) fixes now for the whole run."""
    value = environ.get("MAILD_NOW", "").strip()
    if not value:
        return SystemClock()
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError([f"MAILD_NOW: {value!r} is not an ISO-8601 timestamp"]) from None
    if at.tzinfo is None:
        raise ConfigError([f"MAILD_NOW: {value!r} has no time zone (add Z or +00:00)"])
    # Dates near the ends of the calendar overflow as soon as maild counts days from them.
    if not EARLIEST <= at.replace(tzinfo=None) <= LATEST:  # offsets matter not here
        raise ConfigError([f"MAILD_NOW: {value!r} is out of range (between "
                           f"{EARLIEST.year} and {LATEST.year})"])
    return FixedClock(at)
