from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from maild.config import BusinessHoursConfig
from maild.tickets.business_time import BusinessCalendar
from maild.tickets.durations import parse_duration

LA = ZoneInfo("America/Los_Angeles")


def calendar(**overrides: object) -> BusinessCalendar:
    return BusinessCalendar(BusinessHoursConfig(timezone="America/Los_Angeles", **overrides))


def test_wall_clock_durations_ignore_the_calendar() -> None:
    start = datetime(2026, 11, 20, 16, 0, tzinfo=LA)  # Friday
    assert calendar().add(start, parse_duration("72 hours")) == datetime(2026, 11, 23, 16,
                                                                          tzinfo=LA)


def test_friday_evening_plus_two_business_days_is_tuesday() -> None:
    start = datetime(2026, 11, 20, 16, 0, tzinfo=LA)
    due = calendar().add(start, parse_duration("2 business days"))
    assert due.astimezone(LA) == datetime(2026, 11, 24, 16, 0, tzinfo=LA)


def test_after_hours_start_counts_from_next_opening() -> None:
    start = datetime(2026, 11, 20, 20, 0, tzinfo=LA)  # Friday evening
    due = calendar().add(start, parse_duration("1 business hour"))
    assert due.astimezone(LA) == datetime(2026, 11, 23, 10, 0, tzinfo=LA)


def test_dst_weekend_keeps_local_opening_hours() -> None:
    start = datetime(2026, 10, 30, 16, 0, tzinfo=LA)  # Friday before DST ends on Sunday
    due = calendar().add(start, parse_duration("2 business hours"))
    assert due.astimezone(LA) == datetime(2026, 11, 2, 10, 0, tzinfo=LA)
    assert due.utcoffset() is not None


def test_holidays_are_skipped() -> None:
    start = datetime(2026, 12, 24, 16, 0, tzinfo=LA)
    due = calendar(holidays=["2026-12-25"]).add(start, parse_duration("1 business day"))
    assert due.astimezone(LA) == datetime(2026, 12, 28, 16, 0, tzinfo=LA)
